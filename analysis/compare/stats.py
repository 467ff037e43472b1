"""The statistics every comparison shares: t-tests, Holm's adjustment, seeds needed, the verdict.

* ``holm``: Holm's step-down adjustment of a family of p-values (``family``: its full size, when
  only some of its p-values are known; the others count as 1, which can only raise the adjusted
  p-values of the known ones, so the adjustment stays valid).
* ``seeds_needed``: how many observations per side (pairs, when paired) a two-sided t-test at
  ``alpha = 0.05`` needs to detect a difference with power 0.8 at a spread (exact noncentral-t
  power, searched upward from the normal approximation). ``seeds_needed_range`` is what
  comparisons report: the seeds for a stated smallest effect of interest (``MIN_EFFECT``, 0.02
  nats), not for the observed difference (which is noisy and, for the best, selected), at the
  estimated spread and at both ends of that spread's 95% chi-square interval.
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
#: The smallest difference worth resolving (nats), for which seeds_needed_range plans.
MIN_EFFECT = 0.02


def holm(p: Sequence[float] | np.ndarray, *, family: int | None = None) -> np.ndarray:
    """Holm-adjusted p-values (NaN stays NaN and does not count as a comparison). ``family``: the
    size of the whole family when it has more members than the finite ``p`` (they count as p = 1)."""
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = max(order.size, family or 0)
    adjusted = np.maximum.accumulate((m - np.arange(order.size)) * p[order])
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


def seeds_needed_range(
    sd: Sequence[float] | np.ndarray,
    dof: Sequence[float] | np.ndarray,
    *,
    paired: Sequence[bool] | np.ndarray | bool,
    effect: float = MIN_EFFECT,
    alpha: float = ALPHA,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(needed, lo, hi)``: ``seeds_needed`` for ``effect`` at the estimated spread ``sd`` and at
    the ends of its 95% interval (``sd * sqrt(dof / chi2(dof; 0.975))`` to ``... 0.025``), so a
    spread measured from two pairs gives a wide range, never one confident number."""
    from scipy import stats

    sd, dof = np.asarray(sd, float), np.asarray(dof, float)
    ok = np.isfinite(dof) & (dof > 0)
    d = np.where(ok, dof, 1.0)
    lo_sd = np.where(ok, sd * np.sqrt(d / stats.chi2.ppf(0.975, d)), np.nan)
    hi_sd = np.where(ok, sd * np.sqrt(d / stats.chi2.ppf(0.025, d)), np.nan)
    effects = np.full(sd.shape, effect)
    return tuple(seeds_needed(effects, s, paired=paired, alpha=alpha) for s in (sd, lo_sd, hi_sd))  # type: ignore[return-value]


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


def verdict(p_holm: pl.Expr, has_interval: pl.Expr, alpha: float = ALPHA, *, one_run: pl.Expr | None = None) -> pl.Expr:
    """``resolved`` (Holm-adjusted p below alpha), ``within noise``, ``one run`` (a side with one
    run and no variance to borrow, when ``one_run`` says so) or ``no interval``."""
    out = pl.when(p_holm < alpha).then(pl.lit("resolved")).when(has_interval).then(pl.lit("within noise"))
    if one_run is not None:
        out = out.when(one_run).then(pl.lit("one run"))
    return out.otherwise(pl.lit("no interval"))
