"""Attention backends (sdpa, flex, materialised) against the materialised reference, the automatic
choice and how to force one, and the counting conventions of windows and Primer's convolution."""

import itertools

import pytest
import torch

from archscale.spaces import ArchConfig, count, variants
from archscale.spaces.arch import POSITIONS, value_problem
from archscale.trainers.attention import BACKENDS, ENV_VAR, choose_backend
from archscale.trainers.model import build_model

# (attention_window, global_every): full, every layer windowed, alternating windowed / global
WINDOWS = [(None, None), (5, None), (5, 2)]
CASES = list(itertools.product(POSITIONS, WINDOWS, (4, 2, 1), (7, 33)))  # x n_kv_heads x odd lengths


def case_arch(pos, window, kv_heads, qkv_conv=0):
    return ArchConfig(
        vocab_size=29,
        seq_len=40,
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=kv_heads,
        d_ff=24,
        position=pos,
        attention_window=window[0],
        global_every=window[1],
        qkv_conv=qkv_conv,
        bias=True,
    )


def built(arch, backend, state=None):
    torch.manual_seed(0)
    model = build_model(arch, attention_backend=backend)
    if state is not None:
        model.load_state_dict(state)
    elif arch.position == "t5_bias":  # the zero-initialised table would hide a wrong bias lookup
        with torch.no_grad():
            model.pos.table.weight.normal_()
    assert model.attention_backend == backend
    return model


def assert_same_outputs_and_grads(reference, other, idx, out_tol: tuple, grad_tol: tuple) -> None:
    """After one backward pass each: equal outputs and equal gradients of every parameter."""
    for model in (reference, other):
        model(idx).square().mean().backward()
    torch.testing.assert_close(other(idx), reference(idx), rtol=out_tol[0], atol=out_tol[1])
    grads = {n: p.grad for n, p in other.named_parameters()}
    for name, p in reference.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=grad_tol[0], atol=grad_tol[1], msg=name)


@pytest.mark.parametrize(
    "pos,window,kv_heads,T", CASES, ids=[f"{p}-w{w[0]}-g{w[1]}-kv{k}-T{t}" for p, w, k, t in CASES]
)
@pytest.mark.parametrize("backend", ["sdpa", "flex"])
def test_backend_equals_the_materialised_reference(backend, pos, window, kv_heads, T):
    """Outputs, and (where the backend has a backward on this device) every parameter's gradient."""
    arch = case_arch(pos, window, kv_heads, qkv_conv=2 if T == 33 else 0)
    reference = built(arch, "materialised")
    other = built(arch, backend, reference.state_dict())
    idx = torch.randint(0, arch.vocab_size, (2, T), generator=torch.Generator().manual_seed(T))
    trains = backend != "flex" or torch.cuda.is_available()  # FlexAttention has no backward on CPU
    if not trains:
        with torch.no_grad():
            torch.testing.assert_close(other(idx), reference(idx), rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="flex has no backward"):
            other(idx)
        return
    assert_same_outputs_and_grads(reference, other, idx, out_tol=(1e-5, 1e-5), grad_tol=(1e-4, 1e-6))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiled FlexAttention and its backward need CUDA")
@pytest.mark.parametrize("pos", POSITIONS)
def test_compiled_flex_on_cuda_equals_the_reference(pos):
    arch = case_arch(pos, (5, 2), 2)
    reference = built(arch, "materialised").cuda()
    flex = built(arch, "flex", reference.state_dict()).cuda()
    idx = torch.randint(0, arch.vocab_size, (2, 33), device="cuda")
    assert_same_outputs_and_grads(reference, flex, idx, out_tol=(1e-3, 1e-3), grad_tol=(1e-3, 1e-4))


