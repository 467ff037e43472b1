"""The statistics every comparison shares: t-tests, Holm's adjustment, seeds needed, the verdict.

* ``holm``: Holm's step-down adjustment of a family of p-values.
* ``seeds_needed``: how many observations per side (pairs, when paired) a two-sided t-test at
  ``alpha = 0.05`` needs to detect the observed difference with power 0.8 at the observed spread
  (exact noncentral-t power, searched upward from the normal approximation).
* ``t_test`` and ``verdict``: the two-sided p-value of a difference and how it reads
  (``resolved``, ``within noise``, ``no interval``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

ALPHA = 0.05
POWER = 0.8
#: seeds_needed gives up above this many (reported as inf: not resolvable in practice).
MAX_SEEDS = 10_000


def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (NaN stays NaN and does not count as a comparison)."""
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def seeds_needed(
    effect: Sequence[float] | np.ndarray,
    sd: Sequence[float] | np.ndarray,
    *,
    paired: Sequence[bool] | np.ndarray | bool,
    alpha: float = ALPHA,
    power: float = POWER,
) -> np.ndarray:
    """Smallest n (pairs when ``paired``, else per side) for which a two-sided t-test at ``alpha``
    detects ``effect`` with ``power``, when one observation (one difference, when paired) has
    standard deviation ``sd``. Paired: se = sd/sqrt(n), n - 1 dof; unpaired: se = sd*sqrt(2/n),
    2n - 2 dof. inf when the effect is 0, or the spread unknown, or n would exceed ``MAX_SEEDS``."""
    from scipy import stats

    effect = np.abs(np.asarray(effect, float))
    sd = np.asarray(sd, float)
    paired = np.broadcast_to(np.asarray(paired, bool), effect.shape)
    out = np.full(effect.shape, np.inf)
    ok = np.isfinite(effect) & np.isfinite(sd) & (effect > 0) & (sd > 0)
    if not ok.any():
        return out
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    ratio = (z * sd[ok] / effect[ok]) ** 2
    factor = np.where(paired[ok], 1.0, 2.0)
    start = np.maximum(2.0, np.floor(factor * ratio) - 1)  # the normal approximation, slightly low
    found = np.full(start.shape, np.inf)
    todo = np.arange(start.size)
    for _ in range(16):  # windows of 4: the t correction adds a few at most (power rises with n)
        if todo.size == 0 or start[todo].min() > MAX_SEEDS:
            break
        n = start[todo, None] + np.arange(4)[None, :]
        achieved = _power(stats, effect[ok][todo, None], sd[ok][todo, None], factor[todo, None], n, alpha)
        hit = achieved >= power
        first = np.argmax(hit, axis=1)
        done = hit.any(axis=1)
        found[todo[done]] = n[done, first[done]]
        start[todo] += 4
        todo = todo[~done]
    out[ok] = np.where(found > MAX_SEEDS, np.inf, found)
    return out


def _power(stats, effect: np.ndarray, sd: np.ndarray, factor: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    """Power of the two-sided t-test with n per side (``factor`` 2) or n pairs (``factor`` 1)."""
    dof = np.where(factor == 1.0, n - 1, 2 * n - 2)
    ncp = effect / (sd * np.sqrt(factor / n))
    crit = stats.t.ppf(1 - alpha / 2, dof)
    # scipy's noncentral t returns NaN far in its tails; there the normal approximation is exact enough
    upper = stats.nct.sf(crit, dof, ncp)
    upper = np.where(np.isfinite(upper), upper, stats.norm.sf(crit - ncp))
    lower = np.nan_to_num(stats.nct.cdf(-crit, dof, ncp), nan=0.0)  # the wrong-sign tail: ~0 here
    return upper + lower


def t_test(
    effect: np.ndarray, se: np.ndarray, dof: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lo, hi, p)`` of a t-interval and two-sided p-value; NaN where se or dof is unusable."""
    from scipy import stats

    effect, se, dof = (np.asarray(a, float) for a in (effect, se, dof))
    usable = np.isfinite(se) & (se > 0) & np.isfinite(dof) & (dof > 0)
    dof_ok = np.where(usable, dof, 1.0)
    half = np.where(usable, stats.t.ppf(0.5 + level / 2, dof_ok) * se, np.nan)
    p = np.where(usable, 2 * stats.t.sf(np.abs(effect) / np.where(usable, se, 1.0), dof_ok), np.nan)
    return effect - half, effect + half, p


def verdict(p_holm: pl.Expr, has_interval: pl.Expr, alpha: float = ALPHA) -> pl.Expr:
    """``resolved`` (Holm-adjusted p below alpha), ``within noise`` or ``no interval``."""
    return (
        pl.when(p_holm < alpha)
        .then(pl.lit("resolved"))
        .when(has_interval)
        .then(pl.lit("within noise"))
        .otherwise(pl.lit("no interval"))
    )
