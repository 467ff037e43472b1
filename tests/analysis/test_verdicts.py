"""Comparisons that respect sample size, pairing and selection, and the verdicts built on them.

Every test builds data whose truth is known and checks the tool reports it (issue 10, sections 3 and 5).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from archscale.analysis import (
    at_equal_tokens,
    axis_effects,
    comparable_trials,
    compare_to_best,
    holm,
    load_trials,
    lr_sensitivity,
    rank_configurations,
    seeds_needed,
    verdicts,
    verdicts_text,
    with_budget_cells,
)
from archscale.analysis.compare.scaling import ScalingAnalysis, scaling_analysis
from archscale.analysis.data import synthetic_results as synthetic

#: A real scaling analysis with no fits: verdicts on hand-made trials, without a study to fit.
NO_FITS = ScalingAnalysis(runs=pl.DataFrame(), target=math.nan, bootstrap=0, power={}, approach3=None, approach2=None)


def cell_trials(losses: dict[str, list[float]], *, run: str = "study", seeds: list[int] | None = None) -> pl.DataFrame:
    """Trials of one study grid point: family -> one loss per seed."""
    rows = []
    for family, values in losses.items():
        for seed, loss in zip(seeds or range(len(values)), values, strict=True):
            rows.append({"run": run, "status": "completed", "group": family, "label": family, "seed": seed,
                         "arch_id": family, "lr": 1e-3, "planned_kind": "params", "planned_size": 1e5,
                         "params": 100_000, "target_tokens": 1_000_000, "eval_loss": loss})  # fmt: skip
    return pl.DataFrame(rows)


# ---- the statistics ---------------------------------------------------------------------------


def test_holm_matches_a_hand_computation() -> None:
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([0.2, np.nan, 0.001])  # NaN is no comparison: m = 2
    assert adjusted[0] == pytest.approx(0.2) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.002)
    assert holm([0.9, 0.8]).max() <= 1.0


def test_seeds_needed_matches_textbook_power_tables() -> None:
    # Cohen's d = 0.5: 34 pairs (paired t, two-sided 0.05, power 0.8); d = 0.1 two-sample: 1571 per group
    needed = seeds_needed([0.5, 0.1, 0.0], [1.0, 1.0, 1.0], paired=[True, False, True])
    assert needed[0] == 34 and needed[1] == 1571 and math.isinf(needed[2])
    assert math.isinf(seeds_needed([0.1], [np.nan], paired=True)[0])  # spread unknown: no number


# ---- comparisons of architectures -------------------------------------------------------------


def test_a_real_difference_is_resolved_and_its_interval_covers_the_truth() -> None:
    """200 simulated grid points, each with two families over 8 shared seeds: the paired interval
    covers the true difference (0.1) at its nominal rate, and the difference is resolved."""
    rng = np.random.default_rng(0)
    sims, seeds = 200, 8
    seed_noise = rng.normal(0, 0.03, (sims, seeds))  # shared by both families: the same data order
    a = 3.0 + seed_noise + rng.normal(0, 0.01, (sims, seeds))
    b = 3.1 + seed_noise + rng.normal(0, 0.01, (sims, seeds))
    trials = pl.concat([cell_trials({"a": list(a[i]), "b": list(b[i])}, run=f"sim{i}") for i in range(sims)])
    rows = compare_to_best(trials)
    assert rows.height == sims and (rows["method"] == "paired").all() and (rows["n_pairs"] == seeds).all()
    coverage = ((rows["lo"] < 0.1) & (0.1 < rows["hi"])).mean()
    assert 0.91 <= coverage <= 0.99, coverage
    assert (rows["verdict"] == "resolved").all()


def test_a_null_difference_is_within_noise_and_says_how_many_seeds_to_run() -> None:
    rng = np.random.default_rng(1)
    trials = cell_trials({"a": list(3.0 + rng.normal(0, 0.05, 3)), "b": list(3.01 + rng.normal(0, 0.05, 3))})
    row = compare_to_best(trials).row(0, named=True)
    assert row["verdict"] == "within noise" and row["lo"] < 0 < row["hi"]
    # planned for the smallest effect of interest (0.02 nats), not the observed difference, as a range
    expected = seeds_needed([0.02], [row["sd"]], paired=[True])[0]
    assert row["seeds_needed"] == expected and row["seeds_needed"] > 3 and row["min_effect"] == 0.02
    assert row["seeds_needed_lo"] < row["seeds_needed"] < row["seeds_needed_hi"]
    text = verdicts_text(verdicts(trials, scaling=NO_FITS))
    assert "within noise" in text and "would resolve a 0.02-nat difference" in text and "n=3" in text
    assert "is best with probability" in text and "corrected for its selection" in text


def test_pairing_shrinks_the_interval_when_seeds_share_noise(tmp_path: Path) -> None:
    d = synthetic.write_study(
        tmp_path / "s", budgets=(1e18,), sizes_per_budget=1, seeds=6, seed_noise=0.05, noise=0.001
    )
    trials = load_trials(d).collect()
    paired = compare_to_best(trials).row(0, named=True)
    welch = compare_to_best(trials, method="welch").row(0, named=True)
    law = synthetic.STUDY_LAWS
    n, tokens = trials["params"][0], trials["tokens"][0]

    def chinchilla(p: dict[str, float]) -> float:
        return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / tokens ** p["beta"]

    truth = chinchilla(law["baseline"]) - chinchilla(law["swiglu·rope"])
    assert paired["method"] == "paired" and welch["method"] == "welch"
    assert (paired["hi"] - paired["lo"]) < 0.25 * (welch["hi"] - welch["lo"])
    assert paired["lo"] < truth < paired["hi"] and welch["lo"] < truth < welch["hi"]
    assert paired["verdict"] == "resolved"


def test_a_single_trial_gets_no_interval_of_its_own() -> None:
    alone = cell_trials({"a": [3.0], "b": [3.2]})
    assert rank_configurations(alone)["interval"].to_list() == ["none", "none"]
    row = compare_to_best(alone).row(0, named=True)
    assert row["method"] == "none" and row["lo"] is None and row["verdict"] == "one run"
    assert row["noise_why"].startswith("one run: no noise estimate; run 2 more seeds")
    # one replicated configuration is no model of the noise: nothing is borrowed from it
    more = pl.concat([alone, cell_trials({"c": [3.5, 3.6, 3.7]}, seeds=[5, 6, 7])])
    ranked = rank_configurations(more).filter(pl.col("name") == "a").row(0, named=True)
    assert ranked["interval"] == "none" and ranked["lo"] is None


def test_axis_effect_of_a_value_seen_once() -> None:
    trials = pl.DataFrame(
        {"run": "r", "status": "completed", "norm": ["layernorm", "rmsnorm"], "eval_loss": [3.0, 2.9]}
    )
    row = axis_effects(trials, axes=["norm"]).filter(pl.col("value") == "rmsnorm").row(0, named=True)
    assert row["method"] == "none" and row["lo"] is None and row["verdict"] == "no interval"
    pooled = pl.DataFrame(
        {
            "run": "r",
            "status": "completed",
            "norm": ["layernorm"] * 4 + ["rmsnorm"],
            "eval_loss": [3.0, 3.1, 2.9, 3.0, 2.8],
        }
    )
    row = axis_effects(pooled, axes=["norm"]).filter(pl.col("value") == "rmsnorm").row(0, named=True)
    assert row["method"] == "welch (pooled sd)" and row["lo"] < row["effect"] < row["hi"]


def test_axis_effects_holm_adjust_over_every_comparison(search_dir: Path) -> None:
    eff = axis_effects(load_trials(search_dir))
    compared = eff.filter(pl.col("p").is_not_null())
    assert compared.height == eff["comparisons"][0] > 5
    assert compared["p_holm"].to_list() == pytest.approx(holm(compared["p"].to_numpy()).tolist())
    assert (compared["p_holm"] >= compared["p"]).all()
    assert ((compared["verdict"] == "resolved") == (compared["p_holm"] < 0.05)).all()
    # architectures, not seed replicas, are the observations of a value in a search
    assert compared["n"].max() <= load_trials(search_dir).collect()["arch_id"].n_unique()


def test_seed_replicas_of_one_architecture_are_not_independent_observations() -> None:
    """Two architectures per value with 5 seeds each: n is 2 architectures, not 10 trials."""
    rows = []
    for arch, norm, loss in (
        ("a", "layernorm", 3.0),
        ("b", "layernorm", 3.2),
        ("c", "rmsnorm", 3.1),
        ("d", "rmsnorm", 2.95),
    ):
        for seed in range(5):
            rows.append({"run": "r", "status": "completed", "arch_id": arch, "lr": 1e-3, "seed": seed, "norm": norm,
                         "eval_loss": loss + 0.001 * seed})  # fmt: skip
    row = axis_effects(pl.DataFrame(rows), axes=["norm"]).filter(pl.col("value") == "rmsnorm").row(0, named=True)
    assert row["n"] == 2 and row["n_base"] == 2 and row["verdict"] != "resolved"


# ---- grid points, ASHA, learning rates -------------------------------------------------------


def test_cells_follow_the_planned_grid_point_not_the_achieved_size() -> None:
    # achieved 112,000 and 126,000 parameters straddle a 0.05-decade rounding boundary; planned alike
    trials = pl.DataFrame(
        {"run": "r", "group": ["a", "b", "a"], "planned_kind": "params", "planned_size": [1.2e5, 1.2e5, 2.4e5],
         "params": [112_000, 126_000, 240_000], "target_tokens": [336_000, 378_000, 720_000]}
    )  # fmt: skip
    cells = with_budget_cells(trials).collect()["cell"].to_list()
    assert cells[0] == cells[1] != cells[2] and cells[0].startswith("params=120000")


def test_a_ladder_searchs_rungs_are_cells_of_their_own() -> None:
    # rung 0 and rung 1 are different budgets: never compared with each other as one "search" cell
    trials = pl.DataFrame(
        {"run": "l", "rung": [0, 0, 1, 1], "params": [20_100, 19_800, 80_400, 79_900],
         "target_tokens": [400_000, 400_000, 1_600_000, 1_600_000]}
    )  # fmt: skip
    cells = with_budget_cells(trials).collect()["cell"].to_list()
    assert cells[0] == cells[1] != cells[2] == cells[3]
    assert cells[0] == "rung 0, params≈19800" and cells[2].startswith("rung 1, params≈")
    # a plain search without rungs keeps its one cell
    plain = with_budget_cells(pl.DataFrame({"run": "s", "params": [1, 2]})).collect()["cell"].to_list()
    assert plain == ["search", "search"]


def test_asha_effects_count_stopped_trials_at_equal_tokens() -> None:
    """ASHA stopped two of three bad architectures at 250 tokens; the lucky survivor hides the truth."""
    finals = {"r1": ("rope", 3.0), "r2": ("rope", 3.01), "r3": ("rope", 2.99),
              "n1": ("none", 3.2), "n2": ("none", 3.25), "n3": ("none", 3.05)}  # fmt: skip
    stopped = {"n1", "n2"}
    trials = pl.DataFrame(
        [{"run": "s", "trial_id": i, "arch_id": a, "lr": 1e-3, "seed": 0, "position": pos,
          "status": "pruned" if a in stopped else "completed", "tokens": 250 if a in stopped else 1000,
          "eval_loss": final + (0.5625 if a in stopped else 0.0)}
         for i, (a, (pos, final)) in enumerate(finals.items())]
    )  # fmt: skip
    curves = pl.DataFrame(
        [{"run": "s", "trial_id": i, "tokens": t, "eval_loss": final + (1 - t / 1000) ** 2}
         for i, (a, (_, final)) in enumerate(finals.items()) for t in (125, 250, 500, 750, 1000)
         if a not in stopped or t <= 250]
    )  # fmt: skip
    rope = {"position": "rope"}
    survivors = axis_effects(trials, axes=["position"], baselines=rope).filter(pl.col("value") == "none")
    assert survivors["effect"][0] == pytest.approx(0.05) and survivors["n"][0] == 1
    equal, notes = comparable_trials(trials, curves)
    assert set(equal["compared_at_tokens"]) == {250} and (equal["status"] == "completed").all()
    row = axis_effects(equal, axes=["position"], baselines=rope).filter(pl.col("value") == "none").row(0, named=True)
    assert row["effect"] == pytest.approx(0.2 / 3 + 0.1, abs=1e-9) and row["n"] == 3  # (3.2+3.25+3.05)/3 - 3.0
    assert "250 tokens" in notes[0] and "only the 4 that finished" in notes[0]


def test_at_equal_tokens_interpolates_between_evaluations() -> None:
    trials = pl.DataFrame({"run": "s", "trial_id": [0, 1], "status": ["completed", "pruned"], "eval_loss": [1.0, 2.0]})
    curves = pl.DataFrame(
        {"run": "s", "trial_id": [0, 0, 0, 1, 1], "tokens": [100, 200, 400, 100, 150],
         "eval_loss": [3.0, 2.0, 1.0, 3.5, 2.5]}
    )  # fmt: skip
    out = at_equal_tokens(trials, curves).sort("trial_id")
    assert out["compared_at_tokens"].to_list() == [150, 150]
    assert out["eval_loss"].to_list() == pytest.approx([2.5, 2.5])  # 3.0 -> 2.0 half-way; 2.5 exactly


def test_lr_sensitivity_follows_wortsman_et_al() -> None:
    """E_lr[min(L(lr), L0) - L*] with L0 = ln(vocab): a run worse than init (or diverged) counts as L0."""
    l0 = math.log(256)
    trials = pl.DataFrame(
        {"run": "s", "arch_id": ["a", "a", "a", "a", "a", "b"], "vocab_size": 256,
         "lr": [1e-3, 1e-3, 3e-3, 1e-2, 3e-2, 1e-3],
         "status": ["completed", "completed", "completed", "completed", "failed", "completed"],
         "error": [None, None, None, None, "diverged: non-finite loss at step 40 (5120 tokens)", None],
         "eval_loss": [3.0, 3.2, 2.9, 6.0, None, 3.0]}
    )  # fmt: skip
    sens = lr_sensitivity(trials).sort("arch_id")
    a = sens.row(0, named=True)
    per_lr = [3.1, 2.9, l0, l0]  # seeds averaged; 6.0 and the divergence capped at L0
    assert a["lrs"] == 4 and a["best_lr"] == 3e-3 and a["best_loss"] == pytest.approx(2.9)
    assert a["lr_sensitivity"] == pytest.approx(np.mean([x - 2.9 for x in per_lr]))
    assert sens.row(1, named=True)["lr_sensitivity"] is None  # one learning rate: nothing to compare


# ---- the verdicts -----------------------------------------------------------------------------


def test_verdicts_rank_re_run_finalists_not_the_lucky_draw() -> None:
    search = pl.DataFrame(
        {"run": "search", "status": "completed", "arch_id": ["x", "y", "z"], "label": ["lucky", "steady", "other"],
         "lr": [6e-3, 3e-3, 1e-3], "seed": 0, "eval_loss": [2.22, 2.40, 2.60]}
    )  # fmt: skip
    reruns = cell_trials({"lucky": [2.50, 2.47, 2.49], "steady": [2.41, 2.40, 2.42]}, run="seeds", seeds=[1, 2, 3])
    v = verdicts(pl.concat([search, reruns], how="diagonal_relaxed"), scaling=NO_FITS)
    assert v.best["run"] == "seeds" and v.best["name"] == "steady" and v.best["n"] == 3
    assert v.best["lo"] < v.best["mean"] < v.best["hi"]
    assert v.differences["verdict"][0] == "resolved" and v.differences["n_pairs"][0] == 3
    assert not any("optimistic" in n for n in v.notes)
    text = verdicts_text(v)
    assert text.startswith("Best architecture (seeds") and "steady" in text.splitlines()[0]


def test_verdicts_say_why_a_family_has_no_power_law(tmp_path: Path) -> None:
    """On a real ``scaling_analysis``: a family whose power law is refused (2 runs) is named in the
    fits with the reason, and the text says it (the verdicts once read a field that does not exist
    and dropped every refusal)."""
    d = synthetic.write_study(tmp_path / "study", budgets=(1e17, 1e18, 1e19, 1e20), sizes_per_budget=3)
    trials = pl.read_parquet(d / "trials.parquet")
    few = trials.filter(pl.col("group") != "baseline")["group"][0]
    keep = trials.filter((pl.col("group") != few) | (pl.col("trial_id").is_in(
        trials.filter(pl.col("group") == few)["trial_id"].head(2).implode())))  # fmt: skip
    keep.write_parquet(d / "trials.parquet")
    s = scaling_analysis(d, bootstrap=0)
    reason = s.power_refused[few]
    assert "at least 3 runs" in reason and f"power law {few}" in s.refused
    fits = verdicts(d, scaling=s).fits
    by = {(r["law"], r["series"]): r for r in fits.iter_rows(named=True)}
    row = by[("power law in compute", few)]
    assert not row["identified"] and row["reason"] == reason and row["estimate"] is None
    good = by[("power law in compute", "baseline")]
    assert good["identified"] and good["estimate"] == pytest.approx(s.power["baseline"].loss_at(s.target)[0, 0])
    text = verdicts_text(verdicts(d, scaling=s))
    assert f"power law in compute, {few}: not identified: {reason}" in text
    assert "power law in compute, baseline: identified" in text


def test_verdicts_on_the_synthetic_fixtures(search_dir: Path, study_dir: Path) -> None:
    v = verdicts([search_dir, study_dir], bootstrap=10)
    # the best is selected: every pair of the headline cell's architectures is in the family
    k = v.ranking.height
    assert v.best is not None and v.comparisons == k * (k - 1) // 2 + int(v.effects["p"].is_not_null().sum())
    assert v.ranking["p_best"].sum() == pytest.approx(1.0) and v.best["best_lo"] < v.best["mean"]
    family = v.effects.filter(pl.col("axis") == "group").row(0, named=True)
    assert family["method"] == "paired" and family["verdict"] == "resolved" and family["effect"] < 0
    assert any("early stopping" in n for n in v.notes)
    searched = set(v.effects.filter(pl.col("run") == search_dir.name)["axis"])  # not the dims the budget solved
    assert searched and searched <= set(synthetic.SEARCH_EFFECTS)
    assert set(v.fits["identified"]) <= {True, False} and v.fits.height >= 2


def test_quickstart_closing_lines_say_the_story(tmp_path: Path) -> None:
    """The quickstart's closing text (search/quickstart.py describe): the search's verdicts as the
    report computes them, the predicted winner at the target with its interval and P(best) (or why
    there is none), the held-out runs, and one closing line per outcome of the winner check."""
    from archscale.search.quickstart import describe

    synthetic.write_search(tmp_path / "search", n_archs=8, seeds=1, with_study=False)
    win = {"label": "geglu", "predicted_loss": 2.24, "lo": 2.16, "hi": 2.32, "p_best": 0.9, "p_best_mc_se": 0.01}
    win |= {"target_compute": 1e12, "target_params": 159120, "law": "shared E"}
    other = {**win, "label": "relu2", "predicted_loss": 2.30, "p_best": None, "law": "no floor (E = 0)"}
    held = {"label": "geglu", "actual_loss": 2.10, "seeds": 2, "covered": False, "run_lo": 2.14, "run_hi": 2.33}
    findings = {"out": str(tmp_path), "wall_s": 1.0, "report": str(tmp_path / "report.html"), "plots": []}
    findings |= {"best": {"label": "geglu"}, "predicted_winner": win, "predicted": [win, other], "agree": True}
    findings |= {"validation": {"validated": [held], "winner_check": {"verdict": "confirmed", "why": "lowest mean"}}}
    text = describe(findings)
    assert verdicts_text(verdicts([tmp_path / "search"])) in text  # the search's verdicts, as the report says them
    assert "geglu, loss 2.240 (95% [2.160, 2.320], law: shared E), P(best) 0.90 +- 0.01" in text
    assert "relu2: 2.300 [2.160, 2.320], no P(best): the 'no floor (E = 0)' fit has too few bootstrap refits" in text
    assert "held out geglu: mean of 2 seeds 2.100, outside its 95% interval [2.140, 2.330]" in text
    assert "winner and the predicted target-scale winner agree: geglu." in text
    assert "The held-out runs confirmed the prediction: lowest mean." in text
    for verdict, said in (
        ("refuted", "refuted the prediction"),
        ("within noise", "neither confirm nor refute"),
        ("no noise estimate", "cannot judge"),
    ):
        check = {"verdict": verdict, "why": "because"}
        assert said in describe({**findings, "validation": {"validated": [held], "winner_check": check}})
    differ = describe({**findings, "best": {"label": "relu2"}, "agree": False})
    assert "small-scale winner (relu2) is not the architecture predicted best at the target (geglu)" in differ
    none = describe({**findings, "predicted_winner": None, "predicted": [], "validation": None, "agree": None})
    assert "no prediction:" in none and "No held-out check: there was no prediction to check" in none
