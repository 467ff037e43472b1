"""MoE fields of ArchConfig, their counts, the active_params budget and spaces/moe.yaml (torch-free)."""

import json
import random

import pytest
from typer.testing import CliRunner

from archscale.search.cli import app
from archscale.spaces import ArchConfig, count
from archscale.spaces.errors import SpaceError
from archscale.spaces.solver import BUDGET_KINDS, Budget, solve
from archscale.spaces.space import load_space, shipped_spaces, space_from_dict


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"n_experts": 4}, "n_experts: only read under ffn_type=moe, got ffn_type=dense"),
        ({"expert_capacity_factor": 1.0}, "expert_capacity_factor: only read under ffn_type=moe"),
        (
            {"ffn_type": "moe", "n_experts": 2, "experts_top_k": 3},
            r"experts_top_k: at most n_experts=2; allowed .*\[1, 2\]",
        ),
        ({"ffn_type": "moe", "n_shared_experts": -1}, "n_shared_experts: got -1; allowed: a non-negative integer"),
        ({"ffn_type": "moe", "n_experts": 0}, "n_experts: got 0; allowed: a positive integer"),
        ({"ffn_type": "moe", "expert_capacity_factor": 0}, "expert_capacity_factor: got 0"),
        ({"ffn_type": "sparse"}, "ffn_type"),
    ],
)
def test_moe_errors_name_the_field_and_what_is_allowed(fields, message):
    with pytest.raises(ValueError, match=message):
        ArchConfig(**fields)


def test_omitted_moe_fields_are_filled_and_labelled():
    arch = ArchConfig(ffn_type="moe", d_ff=96)
    assert (arch.n_experts, arch.experts_top_k, arch.n_shared_experts, arch.expert_d_ff) == (8, 2, 0, 96)
    assert arch.expert_capacity_factor is None  # dropless
    assert "·moe8x2·" in arch.label
    assert "·moe4x1+2s·" in ArchConfig(ffn_type="moe", n_experts=4, experts_top_k=1, n_shared_experts=2).label
    assert "moe" not in ArchConfig().label
    assert ArchConfig(**json.loads(arch.to_json())) == arch


def test_moe_counts_by_hand():
    d, f, V, L, E, k, s = 32, 48, 64, 2, 6, 2, 1
    arch = ArchConfig(
        vocab_size=V,
        d_model=d,
        n_heads=4,
        n_layers=L,
        seq_len=16,
        d_ff=f,
        norm="rmsnorm",
        position="rope",
        ffn_activation="relu",
        ffn_type="moe",
        n_experts=E,
        experts_top_k=k,
        n_shared_experts=s,
    )
    dense = count(
        ArchConfig(
            **{
                **arch.to_dict(),
                **dict.fromkeys(("n_experts", "experts_top_k", "n_shared_experts", "expert_d_ff"), None),
                "ffn_type": "dense",
            }
        )
    )
    expert = 2 * d * f
    c = count(arch)
    assert c.params == dense.params + L * (E + s - 1) * expert + L * d * E
    assert c.active_params == dense.params + L * (k + s - 1) * expert + L * d * E
    assert c.flops_per_token == dense.flops_per_token + 3 * L * 2 * ((k + s - 1) * expert + d * E)


def test_active_params_budget_gives_dense_and_moe_the_same_per_token_size():
    budget = Budget("active_params", 150_000)
    base = {"vocab_size": 256, "seq_len": 64, "n_layers": 2, "n_heads": 4, "head_dim": 16, "position": "rope"}
    dense = solve(base, budget)
    moe = solve({**base, "ffn_type": "moe", "n_experts": 8, "experts_top_k": 2}, budget)
    for s in (dense, moe):
        assert s.counts.active_params == pytest.approx(150_000, rel=0.01)
    assert moe.counts.params > 2 * moe.counts.active_params  # the experts a token skips
    # the ratio targets the FFN width a token uses: two experts of about half the dense width
    assert moe.arch.d_model == dense.arch.d_model
    assert 2 * moe.arch.expert_d_ff == pytest.approx(dense.arch.d_ff, rel=0.1)


def test_budget_kinds_are_listed_in_errors():
    assert "active_params" in BUDGET_KINDS
    with pytest.raises(SpaceError, match="active_params"):
        space_from_dict({"budget": {"kind": "total", "value": 1}})
    space = space_from_dict({"budget": {"kind": "params", "value": 1e5}})
    with pytest.raises(SpaceError, match="allowed: .*active_params"):
        space.with_budget("experts", 1e5)
    assert space.with_budget("active_params", 1e5).budget.kind == "active_params"


def test_a_fixed_expert_width_leaves_the_budget_to_d_model():
    s = solve({"ffn_type": "moe", "expert_d_ff": 64, "n_heads": 2, "head_dim": 16}, Budget("active_params", 2e5, 0.02))
    assert s.arch.expert_d_ff == s.arch.d_ff == 64  # d_ff is not read under moe with a fixed expert width
    assert s.counts.active_params == pytest.approx(2e5, rel=0.02)


