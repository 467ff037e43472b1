"""Per-configuration noise, the noise model one-run configurations borrow from, and selection (issue 19)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from archscale.analysis import compare_to_best, holm, rank_configurations
from archscale.analysis.compare.ladder_verdicts import ladder_differences, ladder_p_best
from archscale.analysis.compare.rankings import best_interval
from archscale.analysis.compare.selection import p_best, selected_best
from archscale.analysis.compare.stats import seeds_needed_range
from archscale.analysis.data import synthetic_searches as ss
from archscale.analysis.data.seed_effects import complete_block, seed_effect
from archscale.analysis.laws.ladder import fit_ladders

ROOT = Path(__file__).resolve().parents[2]


def _search(rng: np.random.Generator, lone_lr: float) -> pl.DataFrame:
    """6 replicated architectures at 0.03 nats (lr 1e-3 to 3e-3) and one single run at ``lone_lr``."""
    s = ss.shape([(6, 3, 0.03, (1e-3, 3e-3)), (1, 1, 0.03, (lone_lr, lone_lr))])
    return ss.search_trials(rng, s)


def test_a_one_run_configuration_borrows_inside_the_replicated_range_only() -> None:
    rng = np.random.default_rng(0)
    inside = rank_configurations(_search(rng, 2e-3)).filter(pl.col("n") == 1).row(0, named=True)
    assert inside["interval"].startswith("noise model, dof") and inside["noise"] == "noise model"
    assert 0.3 < math.sqrt(inside["var"]) / 0.03 < 3 and inside["var_dof"] >= 2
    outside = rank_configurations(_search(rng, 8e-3)).filter(pl.col("n") == 1).row(0, named=True)
    assert outside["interval"] == "none" and "outside the log lr range" in outside["noise_why"]
    row = compare_to_best(_search(rng, 8e-3)).filter(pl.col("name").str.starts_with("arch6 ")).row(0, named=True)
    assert row["verdict"] == "one run" and row["noise_why"].startswith("one run: no noise estimate; run 2 more seeds")


def test_the_tpe_shaped_null_search_resolves_nothing_false_most_of_the_time() -> None:
    """Issue 19's reviewer test, small: 40 null searches of the TPE shape; the old pooled rule
    resolved a difference in every one of 200."""
    rng = np.random.default_rng(3)
    false = [
        (compare_to_best(ss.search_trials(rng, ss.UNEQUAL_NOISE))["verdict"] == "resolved").any() for _ in range(40)
    ]
    assert np.mean(false) <= 0.15  # goal 0.05; 40 searches: 0.05 + 3 Monte Carlo s.e.


def test_holm_with_a_larger_family_counts_the_missing_p_values_as_one() -> None:
    assert holm([0.01, 0.02], family=10) == pytest.approx([0.1, 0.18])
    assert (holm([0.01, 0.02], family=10) >= holm([0.01, 0.02])).all()


def test_p_best_is_a_probability_with_its_monte_carlo_error() -> None:
    p, mc = p_best(np.array([1.0, 1.0, 2.0, np.nan]), np.array([0.1, 0.1, 0.1, 0.1]), np.array([4.0, 4.0, 4.0, 4.0]))
    assert np.nansum(p) == pytest.approx(1.0) and math.isnan(p[3]) and p[2] < 0.01
    assert p[0] == pytest.approx(0.5, abs=0.05) and mc[0] == pytest.approx(math.sqrt(p[0] * (1 - p[0]) / 4000))


def test_the_selection_corrected_interval_moves_up_and_covers_a_null_best() -> None:
    """Ten equal truths: the lowest mean is optimistic; the corrected interval lies higher than the
    plain one and covers the truth in most of 40 searches, the plain one less often."""
    rng = np.random.default_rng(7)
    plain, corrected = [], []
    for i in range(40):
        ranking = rank_configurations(ss.search_trials(rng, ss.EQUAL_NOISE), seed=i)
        top, sel = ranking.row(0, named=True), best_interval(ranking, seed=i).row(0, named=True)
        plain.append(top["lo"] <= 2.4 <= top["hi"])
        corrected.append(sel["best_lo"] <= 2.4 <= sel["best_hi"])
        assert (sel["best_lo"] + sel["best_hi"]) / 2 > top["mean"] and sel["optimism"] > 0
    assert np.mean(corrected) >= 0.9 and np.mean(corrected) > np.mean(plain)


def test_selected_best_of_one_clear_winner_needs_no_correction() -> None:
    sel = selected_best(np.array([1.0, 2.0, 3.0]), np.array([0.01, 0.01, 0.01]), np.array([50.0, 50.0, 50.0]))
    assert sel["optimism"] == pytest.approx(0.0, abs=0.002) and sel["lead_lo"] < 1.0 < sel["lead_hi"]


def test_seed_effect_sees_a_shared_seed_effect_with_an_interval_that_covers() -> None:
    """The two-way estimate of the shared part: near the truth with 8 seeds, and its 95% interval
    covers the true correlation in about 95% of 200 layouts of 6 configurations x 3 seeds."""
    rng = np.random.default_rng(1)
    common = rng.normal(0, 1, 8)
    y = np.array([0.8 * common + 0.6 * rng.normal(0, 1, 8) for _ in range(6)])  # rho = 0.64
    est = seed_effect(y)
    assert est is not None and 0.4 < est.rho < 0.85 and est.rho_lo < 0.64 < est.rho_hi
    assert (est.n_configs, est.n_seeds) == (6, 8)
    null = seed_effect(rng.normal(0, 1, (6, 8)))
    assert null is not None and null.rho < 0.3 and null.rho_lo == 0.0
    covered = []
    for _ in range(200):
        z = rng.normal(0, 1, 3)
        e = seed_effect(np.array([np.sqrt(0.5) * z + np.sqrt(0.5) * rng.normal(0, 1, 3) for _ in range(6)]))
        covered.append(e.rho_lo <= 0.5 <= e.rho_hi)
    assert 0.90 <= np.mean(covered) <= 0.99


def test_the_complete_block_is_the_largest_configs_x_seeds_rectangle() -> None:
    nan = np.nan
    y = np.array([[1, 2, 3, nan], [1, 2, 3, 4], [1, 2, nan, nan], [1, nan, nan, nan], [1, 2, 3, 4]], float)
    rows, cols = complete_block(y)
    assert rows.tolist() == [0, 1, 4] and cols.tolist() == [0, 1, 2]  # 3 x 3: (3-1)(3-1) = 4 dof
    assert seed_effect(np.array([[1.0, nan], [nan, 2.0]])) is None  # no two configurations share a seed


def test_a_shared_part_known_to_two_dof_gets_the_heavy_tail_of_three_seeds() -> None:
    """Ten equal configurations on the same 3 seeds, 90% of their noise shared: the shared part
    moves them together, so the best's interval is about the t interval with 2 dof (4.30 / 1.96
    as wide as a normal one), not one drawn as if the shared variance were known."""
    from archscale.analysis.compare.selection import SharedSeeds
    from archscale.analysis.data.seed_effects import SeedEffect

    mean, se, dof = np.full(10, 2.0), np.full(10, 0.01), np.full(10, 200.0)
    blocks = [[0, 1, 2]] * 10
    effect = SeedEffect(0.9, 0.5, 0.99, 1.0, 0.1, 10, 3)
    known = selected_best(mean, se, dof, shared=SharedSeeds(blocks, 3, 0.9))
    drawn = selected_best(mean, se, dof, shared=SharedSeeds(blocks, 3, 0.9, effect))
    ratio = (drawn["best_hi"] - drawn["best_lo"]) / (known["best_hi"] - known["best_lo"])
    assert 1.5 < ratio < 2.6, ratio


def test_an_unpaired_difference_on_one_common_seed_takes_its_covariance_off() -> None:
    """A one-run configuration on seed 0 against others' 6 seeds, 80% of the noise shared: the
    common seed's covariance (at seed_corr_lo) narrows the Welch interval; without a seed, none."""
    rng = np.random.default_rng(5)
    s = ss.shape([(8, 6, 0.03, (1e-3, 3e-3)), (1, 1, 0.03, (2e-3, 2e-3))])
    trials = ss.search_trials(rng, s, shared=0.8)
    lone = pl.col("arch_id") == "a8"
    involved = pl.col("name").str.starts_with("arch8 ") | pl.col("best").str.starts_with("arch8 ")
    with_seed = compare_to_best(trials).filter(involved).row(0, named=True)
    no_seed = trials.with_columns(seed=pl.when(lone).then(None).otherwise(pl.col("seed")))
    without = compare_to_best(no_seed).filter(involved).row(0, named=True)
    assert with_seed["method"] == without["method"] == "welch (noise model)" and with_seed["n_pairs"] == 1
    assert rank_configurations(trials)["seed_corr_lo"][0] > 0
    assert with_seed["hi"] - with_seed["lo"] < 0.97 * (without["hi"] - without["lo"])


