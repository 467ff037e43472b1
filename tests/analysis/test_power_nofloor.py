"""A power law whose runs show no floor falls back to the ladders' no-floor law (one rule for both)."""

import numpy as np
import pytest

from archscale.analysis.compare.scaling import scaling_analysis
from archscale.analysis.data.synthetic_results import write_study
from archscale.analysis.laws.ladder_nofloor import fit_without_floor
from archscale.analysis.laws.power import fit_power_law
from archscale.analysis.laws.power_nofloor import fit_power_law_or_no_floor, fit_power_no_floor

X = np.repeat(np.geomspace(1e13, 1e15, 4), 2)  # a study's design: 4 sizes x 2 seeds


def truth(c, e=0.0):
    return e + 30.0 * np.asarray(c, float) ** -0.1


def _runs_without_floor():
    """Noise draws on a pure power law for which the full law's E ends at 0 (the case to handle)."""
    for seed in range(50):
        y = truth(X) * np.exp(np.random.default_rng(seed).normal(0, 0.01, X.size))
        if not fit_power_law(X, y, x_name="compute").identified:
            return y
    raise AssertionError("no draw put E at 0")


def test_falls_back_when_e_ends_at_zero_and_says_so():
    y = _runs_without_floor()
    fit = fit_power_law_or_no_floor(X, y, x_name="compute", bootstrap=50)
    assert fit.identified and fit.law == "no floor (E = 0)" and fit.params["E"] == 0.0
    assert fit.params["alpha"] == pytest.approx(0.1, abs=0.03)
    lo, hi = fit.predict_interval(1e16)
    assert lo[0] < truth(1e16) < hi[0] and hi[0] - lo[0] < 0.3
    assert "no floor" in fit.interval_note and any("optimistic" in w for w in fit.warnings)
    ci = fit.ci()
    assert ci["E"][0] == 0.0 and ci["alpha"][0] < fit.params["alpha"] < ci["alpha"][1]


def test_a_law_with_a_floor_keeps_the_full_fit():
    y = truth(X, e=1.0) * np.exp(np.random.default_rng(3).normal(0, 0.002, X.size))
    full, chosen = fit_power_law(X, y, x_name="compute"), fit_power_law_or_no_floor(X, y, x_name="compute")
    assert full.identified and chosen.law == "power" and chosen.params == full.params


def test_interval_is_the_ladder_construction():
    """The record's interval (ranges over t-ellipse boundaries, per floor not rejected) equals the
    ladder no-floor law's pointwise interval on the same runs."""
    y = _runs_without_floor()
    mine = fit_power_no_floor(X, y, x_name="compute")
    c0 = float(np.exp(np.mean(np.log(X))))
    ladder = fit_without_floor({"s": (X, y)}, c0, "test")
    for c in (1e13, 1e15, 1e17):
        mean, lo, hi = ladder.predict("s", c)
        (mlo,), (mhi,) = mine.predict_interval(c)
        assert mine.predict(c)[0] == pytest.approx(mean, rel=1e-9)
        assert mlo == pytest.approx(lo, rel=2e-3) and mhi == pytest.approx(hi, rel=2e-3)


def test_coverage_at_ten_times_the_largest_run():
    """Coverage of the predicted loss at 10x the largest compute, over draws whichever law is used;
    it must be near 0.95 and the interval finite (an infinitely wide interval fails the width bound)."""
    rng = np.random.default_rng(7)
    hits, widths = [], []
    for _ in range(60):
        y = truth(X) * np.exp(rng.normal(0, 0.01, X.size))
        fit = fit_power_law_or_no_floor(X, y, x_name="compute", bootstrap=50)
        assert fit.identified
        (lo,), (hi,) = fit.predict_interval(1e16)
        hits.append(lo <= truth(1e16) <= hi)
        widths.append(hi - lo)
    assert 0.85 <= np.mean(hits) <= 1.0 and np.median(widths) < 0.2


def test_study_family_without_floor_gets_a_law(tmp_path):
    """A study whose families fall straight in log-log is not left without a power law."""
    law = {"E": 0.0, "A": 30.0, "B": 0.0, "alpha": 0.2, "beta": 0.3}
    src = write_study(
        tmp_path / "study", budgets=(1e15, 3e15, 1e16, 3e16, 1e17), sizes_per_budget=1,
        laws={"baseline": law, "other": {**law, "A": 32.0}}, noise=0.002, seeds=2,
    )  # fmt: skip
    s = scaling_analysis(src, bootstrap=50)
    assert set(s.power) == {"baseline", "other"}, s.power_refused
    fallback = [name for name, fit in s.power.items() if fit.law == "no floor (E = 0)"]
    assert fallback  # ... and without the fallback that family would have had no law:
    runs = s.runs.filter(s.runs["series"] == fallback[0])
    assert not fit_power_law(runs["compute"].to_numpy(), runs["eval_loss"].to_numpy()).identified