def test_moe_space_samples_both_kinds_on_budget_and_dropless_is_a_choice():
    space = load_space(shipped_spaces()["moe"])
    assert space.budget.kind == "active_params"
    rng = random.Random(1)
    seen = {"dense": 0, "moe": 0}
    capacities = set()
    for _ in range(60):
        s = space.sample_random(rng)
        seen[s.arch.ffn_type] += 1
        capacities.add(s.arch.expert_capacity_factor)
        assert s.counts.active_params == pytest.approx(150_000, rel=0.01)
        if s.arch.ffn_type == "moe":
            assert s.counts.params > s.counts.active_params
            assert s.train.get("router_aux_loss_coef") in (0.001, 0.01)
        else:
            assert s.arch.n_experts is None and "router_aux_loss_coef" not in s.train
    assert seen["dense"] and seen["moe"]
    assert {None, 1.25} <= capacities


def test_space_show_samples_moe_on_budget():
    r = CliRunner().invoke(app, ["space", "show", "moe", "--samples", "12", "--seed", "3", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert {row["arch"]["ffn_type"] for row in rows} == {"dense", "moe"}
    for row in rows:
        assert row["active_params"] == pytest.approx(150_000, rel=0.01)
        assert (row["params"] > row["active_params"]) == (row["arch"]["ffn_type"] == "moe")
    r = CliRunner().invoke(app, ["space", "show", "moe", "--samples", "3"], terminal_width=200)
    assert r.exit_code == 0 and "active" in r.output and "moe" in r.output


def test_router_aux_loss_coef_is_a_searchable_recorded_training_setting():
    from archscale.spaces.record import CURVE_COLUMNS, TRIAL_COLUMNS
    from archscale.spaces.training import SEARCHABLE_TRAIN_FIELDS, TrainConfig

    assert "router_aux_loss_coef" in SEARCHABLE_TRAIN_FIELDS and "router_aux_loss_coef" in TRIAL_COLUMNS
    assert "active_params" in TRIAL_COLUMNS and "n_experts" in TRIAL_COLUMNS
    assert {"router_aux_loss", "expert_load_max_over_mean", "dropped_token_frac"} <= set(CURVE_COLUMNS)
    with pytest.raises(Exception, match="router_aux_loss_coef"):
        TrainConfig(router_aux_loss_coef=-1)


def test_budget_active_params_flag_overrides_the_space_budget():
    r = CliRunner().invoke(
        app, ["space", "show", "tiny", "--budget-active-params", "90000", "--samples", "2", "--json"]
    )
    assert r.exit_code == 0, r.output
    assert all(row["active_params"] == pytest.approx(90_000, rel=0.01) for row in json.loads(r.stdout))
    r = CliRunner().invoke(app, ["space", "show", "tiny", "--budget-active-params", "9e4", "--budget-params", "9e4"])
    assert r.exit_code == 2 and "--budget-active-params" in r.output


def test_report_effects_take_the_moe_fields_as_axes():
    """ffn_type is an axis with dense as its baseline; n_experts compares MoE trials only (dense rows are null)."""
    import polars as pl

    from archscale.analysis import axis_effects

    kinds = ["dense"] * 4 + ["moe"] * 4
    trials = pl.DataFrame(
        {
            "run": ["r"] * 8,
            "status": ["completed"] * 8,
            "arch_id": ["d1", "d2", "d3", "d4", "m1", "m2", "m3", "m4"],
            "ffn_type": kinds,
            "n_experts": [None] * 4 + [4, 4, 8, 8],
            "eval_loss": [3.0, 3.1, 3.05, 2.95, 2.8, 2.85, 2.7, 2.75],
        }
    )
    eff = axis_effects(trials)
    ffn = eff.filter(pl.col("axis") == "ffn_type")
    assert set(ffn["baseline"]) == {"dense"}
    assert ffn.filter(pl.col("value") == "moe")["effect"][0] == pytest.approx(2.775 - 3.025)
    experts = eff.filter(pl.col("axis") == "n_experts")
    assert set(experts["value"]) == {"4", "8"} and experts["n"].sum() == 4  # the dense rows take no part


def test_tokens_per_param_counts_the_parameters_a_token_uses():
    """A MoE at the same active size as a dense model trains on the same tokens (equal compute)."""
    from archscale.search.proposals import TrialPlan, active_params
    from archscale.spaces import ArchConfig, count

    dense = count(ArchConfig(d_model=64, d_ff=256))
    moe = count(ArchConfig(d_model=64, d_ff=256, ffn_type="moe", n_experts=8, experts_top_k=1))
    assert moe.params > 3 * dense.params and moe.active_params == dense.active_params + 2 * 64 * 8  # + 2 routers
    plan = TrialPlan(tokens_per_param=10.0)
    assert plan.tokens_for(moe) == 10 * moe.active_params and plan.tokens_for(dense) == 10 * dense.params
    assert active_params({"params": 5}) == 5  # results written before active_params existed