def test_the_best_interval_covers_when_half_the_noise_is_shared_by_a_seed() -> None:
    """The TPE-shaped null search with half of the noise shared by the runs of a seed: the
    shared-seed bootstrap's interval of the best covers its truth (0.91 over 200 searches before,
    with the shared part drawn at its point estimate; 0.95 now; 60 searches here)."""
    rng = np.random.default_rng(11)
    covered, rho = [], []
    for i in range(60):
        ranking = rank_configurations(ss.search_trials(rng, ss.UNEQUAL_NOISE, shared=0.5), seed=i)
        sel = best_interval(ranking, seed=i).row(0, named=True)
        covered.append(sel["best_lo"] <= 2.4 <= sel["best_hi"])
        top = ranking.filter(pl.col("var").is_not_null()).row(0, named=True)
        assert top["n_seeds"] == 3 and top["seed_block_configs"] >= 6 and top["seed_corr_lo"] <= top["seed_corr_hi"]
        rho.append(top["seed_corr"])
    assert np.mean(covered) >= 0.9 and 0.2 < np.mean(rho) < 0.7


def test_seeds_needed_is_a_range_that_widens_with_fewer_degrees_of_freedom() -> None:
    needed, lo, hi = seeds_needed_range(np.array([0.03, 0.03]), np.array([1.0, 20.0]), paired=True)
    assert (lo < needed).all() and (needed < hi).all()
    assert hi[0] / lo[0] > 10 * hi[1] / lo[1]  # two pairs say almost nothing about the spread


