"""The contract every variant must keep: shapes, causality, gradients everywhere, exact counts.

Parametrised over every FFN activation x norm x norm position x position coding x block layout,
read from the variant tables (`archscale.spaces.variants`): a new variant is tested here with no
change to this file. The parametrisation (standard, mup, completep) cycles across that grid, and
`test_every_variant_under_every_parametrization` runs every value of every axis under each one.
"""

import itertools
import warnings

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
from archscale.trainers.model import ACTIVATIONS, build_model
from archscale.trainers.model import NORMS as NORM_REGISTRY
from archscale.trainers.model import POSITIONS as POSITION_REGISTRY
from archscale.trainers.moe import moe_layers

COMBOS = list(itertools.product(FFN_ACTIVATIONS, NORMS, NORM_POSITIONS, POSITIONS, BLOCKS))


def test_registries_cover_every_config_value():
    assert set(ACTIVATIONS) == set(FFN_ACTIVATIONS)
    assert set(NORM_REGISTRY) == set(NORMS)
    assert set(POSITION_REGISTRY) == set(POSITIONS)
    # the torch registries are keyed by exactly the names of the torch-free table
    assert list(ACTIVATIONS) == list(variants.ACTIVATIONS)
    assert list(NORM_REGISTRY) == list(variants.NORMS)
    assert list(POSITION_REGISTRY) == list(variants.POSITIONS)


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


@pytest.mark.parametrize("act,norm,norm_pos,pos,block", COMBOS, ids=["-".join(c) for c in COMBOS])
def test_variant_contract(act, norm, norm_pos, pos, block):
    i = COMBOS.index((act, norm, norm_pos, pos, block))
    check_contract(make_arch(act, norm, norm_pos, pos, block, i), seed=i)


def _representatives():
    """Each value of each axis once, the others at a covered default: ~24 architectures."""
    default = ("swiglu", "rmsnorm", "pre", "rope", "sequential")
    axes = (FFN_ACTIVATIONS, NORMS, NORM_POSITIONS, POSITIONS, BLOCKS)
    reps = {default}
    for k, values in enumerate(axes):
        reps |= {default[:k] + (v,) + default[k + 1 :] for v in values}
    return sorted(reps)


@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
def test_every_variant_under_every_parametrization(parametrization):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # post-norm etc. warn once under mup; tested in tests/trainers
        for combo in _representatives():
            i = COMBOS.index(combo)
            check_contract(make_arch(*combo, i, parametrization), seed=i)


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
    # a MoE counts the experts a token is routed to; a capacity factor may drop some in this batch
    flops = forward_flops(model, arch) + dropped_expert_flops(model, arch)
    assert 3 * flops / arch.seq_len == pytest.approx(counts.flops_per_token, rel=0.01)

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


@pytest.mark.parametrize("pos", POSITIONS)
def test_longer_than_training_context(pos):
    arch = ArchConfig(vocab_size=17, seq_len=8, d_model=16, n_heads=2, d_ff=32, position=pos)
    model = build_model(arch)
    idx = torch.randint(0, 17, (1, 32))
    max_len = variants.POSITIONS[pos].max_len(arch)
    assert model.pos.max_len == max_len
    if max_len is not None and max_len < 32:
        with pytest.raises(ValueError, match="seq_len"):
            model(idx)
    else:
        assert model(idx).shape == (1, 32, 17)


@pytest.mark.parametrize("pos", POSITIONS)
def test_position_facts_match_the_implementation(pos):
    """The table's absolute flag is what the model does; its sub-fields exist; embeddings unscaled by default."""
    arch = ArchConfig(vocab_size=17, seq_len=8, d_model=16, n_heads=2, d_ff=32, position=pos)
    model = build_model(arch)
    facts = variants.POSITIONS[pos]
    assert model.emb_scale == 1.0
    table = model.pos.embed(5, torch.device("cpu"))
    if facts.absolute:
        assert table is not None and table.shape == (5, arch.d_model)
    else:
        assert table is None  # the base class's: a non-absolute coding must not override embed
    assert set(facts.fields) <= set(ArchConfig.model_fields)
    others = [f for name, p in variants.POSITIONS.items() if name != pos for f in p.fields]
    assert not set(facts.fields) & set(others)  # each sub-field belongs to one coding


