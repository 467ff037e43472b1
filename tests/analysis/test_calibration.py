"""Calibration of the intervals: the likelihood-ratio threshold's parametric bootstrap, and the
calibration benchmark, small (intervals cover the truth near their nominal rate at archscale's own
designs, and Approach 3 is refused on the quickstart's ladder)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.special import fdtri

from archscale.analysis.data import synthetic
from archscale.analysis.laws.profile import LinearLaw, _coarse_axis, _rss_min, lr_quantile

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_calibration.py"


def _lr_quantile_of(noise: float, seed: int) -> tuple[float, float]:
    """The calibrated 95% quantile and F(1, df; 0.95) for 4 sizes x 3 seeds of TINY_POWER."""
    runs = synthetic.ladder_runs(np.random.default_rng(seed), seeds=3, noise=noise, law="power")
    law = LinearLaw(np.log(runs["compute"].to_numpy())[:, None], runs["loss"].to_numpy())
    phi = _coarse_axis(100, 20)[:, None]
    rss_min, phi_hat = _rss_min(law, phi, law.least_squares(phi)[1])
    df = law.loss.size - 3
    return lr_quantile(law, phi_hat, rss_min, df, 0.95), float(fdtri(1, df, 0.95))


def test_lr_threshold_is_f_where_the_law_is_nearly_linear_and_smaller_at_high_noise() -> None:
    # at 0.015 nats the power law is nearly linear in its parameters near the fit: T ~ F(1, df)
    # (4,000 simulated data sets: ~4% Monte Carlo error)
    for seed in range(3):
        q, f = _lr_quantile_of(0.015, seed)
        assert q == pytest.approx(f, rel=0.12)
    # at 0.14 nats the statistic is stochastically smaller than F (which over-covered, 0.97-0.98)
    low = [q / f for q, f in map(lambda s: _lr_quantile_of(0.14, s), range(8))]
    assert np.median(low) < 0.9
    # the same runs give the same threshold
    assert _lr_quantile_of(0.14, 3) == _lr_quantile_of(0.14, 3)


def _bench():
    spec = importlib.util.spec_from_file_location("bench_calibration", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_a_one_sided_interval_is_a_statement_and_can_miss() -> None:
    mark = _bench()._mark
    assert mark(None, None, 0.3) is None  # not determined: no statement
    assert mark(0.2, None, 0.3) == (True, True)  # alpha >= 0.2: covers
    assert mark(0.4, None, 0.3) == (False, True)  # alpha >= 0.4: a miss, counted
    assert mark(0.2, 0.25, 0.3) == (False, False)


def test_an_infinitely_wide_interval_fails_the_coverage_check() -> None:
    """Coverage 1.0 is no success: an interval that always covers fails once there are enough
    intervals to tell (the slow test's 40 sets x 4 ladders, and every 200-set cell)."""
    plausible = _bench().coverage_plausible
    assert not plausible(1.0, 160) and not plausible(1.0, 200)
    assert plausible(0.95, 160) and plausible(0.93, 200) and not plausible(0.80, 200)


def _coverage_keys(doc: object, path: str = "") -> list[str]:
    """Every key path holding a coverage figure (a number or null under a key named *coverage*)."""
    out = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if "coverage" in key and (value is None or isinstance(value, float | int)):
                out.append(f"{path}.{key}")
            out += _coverage_keys(value, f"{path}.{key}")
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _coverage_keys(value, f"{path}[{i}]")
    return out


@pytest.mark.slow
def test_quick_calibration_covers_near_the_nominal_rate() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", "--sets", "40"],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    doc = json.loads(proc.stdout)  # one JSON object
    bench = _bench()
    assert _coverage_keys(doc), "no coverage figures"
    checked = hits = reported = 0
    laws = set()
    for row in doc["results"]:
        if row["law"] == "chinchilla" and "isoFLOP" not in row["design"]:
            assert row["refusal_rate"] == 1.0, row  # a fixed tokens-per-parameter ladder: always refused
            continue
        assert row["refusal_rate"] < 0.25, row
        issue19 = any(word in row["design"] for word in ("unequal", "shared", "no floor"))
        for name, q in row["quantities"].items():
            if q["coverage"] is not None and not 0.90 <= q["coverage"] <= 0.98:  # reported, never dropped
                assert any(o["design"] == row["design"] and o["quantity"] == name for o in doc["outside_goal"])
            if q["reported"] >= 20 and q["coverage"] is not None:
                # too wide fails too: an always-covering interval is implausible over 135+ intervals
                assert q["coverage"] < 0.95 or bench.coverage_plausible(q["coverage"], q["reported"]), (row, name)
            if issue19 or "selected" in name:
                continue  # issue 19's cells: measured and reported (docs/analysis.md), not yet at the goal
            if q["reported"] >= 20:
                # 40 sets: the Monte Carlo standard error of a 0.95 coverage is 0.034
                assert q["coverage"] >= 0.8, (row["design"], row["law"], name, q)
                checked += 1
                laws.add(row["law"])
                hits += round(q["coverage"] * q["reported"])
                reported += q["reported"]
    # power laws on 3 designs (3 quantities each), Approach 3 (5) and 2 (2) on the grid, the ladder
    # search, and the equal-noise search cell's verdict intervals
    assert checked >= 17 and laws == {"power", "chinchilla", "isoflop", "ladders", "verdicts"}
    # pooled over every reported interval (~800), too wide fails as surely as too narrow
    assert 0.92 <= hits / reported <= 0.975, hits / reported