def test_automatic_choice_and_forcing(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    for pos in POSITIONS:
        plain = ArchConfig(position=pos)
        windowed = ArchConfig(position=pos, attention_window=16)
        fused = not variants.POSITIONS[pos].score_bias
        assert choose_backend(plain) == ("sdpa" if fused else "materialised")
        assert choose_backend(plain, "cuda") == ("sdpa" if fused else "flex")
        assert choose_backend(windowed) == "materialised" and choose_backend(windowed, "cuda") == "flex"
        assert build_model(plain).attention_backend == choose_backend(plain)
    arch = ArchConfig(position="alibi")
    assert build_model(arch, attention_backend="sdpa").attention_backend == "sdpa"
    monkeypatch.setenv(ENV_VAR, "sdpa")
    assert build_model(arch).attention_backend == "sdpa"
    assert build_model(arch, attention_backend="materialised").attention_backend == "materialised"  # argument wins
    monkeypatch.setenv(ENV_VAR, "fast")
    with pytest.raises(ValueError, match=f"{ENV_VAR}: got 'fast'; allowed: {', '.join(BACKENDS)}"):
        build_model(arch)
    with pytest.raises(ValueError, match="attention_backend: got 'x'"):
        build_model(arch, attention_backend="x")


def test_score_bias_fact_matches_the_implementation():
    """`variants.Position.score_bias` (read by the automatic choice) is what the coding does."""
    for pos in POSITIONS:
        model = build_model(ArchConfig(vocab_size=17, seq_len=8, d_model=16, n_heads=2, d_ff=32, position=pos))
        assert (model.pos.attn_bias(8, torch.device("cpu")) is not None) == variants.POSITIONS[pos].score_bias


def test_window_counting_convention():
    """Under the dense convention a windowed layer is charged min(W, T) keys per query; only global
    layers grow the KV cache (the causal convention: tests/model/test_contract.py)."""
    full = ArchConfig(seq_len=64, n_layers=4, attention_window=None)
    per_key = 3 * 2 * 2 * full.n_heads * full.head_dim  # train FLOPs of one attended key, per token and layer
    kv_per_layer = 2 * full.n_kv_heads * full.head_dim * 2
    for window, global_every, windowed_layers in [(16, None, 4), (16, 2, 2), (16, 4, 3), (16, 1, 0), (100, None, 4)]:
        arch = ArchConfig(**{**full.to_dict(), "attention_window": window, "global_every": global_every})
        assert [arch.windowed(i) for i in range(4)].count(True) == windowed_layers
        saved = windowed_layers * (64 - min(window, 64)) * per_key
        assert count(arch, "dense").flops_per_token == count(full, "dense").flops_per_token - saved
        assert count(arch).kv_cache_bytes_per_token == (4 - windowed_layers) * kv_per_layer
        assert count(arch).params == count(full).params
    # global_every = 2: layers 1 and 3 (0-based) keep full attention
    arch = ArchConfig(n_layers=4, attention_window=8, global_every=2)
    assert [arch.windowed(i) for i in range(4)] == [True, False, True, False]


def test_primer_conv_counting_and_validation():
    plain = ArchConfig(n_heads=4, n_kv_heads=2, bias=True)
    conv = ArchConfig(**{**plain.to_dict(), "qkv_conv": 3})
    channels = (4 + 2 + 2) * plain.head_dim
    assert count(conv).params - count(plain).params == plain.n_layers * channels * (3 + 1)  # taps + bias
    assert count(conv).flops_per_token - count(plain).flops_per_token == 3 * plain.n_layers * 2 * channels * 3
    assert value_problem("qkv_conv", 0) is None
    assert "a non-negative integer (0 allowed)" in value_problem("qkv_conv", -1)
    with pytest.raises(ValueError, match="qkv_conv: got -1"):
        ArchConfig(qkv_conv=-1)
    with pytest.raises(ValueError, match="global_every: only read with attention_window"):
        ArchConfig(global_every=2)
    with pytest.raises(ValueError, match="attention_window: got 0"):
        ArchConfig(attention_window=0)
    assert "·w64/g2" in ArchConfig(attention_window=64, global_every=2).label
    assert "·conv3" in conv.label and "·w" not in conv.label


@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("window", [None, 3])
def test_flex_score_and_mask_mods_equal_the_dense_bias_and_mask(pos, window):
    """What FlexAttention is given, evaluated densely on CPU: the score_mod adds exactly the coding's
    (H, T, T) bias, gradients reach a learned bias table through it, and the block mask's mask_mod is
    the causal (windowed) mask. Together with the output check above, this covers flex's backward
    inputs on a machine where FlexAttention itself cannot run backward."""
    from archscale.trainers.attention import _allowed

    arch = case_arch(pos, (window, None), 2)
    model = built(arch, "flex")
    T = 9
    shared = model.backend.prepare(model.pos, T, torch.device("cpu"))
    h = torch.arange(arch.n_heads)[:, None, None]
    q, kv = torch.arange(T)[None, :, None], torch.arange(T)[None, None, :]
    dense = model.pos.attn_bias(T, torch.device("cpu"))
    if shared["score_mod"] is None:
        assert dense is None
    else:
        scores = shared["score_mod"](torch.zeros(arch.n_heads, T, T), 0, h, q, kv)
        causal = _allowed(T, None, torch.device("cpu"))
        torch.testing.assert_close(scores.masked_fill(~causal, 0), dense.masked_fill(~causal, 0))
        if list(model.pos.parameters()):
            scores.sum().backward()
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.pos.parameters())
    block_mask = model.backend.block_mask(T, window, torch.device("cpu"))
    torch.testing.assert_close(block_mask.mask_mod(0, 0, q[0], kv[0]), _allowed(T, window, torch.device("cpu")))
