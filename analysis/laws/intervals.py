"""Intervals for a Huber-fitted law: the bootstrap of design units, or the likelihood-ratio set.

Runs are grouped into *design units* (the planned grid point of a study: all seeds of one size
and token count together; else the distinct inputs). With at least ``MIN_BOOTSTRAP_UNITS`` units,
a bootstrap resamples whole units with replacement and refits each resample from the full-data
optimum; resamples with fewer distinct units than parameters + 1, or whose refit ends at the edge
of the box, cannot determine the parameters and are dropped (and counted); if more than
``MAX_DROPPED`` of them are, the bootstrap is not trusted. Otherwise (and then) the interval is the
likelihood-ratio (profile) interval of ``laws.profile``, which needs only one residual degree of
freedom and accounts for it with the F distribution (the power law: with a parametric-bootstrap
quantile of its likelihood-ratio statistic). ``LawFit.interval_of`` turns either into intervals
for any derived quantity.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .objective import bounds, lbfgs
from .profile import profile_region

#: Fewest design units for a bootstrap; with fewer, intervals are likelihood-ratio intervals.
#: Measured with ``benchmarks/bench_calibration.py`` (docs/analysis.md): on the 20-unit isoFLOP grid
#: at 0.045 nats of seed noise, more than ``MAX_DROPPED`` of the resamples ended at the edge of the
#: box (E -> 0) in 26 of 56 data sets, so the bootstrap was unusable half the time, and it costs
#: ~200 refits; the likelihood-ratio interval covered at its nominal rate there. With 4-6 units
#: nearly every resample repeats a unit and cannot identify a 3-parameter law at all.
MIN_BOOTSTRAP_UNITS = 30
#: Fewest residual degrees of freedom for a likelihood-ratio interval. With 1 (the quickstart's 4
#: sizes x 1 seed), the noise estimate is so variable that the intervals the runs happen to bound
#: are the too-narrow ones: alpha, reported only when bounded, covered 0.85 of the time at 0.045
#: nats and 0.71 at 0.14 (bench_calibration); with 9 (4 sizes x 3 seeds) 0.95-1.0.
MIN_RESIDUAL_DF = 3
#: Largest fraction of bootstrap resamples that may be dropped as degenerate before the bootstrap
#: is replaced by the likelihood-ratio interval (the kept resamples would no longer represent it).
MAX_DROPPED = 0.1


def design_units(*keys: Any) -> np.ndarray:
    """An integer id per run for its design unit: the distinct rows of ``keys`` (e.g. the planned
    size and token count of a study's grid point; seeds of one grid point share an id)."""
    codes = [np.unique(np.asarray(k).ravel(), return_inverse=True)[1].ravel() for k in keys]
    return np.unique(np.column_stack(codes), axis=0, return_inverse=True)[1].ravel()


def bootstrap_indices(
    n: int, n_boot: int, seed: int, levels: np.ndarray | None = None, min_levels: int = 3
) -> list[np.ndarray]:
    """``n_boot`` resamples of whole design units: draw as many units as there are, with
    replacement, and take all runs of each (``levels``: a unit id per run; None: every run is its
    own unit). Resamples with fewer than ``min_levels`` distinct units cannot identify the law and
    are dropped, so fewer than ``n_boot`` may come back."""
    units = np.arange(n) if levels is None else np.unique(np.asarray(levels), return_inverse=True)[1].ravel()
    n_units = int(units.max()) + 1 if n else 0
    members = [np.flatnonzero(units == u) for u in range(n_units)]
    draws = np.random.default_rng(seed).integers(0, max(n_units, 1), size=(n_boot, n_units))
    picked = np.sort(draws, axis=1)
    distinct = 1 + (np.diff(picked, axis=1) != 0).sum(axis=1) if n_units else np.zeros(n_boot, int)
    return [np.concatenate([members[u] for u in row]) for row in draws[distinct >= min_levels]]


def at_bound(theta: np.ndarray) -> np.ndarray:
    """Rows of ``theta`` (S, 1+2K, log layout) with any parameter on the edge of ``bounds``."""
    box = np.array(bounds((theta.shape[1] - 1) // 2))
    return (np.isclose(theta, box[:, 0], atol=1e-6) | np.isclose(theta, box[:, 1], atol=1e-6)).any(axis=1)


def bootstrap_refits(
    theta: np.ndarray, log_x: np.ndarray, log_loss: np.ndarray, indices: Sequence[np.ndarray], delta: float
) -> np.ndarray:
    """One L-BFGS-B refit (from ``theta``, at most 500 iterations) per resample of run ``indices``;
    shape (B, P) in theta's (log) layout."""
    refits = [lbfgs(theta, log_x[idx], log_loss[idx], delta, 500)[0] for idx in indices]
    return np.array(refits).reshape(-1, theta.size)


def natural(theta: np.ndarray) -> np.ndarray:
    """``[e, a_1..a_K, alpha_1..alpha_K]`` rows to ``[E, A_1..A_K, alpha_1..alpha_K]``."""
    k = (theta.shape[1] - 1) // 2
    return np.column_stack([np.exp(theta[:, : 1 + k]), theta[:, 1 + k :]])


@dataclass(frozen=True)
class Intervals:
    """What ``law_intervals`` found: points to take intervals over, and how they were made."""

    samples: np.ndarray  # (S, P) natural parameters: bootstrap refits, or points of the profile set
    method: str  # "bootstrap", "profile", "none" (not asked for) or "unavailable" (asked, impossible)
    note: str  # how the interval was made, or why there is none
    edge: np.ndarray | None = None  # profile: points on the edge of the searched exponents
    n_dropped: int = 0  # bootstrap resamples dropped as degenerate


def law_intervals(
    theta: np.ndarray,
    log_x: np.ndarray,
    log_loss: np.ndarray,
    units: np.ndarray,
    *,
    bootstrap: int,
    seed: int,
    delta: float,
    level: float,
) -> Intervals:
    """Intervals for a law fitted at ``theta`` (log layout) from runs grouped in ``units``:
    a bootstrap of whole units when there are enough, else the likelihood-ratio set (see the
    module docstring). ``bootstrap=0``: none."""
    empty = np.empty((0, theta.size))
    if bootstrap <= 0:
        return Intervals(empty, "none", "no intervals asked for (bootstrap=0)")
    n_params = theta.size
    n_units = int(np.unique(units).size)
    note, dropped = "", 0
    if n_units >= MIN_BOOTSTRAP_UNITS:
        indices = bootstrap_indices(units.size, bootstrap, seed, units, n_params + 1)
        refits = bootstrap_refits(theta, log_x, log_loss, indices, delta)
        bad = at_bound(refits)
        dropped = bootstrap - int((~bad).sum())
        if dropped <= MAX_DROPPED * bootstrap:
            note = f"bootstrap of {n_units} design units ({dropped} of {bootstrap} resamples dropped as degenerate)"
            return Intervals(natural(refits[~bad]), "bootstrap", note, None, dropped)
        note = f"{dropped} of {bootstrap} bootstrap resamples could not determine the parameters; "
    else:
        note = f"{n_units} design units are too few for a bootstrap (needs {MIN_BOOTSTRAP_UNITS}+); "
    df = log_loss.size - n_params
    if df < MIN_RESIDUAL_DF:
        why = (
            f"{log_loss.size} runs for {n_params} parameters leave {max(df, 0)} residual degree(s) of freedom "
            f"(needs {MIN_RESIDUAL_DF}+ to estimate the noise); run 3 seeds per size or more sizes"
        )
        return Intervals(empty, "unavailable", note + f"no interval: {why}", None, dropped)
    region = profile_region(log_x, np.exp(log_loss), n_params, level)
    if region is None:
        why = "the likelihood-ratio set could not be resolved (the law fits the runs almost exactly)"
        return Intervals(empty, "unavailable", note + f"no interval: {why}", None, dropped)
    note += f"likelihood-ratio interval ({region.df} residual degrees of freedom)"
    return Intervals(region.theta, "profile", note, region.edge, dropped)


def percentile_interval(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0, ignoring NaN refits (all-NaN columns give NaN)."""
    tail = (1.0 - level) / 2.0 * 100.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": reported as NaN
        lo, hi = np.nanpercentile(samples, [tail, 100.0 - tail], axis=0)
    return lo, hi
