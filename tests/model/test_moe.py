"""Mixture-of-experts FFNs: the variant contract, exact active-parameter and routed-FLOP counts,
grouped computation equal to a plain reference, capacity dropping, and the router's health."""

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archscale.spaces import ArchConfig, count
from archscale.spaces.arch import FFN_ACTIVATIONS, PARAMETRIZATIONS
from archscale.trainers.model import build_model
from archscale.trainers.moe import MoE, aux_loss, moe_layers, router_health
from tests.model.contract import COMBOS, check_contract, make_arch

# (n_experts, experts_top_k, n_shared_experts, expert_capacity_factor, expert_d_ff)
MOE_SHAPES = [(4, 2, 0, None, None), (3, 1, 1, None, 12), (4, 2, 1, 1.0, None), (5, 3, 0, 0.5, 16)]
MOE_CASES = [(act, shape) for act in FFN_ACTIVATIONS for shape in MOE_SHAPES]


def moe_arch(act: str, shape: tuple, i: int, parametrization: str | None = None) -> ArchConfig:
    """A contract-suite architecture (its norm, position, block, parametrisation vary with i) made MoE."""
    combo = next(c for c in COMBOS[i % len(COMBOS) :] + COMBOS if c[0] == act)
    base = make_arch(*combo, COMBOS.index(combo), parametrization).to_dict()
    n_experts, top_k, shared, capacity, width = shape
    return ArchConfig(
        **{
            **base,
            "ffn_type": "moe",
            "n_experts": n_experts,
            "experts_top_k": top_k,
            "n_shared_experts": shared,
            "expert_capacity_factor": capacity,
            "expert_d_ff": width,
        }
    )


@pytest.mark.parametrize("act,shape", MOE_CASES, ids=[f"{a}-{'-'.join(map(str, s))}" for a, s in MOE_CASES])
def test_moe_contract(act, shape):
    """Counts equal torch's (FLOPs: what the routed tokens multiply), causal even when a capacity
    factor drops tokens, gradients reach the router and every expert that computed a token."""
    i = MOE_CASES.index((act, shape)) * 37
    check_contract(moe_arch(act, shape, i), seed=i)


@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
def test_moe_under_every_parametrization(parametrization):
    for i, shape in enumerate(MOE_SHAPES):
        check_contract(moe_arch("swiglu", shape, 12 * i + 1, parametrization), seed=i)


@pytest.mark.parametrize("shape", MOE_SHAPES)
def test_active_params_are_the_parameters_one_token_touches(shape):
    """What one token's backward pass reaches: everything but the routed experts it was not sent to."""
    arch = moe_arch("swiglu", shape, 5)
    model = build_model(arch)
    idx = torch.randint(0, arch.vocab_size, (1, 1))  # one token: it reaches top_k routed experts per sublayer
    model(idx).sum().backward()
    touched = sum(p.numel() for p in model.parameters() if p.grad is not None)
    counts = count(arch)
    assert counts.active_params == touched
    assert counts.params == sum(p.numel() for p in model.parameters()) > counts.active_params


def test_ffn_registry_is_keyed_like_the_table():
    from archscale.spaces import variants
    from archscale.trainers.model import FFN_TYPES

    assert list(FFN_TYPES) == list(variants.FFN_TYPES)


def test_dense_counts_are_unchanged_and_active_equals_params():
    arch = ArchConfig(d_model=32, n_heads=4, d_ff=64)
    counts = count(arch)
    assert counts.active_params == counts.params
    # the arch_id of an architecture that does not use the MoE fields is the one recorded before they existed
    assert ArchConfig().arch_id == "3945d88331da"
    assert ArchConfig(ffn_type="moe").arch_id != ArchConfig().arch_id


def routed_flops(arch: ArchConfig, tokens: int) -> int:
    model = build_model(arch)
    x = torch.randn(1, tokens, arch.d_model)
    with FlopCounterMode(display=False) as counter:
        model.blocks[0].ffns[0](x)
    return counter.get_total_flops()


def test_cost_grows_with_top_k_not_with_n_experts():
    """Computed FLOPs of one MoE sublayer: only the router grows with n_experts; experts scale with top_k."""
    base = {"vocab_size": 16, "d_model": 32, "n_heads": 2, "d_ff": 64, "n_layers": 1, "ffn_type": "moe"}
    router = lambda e: 2 * 64 * 32 * e  # noqa: E731  # 64 tokens x d_model x n_experts, 2 per MAC
    few = routed_flops(ArchConfig(**base, n_experts=4, experts_top_k=2), 64)
    many = routed_flops(ArchConfig(**base, n_experts=32, experts_top_k=2), 64)
    assert few - router(4) == many - router(32)
    doubled = routed_flops(ArchConfig(**base, n_experts=32, experts_top_k=4), 64)
    assert doubled - router(32) == 2 * (many - router(32))


