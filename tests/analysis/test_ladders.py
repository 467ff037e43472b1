"""Ladder fits: a law in compute per architecture with a shared E, checked against known truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from archscale.analysis.laws.ladder import fit_ladders
from archscale.analysis.laws.ladder_record import crossings

C = 1e12 * np.array([1.0, 4.0, 16.0])  # a ladder of ratio 2 in parameters, tokens proportional


def _law(E, A, alpha):
    return lambda c: E + A * (np.asarray(c) / 1e12) ** -alpha


TRUTH = {"a": _law(1.5, 3.0, 0.30), "b": _law(1.5, 2.0, 0.20), "c": _law(1.5, 4.0, 0.35), "d": _law(1.5, 2.5, 0.25)}


def _data(noise: float, rng: np.random.Generator, truth=TRUTH):
    return {k: (C, f(C) + rng.normal(0, noise, len(C))) for k, f in truth.items()}


def test_exact_data_is_recovered():
    fit = fit_ladders(_data(0.0, np.random.default_rng(0)), bootstrap=0)
    assert fit.identified and fit.E == pytest.approx(1.5, abs=1e-3)
    assert fit.laws["a"].alpha == pytest.approx(0.30, abs=1e-3)
    assert float(fit.laws["b"].loss_at(1e14)) == pytest.approx(float(TRUTH["b"](1e14)), abs=1e-3)


def test_one_ladder_cannot_identify_its_law():
    fit = fit_ladders({"a": (C, TRUTH["a"](C))})
    assert not fit.identified and "at least 2" in fit.reason and fit.predict("a", 1e14) is None


def test_a_ladder_with_two_rungs_is_refused_and_the_rest_still_fit():
    data = _data(0.0, np.random.default_rng(0))
    data["short"] = (C[:2], TRUTH["a"](C[:2]))
    fit = fit_ladders(data, bootstrap=0)
    assert fit.identified and not fit.laws["short"].identified and "3" in fit.laws["short"].reason


def test_no_decrease_puts_e_at_its_edge_and_is_refused():
    flat = {k: (C, np.array([2.0, 2.0, 2.0]) + 0.001 * i) for i, k in enumerate("abc")}
    fit = fit_ladders(flat)
    assert not fit.identified and "edge" in fit.reason


def test_crossings_are_where_the_curves_meet():
    fit = fit_ladders(_data(0.0, np.random.default_rng(0)), bootstrap=0)
    found = {(x["winner"], x["loser"]): x["compute"] for x in crossings(fit, 1e10, 1e30)}
    # b (flatter) is ahead at small compute; a (steeper) overtakes where 3 c^-0.3 = 2 c^-0.2
    c_star = 1e12 * (3.0 / 2.0) ** (1 / 0.1)
    assert found[("a", "b")] == pytest.approx(c_star, rel=1e-2)
    assert TRUTH["a"](c_star * 2) < TRUTH["b"](c_star * 2)


def test_interval_coverage_at_the_ladder_design():
    """95% intervals at 10x the top rung cover the truth at close to their nominal rate
    (4 ladders of 3 rungs, noise 0.02 nats; a smaller version of benchmarks/bench_predicted.py)."""
    rng = np.random.default_rng(7)
    hits = total = 0
    target = C[-1] * 10
    for r in range(25):
        fit = fit_ladders(_data(0.02, rng), bootstrap=120, seed=r)
        for k, f in TRUTH.items():
            p = fit.predict(k, target)
            if p is None or not math.isfinite(p[1]):
                continue
            total += 1
            hits += p[1] <= float(f(target)) <= p[2]
    assert total >= 80
    assert 0.85 <= hits / total <= 1.0


def test_ladders_with_no_flattening_get_the_law_without_a_floor_with_calibrated_t_intervals():
    """Straight lines in log-log (E = 0): the shared-E fit ends at E = 0, so the nested law is fitted;
    its t intervals cover the true loss at 10x the top rung at close to the nominal rate."""
    from archscale.analysis.laws.ladder import fit_ladders
    from archscale.analysis.laws.ladder_nofloor import LAW, NoFloorFit

    rng = np.random.default_rng(5)
    compute = np.array([1e10, 4e10, 1.6e11])
    # L = A C^-alpha, no floor: 2.7-2.9 nats at the first rung, as the real tiny ladders (bench_predicted)
    truth = {
        k: (l0 * 1e10**al, al) for k, (l0, al) in enumerate([(2.8, 0.08), (2.9, 0.095), (2.7, 0.07), (2.85, 0.085)])
    }
    target = 1.6e12
    hits = total = fallback = 0
    for _ in range(150):
        data = {k: (compute, a * compute**-al + rng.normal(0, 0.01, 3)) for k, (a, al) in truth.items()}  # seed noise
        fit = fit_ladders(data, bootstrap=0)
        if not isinstance(fit, NoFloorFit):
            continue
        fallback += 1
        assert fit.law == LAW and fit.E == 0.0 and fit.dof == 4
        for k, (a, al) in truth.items():
            mean, lo, hi = fit.predict(k, target)
            total += 1
            hits += lo <= a * target**-al <= hi
    assert fallback >= 50, "straight lines in log-log often end the shared-E fit at E = 0"
    assert 0.88 <= hits / total <= 0.99, (fallback, hits / total)


def test_the_ladder_curve_and_crossings_from_each_side() -> None:
    """What predictions.parquet stores per ladder: the band along compute and who crosses whom."""
    from archscale.analysis import crossings_by_ladder
    from archscale.analysis.data import synthetic

    runs, _ = synthetic.ladder_search_runs(np.random.default_rng(0), ladders=4, noise=0.005)
    fit = fit_ladders(runs, bootstrap=100, seed=0)
    curve = fit.curve(0, 1e10, 1e13)
    assert (
        len(curve) == 24 and curve[0]["compute"] == pytest.approx(1e10) and curve[-1]["compute"] == pytest.approx(1e13)
    )
    assert all(p["lo"] <= p["loss"] <= p["hi"] for p in curve)
    assert curve[-1]["loss"] == pytest.approx(fit.predict(0, 1e13)[0])
    lo, hi = 1e9, 1e14
    sides = crossings_by_ladder(fit, lo, hi)
    pairs = crossings(fit, lo, hi)
    assert pairs and sum(len(v) for v in sides.values()) == 2 * len(pairs)
    for c in pairs:
        p = c["p_overtakes"]
        assert {"other": c["loser"], "compute": c["compute"], "overtakes": True, "p_overtakes": p} in sides[c["winner"]]
        assert {"other": c["winner"], "compute": c["compute"], "overtakes": False, "p_overtakes": p} in sides[
            c["loser"]
        ]
        assert math.isfinite(c["compute"]) and 0.0 <= p <= 1.0


def test_crossings_never_overflow() -> None:
    """Laws whose exponents nearly agree meet e^1000 away from c0: no crossing, no OverflowError."""
    from archscale.analysis.laws.ladder_record import LadderFit, LadderLaw

    laws = {0: LadderLaw(0, 1.0, 0.0, 0.3, 1.0, True), 1: LadderLaw(1, 1.0, 1e-3, 0.3 + 1e-6, 1.0, True)}
    fit = LadderFit(laws, 1.0, 0.01, 3, 9, 1.0, True, None)
    assert crossings(fit, 1e-300, 1e300) == []


def test_printed_crossings_are_the_likely_ones() -> None:
    from archscale.analysis.present.predictions import _crossing_line

    c = {"other": "B", "compute": 1e12, "overtakes": True}
    assert "probability 0.90" in _crossing_line("A", {**c, "p_overtakes": 0.9})
    assert "probably does not" in _crossing_line("A", {**c, "p_overtakes": 0.1})
