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