def reference_moe(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    """Every token through its chosen experts one by one, dropping in (position, row, slot) order."""
    B, T, d = x.shape
    probs = (moe.router(x) * moe.router_mult).float().softmax(-1)
    gates, chosen = probs.topk(moe.top_k, dim=-1)  # (B, T, k)
    capacity = math.inf
    if moe.capacity_factor is not None:
        capacity = math.ceil(moe.capacity_factor * B * T * moe.top_k / moe.n_experts)
    taken = [0] * moe.n_experts
    out = torch.zeros_like(x)
    for t in range(T):
        for b in range(B):
            for slot in range(moe.top_k):
                e = int(chosen[b, t, slot])
                if taken[e] < capacity:
                    taken[e] += 1
                    out[b, t] += gates[b, t, slot] * moe.experts[e](x[b, t][None])[0]
            for expert in moe.shared:
                out[b, t] += expert(x[b, t][None])[0]
    return out


@pytest.mark.parametrize("capacity", [None, 1.0, 0.5])
@pytest.mark.parametrize("act", ["relu2", "geglu"])
def test_grouped_computation_equals_a_plain_reference(capacity, act):
    arch = ArchConfig(
        d_model=16,
        n_heads=2,
        d_ff=24,
        ffn_activation=act,
        ffn_type="moe",
        n_experts=4,
        experts_top_k=2,
        n_shared_experts=1,
        expert_capacity_factor=capacity,
        bias=True,
    )
    torch.manual_seed(0)
    moe = build_model(arch).blocks[0].ffns[0]
    x = torch.randn(3, 7, 16)
    torch.testing.assert_close(moe(x), reference_moe(moe, x), rtol=1e-5, atol=1e-6)
    if capacity == 0.5:
        assert int(moe.kept_per_expert.sum()) < 3 * 7 * 2  # the capacity really dropped something


def test_aux_loss_is_one_when_balanced_and_n_experts_when_collapsed():
    arch = ArchConfig(d_model=16, n_heads=2, d_ff=24, n_layers=1, ffn_type="moe", n_experts=4, experts_top_k=1)
    model = build_model(arch)
    moe = model.blocks[0].ffns[0]
    x = torch.randn(2, 8, 16)
    with torch.no_grad():
        moe.router.weight.zero_()  # uniform router probabilities
        moe(x)
        assert float(moe.aux_loss) == pytest.approx(1.0)
        moe.router.weight[0] = 100.0 * x.reshape(-1, 16).mean(0).sign()  # send (nearly) everything to expert 0
        moe.router.weight[1:] = 0.0
        moe(x.abs() * x.reshape(-1, 16).mean(0).sign())
        assert float(moe.aux_loss) == pytest.approx(4.0, rel=0.01)
    assert float(aux_loss(model)) == pytest.approx(4.0, rel=0.01)


def test_router_health_accumulates_while_training_and_resets():
    arch = ArchConfig(
        d_model=16,
        n_heads=2,
        d_ff=24,
        n_layers=2,
        ffn_type="moe",
        n_experts=4,
        experts_top_k=2,
        expert_capacity_factor=0.5,
    )
    model = build_model(arch)
    assert router_health(model)["router_aux_loss"] is None  # nothing trained yet
    model(torch.randint(0, 256, (2, 8)))
    health = router_health(model)
    assert health["router_aux_loss"] >= 1.0 - 1e-6
    assert sum(health["expert_token_share"]) == pytest.approx(1.0)
    assert health["expert_load_max_over_mean"] >= 1.0
    assert 0 < health["dropped_token_frac"] <= 0.5 + 1e-6  # half the capacity of a balanced load
    assert router_health(model)["router_aux_loss"] is None  # reset
    model.eval()
    model(torch.randint(0, 256, (2, 8)))
    assert router_health(model)["router_aux_loss"] is None  # evaluation does not count
    assert len(moe_layers(model)) == 2


def test_training_adds_the_aux_loss_and_records_router_curves(tmp_path):
    from archscale.spaces.training import TrainConfig
    from archscale.trainers.data import open_data
    from archscale.trainers.loop import train

    arch = ArchConfig(
        vocab_size=256, seq_len=16, d_model=16, n_heads=2, d_ff=16, n_layers=1, ffn_type="moe", n_experts=4
    )
    cfg = TrainConfig(tokens=1024, batch_size=4, eval_tokens=256, eval_every_tokens=512, threads=1)
    train(arch, cfg, open_data("copy"), out=tmp_path / "moe")
    import polars as pl

    curves = pl.read_parquet(tmp_path / "moe" / "curves.parquet")
    assert curves.height == 2
    assert curves["router_aux_loss"].min() >= 1.0 - 1e-6 and curves["dropped_token_frac"].max() == 0.0
    assert curves["expert_token_share"].list.len().to_list() == [4, 4]
