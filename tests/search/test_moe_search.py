"""A small real search over the shipped spaces/moe.yaml: dense and MoE FFNs at equal active parameters."""

import polars as pl
import pytest

from archscale.search.options import BudgetOptions, ExecutionOptions, SearchOptions, StrategyOptions
from archscale.search.run import run_search
from tests.helpers import assert_results_agree_with_study

ROUTER_CURVES = ("router_aux_loss", "expert_load_max_over_mean", "expert_token_share", "dropped_token_frac")


@pytest.mark.slow
def test_search_over_the_moe_space_records_active_params_and_router_health(tmp_path, ray_cluster):
    out = tmp_path / "moe"
    run_search(
        SearchOptions(
            space="moe",
            out=str(out),
            trials=4,
            budget=BudgetOptions(tokens=8192, train={"eval_every_tokens": 4096, "eval_tokens": 2048, "batch_size": 8}),
            # the random sampler's first four draws hold both FFN kinds, one MoE with a capacity factor
            strategy=StrategyOptions(sampler="random", seed=1, scheduler="none"),
            execution=ExecutionOptions(progress=False),
        )
    )
    trials, curves, _ = assert_results_agree_with_study(out)
    assert trials.height == 4 and (trials["status"] == "completed").all(), trials["error"].to_list()
    assert set(trials["ffn_type"]) == {"dense", "moe"}
    assert trials["active_params"].is_not_null().all()
    for row in trials.iter_rows(named=True):
        assert row["active_params"] == pytest.approx(150_000, rel=0.01)  # the budget held fixed
        assert (row["params"] > row["active_params"]) == (row["ffn_type"] == "moe")

    kinds = trials.select("trial_id", "ffn_type", "n_experts", "expert_capacity_factor")
    curves = curves.join(kinds, on="trial_id")
    moe, dense = curves.filter(pl.col("ffn_type") == "moe"), curves.filter(pl.col("ffn_type") == "dense")
    assert moe.height >= 2 and dense.height >= 2
    for name in ROUTER_CURVES:
        assert moe[name].is_not_null().all(), name
        assert dense[name].is_null().all(), name
    assert (moe["router_aux_loss"] >= 1.0 - 1e-6).all()  # 1 = balanced, more otherwise
    assert (moe["expert_load_max_over_mean"] >= 1.0 - 1e-6).all()
    assert (moe["expert_token_share"].list.len() == moe["n_experts"]).all()
    dropless = moe.filter(pl.col("expert_capacity_factor").is_null())
    assert (dropless["dropped_token_frac"] == 0).all()
