"""The contract check every variant must pass (shapes, causality, gradients, exact counts) and the grid
of architectures it runs on: shared by tests/model/test_contract.py and tests/model/test_moe.py."""

import itertools

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from archscale.spaces import ArchConfig, count, transfer, variants
from archscale.spaces.arch import (
    BLOCKS,
    EMBEDDING_SCALES,
    FFN_ACTIVATIONS,
    NORM_POSITIONS,
    NORMS,
    PARAMETRIZATIONS,
    POSITIONS,
)
from archscale.trainers.model import build_model
from archscale.trainers.moe import moe_layers

COMBOS = list(itertools.product(FFN_ACTIVATIONS, NORMS, NORM_POSITIONS, POSITIONS, BLOCKS))


def make_arch(act, norm, norm_pos, pos, block, i, parametrization=None):
    # vary the secondary knobs deterministically so every one is exercised across the grid; the
    # parametrisation cycles with i // 12 (i % 12 fixes the position coding and block), so every
    # coding, block, norm and activation meets every parametrisation somewhere in the grid
    most_ffns = variants.BLOCKS[block].max_ffn_per_block or 2
    parametrization = parametrization or PARAMETRIZATIONS[(i // 12 + i) % len(PARAMETRIZATIONS)]
    depth = variants.PARAMETRIZATIONS[parametrization].depth
    width = variants.PARAMETRIZATIONS[parametrization].width
    return ArchConfig(
        vocab_size=37,
        seq_len=12,
        d_model=24,
        n_layers=2,
        n_heads=4,
        n_kv_heads=(4, 2, 1)[i % 3],
        ffn_activation=act,
        d_ff=20,
        norm=norm,
        norm_position=norm_pos,
        position=pos,
        block=block,
        qk_norm=(variants.NORMS[norm].normalises and i % 4 == 0),
        ffn_per_block=1 + i % min(2, most_ffns),
        tie_embeddings=i % 2 == 0,
        bias=i % 5 < 2,
        init=("normal", "depth_scaled")[i % 2],
        embedding_scale=EMBEDDING_SCALES[i % len(EMBEDDING_SCALES)],
        parametrization=parametrization,
        base_d_model=(8, 24, 48)[i % 3] if width else None,  # multipliers above, at and below 1
        base_n_layers=1 + i % 3 if depth else None,
        zero_init=i % 7 == 0,
    )


def forward_flops(model, arch):
    idx = torch.zeros(1, arch.seq_len, dtype=torch.long)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(idx)
    return counter.get_total_flops()


def check_contract(arch, seed):
    torch.manual_seed(seed)
    model = build_model(arch)
    counts = count(arch)
    zeroed = [p for n, p in model.named_parameters() if n.endswith(("attn.q.weight", "head.weight"))]
    assert all(float(p.abs().sum()) == 0 for p in zeroed) == arch.zero_init or not zeroed
    if arch.zero_init:  # zero queries and readout are the point of the option, but the checks below need signal
        with torch.no_grad():
            for p in zeroed:
                p.normal_(0.0, 0.02)

    # counts equal torch's; the position table is the coding's own parameters, as the table says
    assert counts.params == sum(p.numel() for p in model.parameters())
    position_params = sum(p.numel() for p in model.pos.parameters())
    assert position_params == variants.POSITIONS[arch.position].table_params(arch)
    head_params = 0 if model.head is None else model.head.weight.numel()
    embedding_params = model.tok_emb.weight.numel() + position_params + head_params
    assert counts.non_embedding_params == counts.params - embedding_params
    # a MoE counts the experts a token is routed to; a capacity factor may drop some in this batch.
    # FlopCounterMode measures the dense convention (every score and value entry a matmul computes,
    # masked or not); the causal count (the default) is that measurement minus the masked entries
    flops = forward_flops(model, arch) + dropped_expert_flops(model, arch)
    assert 3 * flops / arch.seq_len == pytest.approx(count(arch, "dense").flops_per_token, rel=0.01)
    causal = flops - masked_attention_flops(model, arch)
    assert 3 * causal / arch.seq_len == pytest.approx(counts.flops_per_token, rel=0.01)
    assert counts.flops_per_token == count(arch, "causal").flops_per_token

    # shapes (T shorter than seq_len too)
    idx = torch.randint(0, arch.vocab_size, (2, arch.seq_len))
    logits = model(idx)
    idle = idle_expert_parameters(model)  # MoE experts no token reached in this forward: nothing to flow back
    assert logits.shape == (2, arch.seq_len, arch.vocab_size)
    assert model(idx[:, :5]).shape == (2, 5, arch.vocab_size)

    # causality: changing token t never changes any output before t
    t = 7
    changed = idx.clone()
    changed[:, t] = (changed[:, t] + 1) % arch.vocab_size
    with torch.no_grad():
        before, after = model(idx), model(changed)
    torch.testing.assert_close(before[:, :t], after[:, :t], rtol=0, atol=1e-5)
    assert not torch.allclose(before[:, t:], after[:, t:])

    # gradients reach every parameter
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), idx.flatten())
    loss.backward()
    missing = [
        n for n, p in model.named_parameters() if n not in idle and (p.grad is None or not torch.isfinite(p.grad).all())
    ]
    assert not missing
    assert all(p.grad is None for n, p in model.named_parameters() if n in idle)  # idle experts were not computed
    dead = [n for n, p in model.named_parameters() if n not in idle and p.grad.abs().sum() == 0]
    # a zero-initialised T5 table still gets gradient; only weights feeding a dead ReLU could be 0
    assert not dead, dead

    # the parametrisation's forward multipliers are what the table says
    assert model.emb_scale == variants.embedding_scale(arch)
    assert model.output_mult == transfer.output_multiplier(arch)
    assert all(
        b.r == transfer.residual_scale(arch) and b.attn.scale == transfer.attention_scale(arch) for b in model.blocks
    )


def masked_entries(T: int, window: int | None) -> int:
    """Score entries (per head) a layer computes but masks, counted on the shapes the backends
    multiply: keys after the query in the full T x T, or left of position 0 in a window's band."""
    if window is None or window >= T:
        return int(torch.ones(T, T, dtype=torch.bool).triu(diagonal=1).sum())
    band_positions = torch.arange(T)[:, None] - (window - 1) + torch.arange(window)  # (T, W) key positions
    return int((band_positions < 0).sum())


def masked_attention_flops(model, arch) -> float:
    """Forward FLOPs FlopCounterMode counts for masked entries: QK^T and AV, 2 per multiply-accumulate,
    head_dim multiply-accumulates per entry and head, summed over the model's layers."""
    per_entry = 2 * 2 * arch.n_heads * arch.head_dim
    return sum(per_entry * masked_entries(arch.seq_len, block.attn.window) for block in model.blocks)


def idle_expert_parameters(model) -> set[str]:
    """Names of the parameters of MoE experts that computed no token in the model's last forward."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        names[id(p)]
        for moe in moe_layers(model)
        for e, n in enumerate(moe.kept_per_expert.tolist())
        if n == 0
        for p in moe.experts[e].parameters()
    }


def dropped_expert_flops(model, arch) -> float:
    """Forward FLOPs of the token-expert assignments a capacity factor dropped in the last forward
    (counted by the analytic count, not computed by the model); 0 for dense or dropless models."""
    n_in = 2 if arch.gated else 1
    per_assignment = 2 * (n_in + 1) * arch.d_model * (arch.expert_d_ff or arch.d_ff)
    dropped = sum(m.top_k * arch.seq_len - int(m.kept_per_expert.sum()) for m in moe_layers(model))
    return dropped * per_assignment