def test_gqa_matches_repeated_kv_heads():
    """GQA through SDPA's enable_gqa equals MHA with each KV head repeated: an independent reference."""
    torch.manual_seed(0)
    gqa = build_model(
        ArchConfig(vocab_size=11, seq_len=8, d_model=32, n_heads=4, n_kv_heads=2, d_ff=16, position="rope")
    )
    mha = build_model(
        ArchConfig(vocab_size=11, seq_len=8, d_model=32, n_heads=4, n_kv_heads=4, d_ff=16, position="rope")
    )
    state = gqa.state_dict()
    for key in list(state):
        if key.endswith(("attn.k.weight", "attn.v.weight")):
            w = state[key].view(2, 8, 32)
            state[key] = w.repeat_interleave(2, dim=0).reshape(32, 32)
    mha.load_state_dict(state)
    idx = torch.randint(0, 11, (2, 8))
    torch.testing.assert_close(gqa(idx), mha(idx), rtol=1e-5, atol=1e-5)


def test_alibi_slopes_match_paper():
    from archscale.trainers.model import alibi_slopes

    assert alibi_slopes(8).tolist() == pytest.approx([2 ** -(i + 1) for i in range(8)])
    assert len(alibi_slopes(6)) == 6


# --------------------------------------------------------------------------------------------
# Attention layouts: sliding windows, global layers, Primer's convolution, with every position
# coding and MHA / GQA / MQA (n_kv_heads cycles with i). Each (window, global_every, qkv_conv):
ATTENTION_LAYOUTS = [
    (None, None, 3),  # Primer alone
    (4, None, 0),  # every layer windowed
    (4, 2, 0),  # layer 0 windowed, layer 1 global
    (5, 2, 2),  # window, a global layer and Primer together
    (30, None, 0),  # a window longer than the sequence: full attention, charged T keys
]
LAYOUT_CASES = [(pos, layout) for pos in POSITIONS for layout in ATTENTION_LAYOUTS]


def layout_arch(pos, layout, i, **overrides):
    window, global_every, conv = layout
    base = make_arch("swiglu", "rmsnorm", "pre", pos, ("sequential", "parallel")[i % 2], i, "standard")
    fields = {**base.to_dict(), "attention_window": window, "global_every": global_every, "qkv_conv": conv}
    return ArchConfig(**{**fields, **overrides})


@pytest.mark.parametrize("pos,layout", LAYOUT_CASES, ids=[f"{p}-w{w}-g{g}-conv{c}" for p, (w, g, c) in LAYOUT_CASES])
def test_attention_layout_contract(pos, layout):
    """Counts equal torch's (windowed layers charged their band), causal, gradients everywhere."""
    i = LAYOUT_CASES.index((pos, layout))
    arch = layout_arch(pos, layout, i)
    check_contract(arch, seed=i)
    windowed = [variants.layer_windowed(arch, layer) for layer in range(arch.n_layers)]
    model = build_model(arch)
    assert [b.attn.window is not None for b in model.blocks] == windowed
    assert count(arch).kv_cache_bytes_per_token == 2 * windowed.count(False) * arch.n_kv_heads * arch.head_dim * 2


@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("conv", [0, 3])
def test_a_token_beyond_the_window_never_reaches_an_output(pos, conv):
    """Every layer windowed: output i reads inputs back to i - n_layers x (W - 1 + conv - 1), no further."""
    i = POSITIONS.index(pos)
    arch = layout_arch(pos, (3, None, conv), i, seq_len=20, n_layers=2)
    reach = arch.n_layers * (arch.attention_window - 1 + max(conv - 1, 0))
    torch.manual_seed(i)
    model = build_model(arch)
    idx = torch.randint(0, arch.vocab_size, (2, arch.seq_len))
    changed = idx.clone()
    changed[:, 2] = (changed[:, 2] + 1) % arch.vocab_size
    with torch.no_grad():
        before, after = model(idx), model(changed)
    torch.testing.assert_close(before[:, :2], after[:, :2], rtol=0, atol=1e-5)  # causal
    torch.testing.assert_close(before[:, 3 + reach :], after[:, 3 + reach :], rtol=0, atol=1e-5)  # out of reach
    assert not torch.allclose(before[:, 2 : 3 + reach], after[:, 2 : 3 + reach])  # within reach it matters
    # the same model with full attention lets the token reach every later output
    full = build_model(ArchConfig(**{**arch.to_dict(), "attention_window": None}))
    full.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(full(idx)[:, -1], full(changed)[:, -1])


@pytest.mark.parametrize("pos", POSITIONS)
def test_windowed_models_run_past_the_training_context(pos):
    """The length-generalisation evaluation (1x, 2x, 4x seq_len) needs windowed models to run at any
    length their position coding allows, with the same masks as at seq_len."""
    arch = ArchConfig(vocab_size=17, seq_len=8, d_model=16, n_heads=2, d_ff=32, position=pos, attention_window=3)
    model = build_model(arch)
    idx = torch.randint(0, 17, (1, 32))
    if model.pos.max_len is not None:
        with pytest.raises(ValueError, match="seq_len"):
            model(idx)
    else:
        assert model(idx).shape == (1, 32, 17)
