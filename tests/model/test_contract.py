"""The contract every variant must keep: shapes, causality, gradients everywhere, exact counts.

Parametrised over every FFN activation x norm x norm position x position coding x block layout,
read from the variant tables (`archscale.spaces.variants`): a new variant is tested here with no
change to this file. The parametrisation (standard, mup, completep) cycles across that grid, and
`test_every_variant_under_every_parametrization` runs every value of every axis under each one.
"""

import warnings

import pytest
import torch

from archscale.spaces import ArchConfig, count, variants
from archscale.spaces.arch import (
    BLOCKS,
    FFN_ACTIVATIONS,
    NORM_POSITIONS,
    NORMS,
    PARAMETRIZATIONS,
    POSITIONS,
)
from archscale.spaces.counting import FLOPS_CONVENTIONS, charged_keys
from archscale.trainers.model import ACTIVATIONS, build_model
from archscale.trainers.model import NORMS as NORM_REGISTRY
from archscale.trainers.model import POSITIONS as POSITION_REGISTRY
from tests.model.contract import (
    COMBOS,
    check_contract,
    forward_flops,
    make_arch,
    masked_attention_flops,
    masked_entries,
)


def test_registries_cover_every_config_value():
    assert set(ACTIVATIONS) == set(FFN_ACTIVATIONS)
    assert set(NORM_REGISTRY) == set(NORMS)
    assert set(POSITION_REGISTRY) == set(POSITIONS)
    # the torch registries are keyed by exactly the names of the torch-free table
    assert list(ACTIVATIONS) == list(variants.ACTIVATIONS)
    assert list(NORM_REGISTRY) == list(variants.NORMS)
    assert list(POSITION_REGISTRY) == list(variants.POSITIONS)


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


@pytest.mark.parametrize("window", [None, 4, 12, 30], ids=["full", "w4", "w=T", "w>T"])
@pytest.mark.parametrize("kv_heads", [4, 1])
def test_both_flop_conventions_per_layer_kind(window, kv_heads):
    """One layer of each kind: `dense` is what FlopCounterMode measures; `causal` is that minus the
    masked entries (the upper half of a full layer, a window's padding), i.e. the keys a query sees."""
    arch = layout_arch("rope", (window, None, 0), 0, n_layers=1, n_kv_heads=kv_heads)
    T = arch.seq_len
    model = build_model(arch)
    measured = forward_flops(model, arch)
    assert 3 * measured / T == pytest.approx(count(arch, "dense").flops_per_token, rel=1e-9)
    masked = masked_attention_flops(model, arch)
    assert masked == 2 * 2 * arch.n_heads * arch.head_dim * masked_entries(T, model.blocks[0].attn.window)
    assert 3 * (measured - masked) / T == pytest.approx(count(arch, "causal").flops_per_token, rel=1e-9)
    # the causal charge is the mean number of keys a query sees, read off the visible (T, T) mask
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    visible = (j <= i) & (i - j < (window or T))
    assert charged_keys(arch, 0, T, "causal") == pytest.approx(float(visible.sum()) / T, rel=1e-12)
    assert charged_keys(arch, 0, T, "dense") == min(window or T, T)
    if window is None or window >= T:
        assert charged_keys(arch, 0, T, "causal") == (T + 1) / 2


def test_windows_at_equal_flops_under_each_convention():
    """A window saves FLOPs against full attention under both conventions, less under causal (the
    full layer is no longer charged its masked half); a window covering T costs what full attention does."""
    full = ArchConfig(seq_len=256, n_layers=4)
    windowed = ArchConfig(**{**full.to_dict(), "attention_window": 64})
    covering = ArchConfig(**{**full.to_dict(), "attention_window": 256})
    saved = {c: count(full, c).flops_per_token - count(windowed, c).flops_per_token for c in FLOPS_CONVENTIONS}
    assert 0 < saved["causal"] < saved["dense"]
    assert count(covering, "causal").flops_per_token == count(full, "causal").flops_per_token
    with pytest.raises(ValueError, match="flops_convention: got 'sparse'; allowed: causal, dense"):
        count(full, "sparse")  # type: ignore[arg-type]


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
