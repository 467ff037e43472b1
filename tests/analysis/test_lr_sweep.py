"""A study's lr sweep: the scaling laws are fitted at factor 1 only, and the sweep says, per size,
whether factor 1 was the best lr (paired by seed, corrected for picking the best factor)."""

import numpy as np
import polars as pl
import pytest

from archscale.analysis import lr_sweep_summary, scaling_analysis
from archscale.analysis.data.synthetic_results import write_study
from archscale.analysis.laws.table import read_runs

FACTORS = (0.5, 1.0, 2.0)


def _sweep(optimum_by_size, seeds=3, sd=0.005, shared=0.05, lr=3e-3, curvature=0.1, seed=0):
    """Trials of one family at sizes x factors x seeds: loss = 3 + curvature * ln(factor / optimum)^2,
    plus a seed effect shared by every factor of a size (which pairing by seed removes) and noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for size, optimum in optimum_by_size.items():
        shared_by_seed = shared * rng.standard_normal(seeds)
        for f in FACTORS:
            for s in range(seeds):
                loss = 3 + curvature * np.log(f / optimum) ** 2 + shared_by_seed[s] + sd * rng.standard_normal()
                rows.append(dict(run="study", group="a", planned_size=size, lr_factor=f, lr=lr * f, seed=s,
                                 status="completed", eval_loss=loss))  # fmt: skip
    return pl.DataFrame(rows)


def test_the_sweep_says_where_factor_1_is_beaten_and_where_it_is_within_noise():
    # at 1e5 the optimum is the study's lr; at 4e5 it has moved to 1.6x (a transfer rule that drifts)
    summary = lr_sweep_summary(_sweep({1e5: 1.0, 4e5: 1.6}, seeds=4, sd=0.002))
    by_size = {r["planned_size"]: r for r in summary.iter_rows(named=True)}
    assert by_size[1e5]["verdict"] == "factor 1 is the best tried" and by_size[1e5]["best_factor"] == 1.0
    moved = by_size[4e5]
    assert moved["verdict"] == "factor 2 is better (resolved)" and moved["diff_hi"] < 0
    # truth: 0.1 (ln 1.25)^2 - 0.1 (ln 1.6)^2 = -0.017 nats; the shared seed effect (sd 0.05) cancels in the pairs
    assert moved["diff"] == pytest.approx(0.1 * (np.log(1.25) ** 2 - np.log(1.6) ** 2), abs=0.004)
    assert (moved["factors"], moved["seeds"]) == (3, 4)


def test_the_fitted_optimum_factor_brackets_the_truth_or_says_why_not():
    fits = lr_sweep_summary(_sweep({1e5: 1.0, 2e5: 1.4, 4e5: 2.0}, shared=0.0, sd=0.003))
    by_size = {r["planned_size"]: r for r in fits.iter_rows(named=True)}
    for size, truth in [(1e5, 1.0), (2e5, 1.4)]:
        assert by_size[size]["optimum_lo"] <= truth <= by_size[size]["optimum_hi"]
    assert by_size[4e5]["optimum_factor"] is None  # at the sweep's edge: not an estimate
    assert "above the learning rates tried" in by_size[4e5]["optimum_why"]


def test_a_small_difference_is_within_noise_and_one_seed_gets_no_verdict():
    noisy = lr_sweep_summary(_sweep({1e5: 1.3}, sd=0.03, seed=0)).row(0, named=True)
    assert noisy["best_factor"] != 1.0 and noisy["verdict"] == "within noise"
    assert noisy["diff_lo"] < 0 < noisy["diff_hi"]
    one = lr_sweep_summary(_sweep({1e5: 2.0}, seeds=1)).row(0, named=True)
    assert one["verdict"] == "one seed: no noise estimate; run 2 more seeds" and one["diff_lo"] is None
    assert one["optimum_factor"] is None and "3 runs at 3 learning rates" in one["optimum_why"]


def test_without_a_sweep_there_is_no_summary():
    assert lr_sweep_summary(pl.DataFrame({"eval_loss": [1.0]})).height == 0


def test_scaling_fits_and_law_tables_use_factor_1_only(tmp_path):
    """The same study with detuned (worse) sweep points added fits the same laws: they are a check,
    never points of the law; `archscale fit` on the directory reads factor 1 and unswept runs."""
    d = write_study(tmp_path / "study", budgets=(1e12, 3e12, 1e13), sizes_per_budget=5)
    trials = pl.read_parquet(d / "trials.parquet")
    plain = scaling_analysis(trials.with_columns(run=pl.lit("study")), bootstrap=0)
    detuned = trials.with_columns(lr_factor=pl.lit(2.0), eval_loss=pl.col("eval_loss") + 0.3, lr=pl.col("lr") * 2)
    swept = pl.concat([trials.with_columns(lr_factor=pl.lit(1.0)), detuned], how="diagonal_relaxed")
    swept.write_parquet(d / "trials.parquet")
    both = scaling_analysis(swept.with_columns(run=pl.lit("study")), bootstrap=0)
    assert both.runs.height == plain.runs.height == trials.height
    for name, fit in plain.power.items():
        assert both.power[name].params == pytest.approx(fit.params)
    runs, loss = read_runs(d)
    assert runs.height == trials.height and runs["lr_factor"].to_list() == [1.0] * trials.height
