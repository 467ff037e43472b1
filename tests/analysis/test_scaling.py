"""What the report's scaling and Pareto sections show, called as a notebook would."""

from __future__ import annotations

from pathlib import Path

import pytest

from archscale.analysis import NoData, pareto_analysis, scaling_analysis


def test_scaling_analysis_of_a_study(study_dir: Path) -> None:
    s = scaling_analysis(study_dir, bootstrap=10, target=1e21)
    assert s.target == 1e21 and set(s.runs["series"]) == {"baseline", "swiglu·rope"}
    assert set(s.power) == {"baseline", "swiglu·rope"} and all(0 < f.params["alpha"] < 1 for f in s.power.values())

    a3 = s.approach3
    assert a3 is not None and set(a3.fits) == {"baseline", "swiglu·rope"}
    assert a3.fits["baseline"].params["alpha"] == pytest.approx(0.34, abs=0.05)  # the synthetic study's law
    assert a3.ranking["name"].to_list() == ["swiglu·rope", "baseline"]  # the synthetic variant is better
    assert a3.baseline == "baseline" and a3.multipliers["variant"].to_list() == ["swiglu·rope"]
    assert a3.multipliers["multiplier"][0] > 1
    assert a3.allocation["series"].to_list() == list(a3.fits) and (a3.allocation["n_opt"] > 0).all()
    assert a3.holdout.height == 2 and (a3.holdout["mean_rel_error"] < 0.05).all()
    assert a3.flops.gamma == pytest.approx(1.0, abs=0.1)

    a2 = s.approach2
    assert a2 is not None and set(a2.fits) == {"baseline", "swiglu·rope"}
    assert a2.exponents.height == 2 and a2.exponents["budgets"].to_list() == [5, 5]
    assert s.design == {"baseline": [], "swiglu·rope": []} and isinstance(s.warnings, list)


def test_scaling_analysis_default_target_and_frame_input(study_dir: Path) -> None:
    from archscale.analysis import load_trials

    trials = load_trials(study_dir).collect()
    s = scaling_analysis(trials, bootstrap=0)
    assert s.target == pytest.approx(10 * trials["compute"].max())
    assert s.approach3 is not None and s.approach3.multipliers["lo"].is_nan().all()  # no bootstrap: no interval


def test_scaling_analysis_of_a_search_says_no_data(search_dir: Path) -> None:
    with pytest.raises(NoData, match="no scaling-study runs"):
        scaling_analysis(search_dir)


def test_approach3_skips_a_family_whose_design_cannot_identify_it(study_dir: Path) -> None:
    import polars as pl

    from archscale.analysis import load_trials

    trials = load_trials(study_dir).collect()
    largest = trials.filter(pl.col("group") == "baseline")["params"].max()
    one_size = trials.filter((pl.col("group") != "baseline") | (pl.col("params") == largest))
    s = scaling_analysis(one_size, bootstrap=0)
    assert s.design["baseline"] and "sizes" in " ".join(s.design["baseline"])
    assert s.approach3 is not None and set(s.approach3.fits) == {"swiglu·rope"}
    assert any(w.startswith("Approach 3 baseline: not fitted") for w in s.warnings)


def test_pareto_analysis_of_a_search(search_dir: Path) -> None:
    p = pareto_analysis(search_dir)
    assert list(p.costs)[:1] and set(p.costs) <= {
        "params",
        "tokens_per_s",
        "kv_cache_bytes_per_token",
        "flops_per_token",
    }
    for name, front in p.fronts.items():
        assert 1 <= front.height < p.trials.height and name in front.columns
    assert p.hypervolumes.height == len(p.costs) and (p.hypervolumes["hypervolume"] > 0).all()


def test_pareto_analysis_without_trials(tmp_path: Path) -> None:
    with pytest.raises(NoData):
        pareto_analysis(tmp_path)


def _quickstart_like_study(tmp_path: Path, seeds: int = 1) -> Path:
    """Two families on the quickstart's ladder (4 sizes, 3 tokens per parameter), as a results dir."""
    import numpy as np
    import polars as pl

    from archscale.analysis.data import synthetic

    frames = []
    for i, name in enumerate(("baseline", "swiglu·rope")):
        runs = synthetic.ladder_runs(np.random.default_rng(i), seeds=seeds, noise=0.02)
        frames.append(runs.with_columns(group=pl.lit(name), label=pl.lit(name)))
    trials = (
        pl.concat(frames)
        .rename({"loss": "eval_loss"})
        .with_row_index("trial_id")
        .with_columns(status=pl.lit("completed"), planned_kind=pl.lit("params"))
    )
    d = tmp_path / "scaling"
    d.mkdir()
    trials.write_parquet(d / "trials.parquet")
    return d


def test_a_fixed_ratio_ladder_gets_no_approach3_and_says_what_to_run(tmp_path: Path) -> None:
    from archscale.analysis import build_report

    d = _quickstart_like_study(tmp_path, seeds=3)
    s = scaling_analysis(d, bootstrap=20)
    assert s.approach3 is None and set(s.design) == {"baseline", "swiglu·rope"}
    why = s.refused["Approach 3 baseline"]
    assert "tokens per parameter do not vary independently of size" in why and "isoFLOP grid" in why
    # the power laws use every run, the 3 seeds of a size as one design unit, likelihood-ratio intervals
    fit = s.power["baseline"]
    assert fit.n_runs == 12 and fit.n_units == 4 and fit.interval == "profile"
    html = build_report(d, bootstrap=20)
    scaling = html[html.index('<section id="scaling-fits"') :].split("</section>")[0]
    assert "isoFLOP grid" in scaling and "Ranking by predicted loss" not in scaling
    assert "likelihood-ratio interval" in scaling


def test_nothing_is_derived_from_an_unidentified_family(study_dir: Path) -> None:
    """Make one family's losses a pure power law in N and D (no floor): its fit ends with E at the
    edge of the box, so it is listed as not identified and left out of ranking and multipliers."""
    import polars as pl

    from archscale.analysis import load_trials

    trials = load_trials(study_dir).collect()
    floorless = 406.4 * pl.col("params") ** -0.34 + 410.7 * pl.col("tokens") ** -0.28  # no E, no noise
    trials = trials.with_columns(
        eval_loss=pl.when(pl.col("group") == "baseline").then(floorless).otherwise(pl.col("eval_loss"))
    )
    s = scaling_analysis(trials, bootstrap=0, target=1e21)
    a3 = s.approach3
    assert a3 is not None and "baseline" not in a3.fits and "swiglu·rope" in a3.fits
    assert "E=" in s.refused["Approach 3 baseline"] and "edge" in s.refused["Approach 3 baseline"]
    assert a3.ranking["name"].to_list() == ["swiglu·rope"] and a3.multipliers.height == 0