def test_ladder_p_best_and_differences_read_the_joint_refits() -> None:
    rng = np.random.default_rng(2)
    ladders = ss.null_ladders(rng, noise=0.015)
    fit = fit_ladders(ladders, bootstrap=100, seed=0)
    targets = {k: 10 * float(c.max()) for k, (c, _) in ladders.items()}
    probs = ladder_p_best(fit, targets)
    assert sum(p for p, _ in probs.values()) == pytest.approx(1.0) and all(mc >= 0 for _, mc in probs.values())
    diffs = ladder_differences(fit, targets)
    assert diffs.height == len(ladders) - 1 and (diffs["comparisons"] == 6).all()
    assert set(diffs["verdict"]) <= {"resolved", "within noise"}


@pytest.mark.slow
def test_bench_verdicts_quick_meets_the_null_goal() -> None:
    """The benchmark's quick mode: every null cell's false_resolved at most 0.05 + 2 Monte Carlo s.e."""
    import json

    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_verdicts.py"), "--quick", "--json"],
        capture_output=True, text=True, check=False, timeout=1200,
    )  # fmt: skip
    result = json.loads(out.stdout)
    assert result["goal_met"], result["null"]
    assert all("false_resolved" in cell for cell in result["null"].values())


def test_an_effect_resting_on_one_architecture_says_so() -> None:
    from archscale.analysis import axis_effects

    rows = [{"run": "r", "status": "completed", "arch_id": arch, "lr": 1e-3, "seed": seed, "norm": norm,
             "eval_loss": loss + 0.01 * seed}
            for arch, norm, loss in (("a", "layernorm", 3.0), ("b", "rmsnorm", 2.9)) for seed in range(3)]  # fmt: skip
    row = axis_effects(pl.DataFrame(rows), axes=["norm"]).filter(pl.col("value") == "rmsnorm").row(0, named=True)
    assert row["architectures"] == 1 and row["base_architectures"] == 1


def test_a_tpe_search_says_its_effects_are_observational(tmp_path: Path) -> None:
    import json

    from archscale.analysis.compare.verdicts import design_note

    (tmp_path / "run.json").write_text(json.dumps({"kind": "search", "args": {"sampler": "tpe"}}))
    assert "observational" in design_note("s", tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"kind": "search", "args": {"sampler": "random"}}))
    assert "random design" in design_note("s", tmp_path)
