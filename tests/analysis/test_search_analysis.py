"""The analysis ``search`` shows, computed in ``analysis``: a ladder search's status summary, the
one-run interval of its held-out check, and the quickstart's closing findings."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from archscale.analysis import fit_ladders, ladder_summary, one_run_interval, quickstart_findings, summarize_validation
from archscale.analysis.data import synthetic, synthetic_results


def test_one_run_interval_widens_the_law_interval_by_the_run_noise() -> None:
    runs, _ = synthetic.ladder_search_runs(np.random.default_rng(0), ladders=4, noise=0.02)
    fit = fit_ladders(runs, bootstrap=100, seed=0)
    assert fit.identified and math.isfinite(fit.sigma) and fit.sigma > 0
    pred = fit.predict(0, 1e13)
    assert pred is not None and math.isfinite(pred[1])
    lo, hi = one_run_interval(pred, fit)
    assert lo < pred[1] <= pred[0] <= pred[2] < hi
    assert one_run_interval((None, math.nan, math.nan), fit) == (pytest.approx(math.nan, nan_ok=True),) * 2


def test_summarize_validation_names_the_winners_and_the_coverage() -> None:
    rows = [
        {"label": "a", "actual_loss": 2.0, "predicted_loss": 2.1, "covered": True, "small_scale_pick": False},
        {"label": "b", "actual_loss": 1.9, "predicted_loss": 2.0, "covered": False, "small_scale_pick": True},
        {"label": "c", "actual_loss": None, "predicted_loss": 1.8, "covered": None},
    ]
    s = summarize_validation(rows)
    assert s["predicted_winner"] == "b" and s["actual_winner"] == "b" and s["small_scale_winner"] == "b"
    assert s["coverage"] == 0.5 and s["validated"] is rows


def test_ladder_summary_ranks_at_the_target_beside_the_small_scale(tmp_path: Path) -> None:
    pred = pl.DataFrame(
        {"ladder_id": [0, 1, 2], "label": ["x", "y", "z"], "status": ["predicted", "predicted", "not identified"],
         "reason": [None, None, "2 distinct compute levels"], "predicted_loss": [2.2, 2.0, None],
         "lo": [2.1, 1.9, None], "hi": [2.3, 2.1, None], "law": ["shared E"] * 3, "alpha": [0.3, 0.35, None],
         "rung0_loss": [2.9, 3.0, 3.1], "target_compute": [1e15] * 3, "crossings": [[], [], []],
         "target_params": [1e6, 2e6, None]}
    )  # fmt: skip
    pred.write_parquet(tmp_path / "predictions.parquet")
    info = ladder_summary(tmp_path, {"ladder": {"rungs": 3}}, ["predicted_loss", "params"], ["minimize", "minimize"])
    assert [r["label"] for r in info["predicted"]] == ["y", "x"]  # by predicted loss at the target
    assert [r["label"] for r in info["small_scale"]] == ["x", "y", "z"]  # by rung-0 loss
    assert info["not_predicted"][0]["reason"] == "2 distinct compute levels"
    assert {r["label"] for r in info["pareto"]} == {"x", "y"}  # x is cheaper, y is better
    assert ladder_summary(tmp_path / "none", {}, ["predicted_loss"], ["minimize"])["predicted"] == []


def test_quickstart_findings_rank_by_seed_mean_and_fit_each_family(tmp_path: Path) -> None:
    search = synthetic_results.write_search(tmp_path / "search", n_archs=6, seeds=2, with_study=False)
    study = synthetic_results.write_study(tmp_path / "scaling", budgets=(1e17, 1e18, 1e19, 1e20), sizes_per_budget=3)
    f = quickstart_findings([search], study, bootstrap=0)
    means = [r["mean"] for r in f["ranking"]]
    assert means == sorted(means) and f["best"] == f["ranking"][0]
    assert set(f["exponents"]) == set(synthetic_results.STUDY_LAWS)
    assert all(e["alpha"] is not None and 0.1 < e["alpha"] < 1.0 for e in f["exponents"].values())
    assert f["winner_holds_at_largest"] is None or isinstance(f["winner_holds_at_largest"], bool)
