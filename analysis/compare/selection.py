"""The reported best is selected: the probability each configuration is best, and intervals corrected for it.

* ``p_best``: for each configuration of a cell, the probability that its true mean is the lowest,
  from draws ``mean_i + se_i * t(dof_i)`` (each configuration's own noise, or its borrowed
  variance with that variance's degrees of freedom), with its Monte Carlo standard error
  ``sqrt(p (1 - p) / draws)``. Configurations with no noise estimate take no part (null).
* ``selected_best``: a parametric bootstrap of the **whole selection**. Truths are the observed
  means shrunk towards their precision-weighted mean by the empirical-Bayes factor
  ``tau^2 / (tau^2 + se_i^2)``, ``tau^2 = max(0, var(means) - mean(se^2))`` (plugging in the raw
  means would make the candidates look further apart than they are, and so understate the
  winner's curse; with all truths equal, ``tau^2`` is ~0 and the whole curse is simulated). Each
  draw simulates every mean, picks the lowest, and records how far the picked mean lies below its
  own truth, and how far the picked lead over the runner-up exceeds the true difference between
  those two. The quantiles of those errors turn the observed best mean and lead into intervals
  that include the selection (``best_lo/best_hi``, ``lead_lo/lead_hi``).
* **Shared seeds.** Runs with one seed share part of their noise (the same data order: a seed
  block, the rungs of a ladder). ``data.seed_effects`` estimates the shared part from the
  configs x seeds layout (a two-way ANOVA with an exact interval for the correlation), and the
  draws are a **shared-seed bootstrap**: every seed gets one shared normal, so the configurations
  that ran it move together, and every simulated search draws one shared variance
  (``rho * (J - 1) / chi2_{J-1}`` for ``J`` seeds), common to all configurations. The shared part
  does not help the selection (it moves every candidate alike) but stays in the best's absolute
  interval, with the heavy tail that ``J - 1`` degrees of freedom give it: drawn per
  configuration at the moderated variance's many dof (as before) the best's interval covered
  0.87-0.91 with half the noise shared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archscale.analysis.data.seed_effects import SeedEffect

#: Draws for p_best and the selection bootstrap (Monte Carlo error of p_best <= 0.5/sqrt(draws) ~ 0.008),
#: fewer (down to ``MIN_DRAWS``) when the candidates times the draws would exceed ``MAX_CELLS``; the
#: reported Monte Carlo error says what that costs.
DRAWS = 4000
MIN_DRAWS = 400
MAX_CELLS = 2_000_000


@dataclass(frozen=True)
class SharedSeeds:
    """Which seeds each configuration ran (``seeds[i]``, indices into the cell's seeds) and the
    correlation ``rho`` of two configurations' runs with one seed; ``effect``: the two-way
    estimate it came from (``seed_effects.seed_effect``), whose shared variance is drawn per
    simulated search (None: ``rho`` taken as known)."""

    seeds: list[list[int]]
    n_seeds: int
    rho: float
    effect: SeedEffect | None = None


#: A configuration whose mean is this many combined standard errors above the lowest takes no part
#: in the draws: its probability of being best is below 1e-9 and is reported as 0.
FAR = 6.0


def _draws(
    rng: np.random.Generator,
    center: np.ndarray,
    se: np.ndarray,
    dof: np.ndarray,
    draws: int,
    shared: SharedSeeds | None = None,
) -> np.ndarray:
    """Simulated means: ``center + sigma (s_b zbar_seeds + sigma*/sigma sqrt(1 - rho) u / sqrt(n))``
    with ``sigma* = sigma_hat sqrt(k / chi2_k)`` (the variance's own uncertainty), ``z`` one normal
    per seed shared by every configuration that ran it and ``s_b^2`` the shared variance (in units
    of a configuration's variance): one draw per simulated search from ``shared.effect`` (common to
    every configuration), else ``rho`` scaled like the own part. With no sharing: ``se * t(k)``."""
    k = np.where(np.isfinite(dof), dof, 1e6)
    scale = np.sqrt(k[None, :] / rng.chisquare(k[None, :], size=(draws, center.size)))
    own = rng.standard_normal((draws, center.size))
    if shared is None or (shared.rho <= 0 and shared.effect is None):
        return center[None, :] + se[None, :] * scale * own
    n = np.array([max(len(s), 1) for s in shared.seeds], float)
    unseeded = np.array([not s for s in shared.seeds])  # no recorded seed: nothing shared
    z = rng.standard_normal((draws, shared.n_seeds))
    zbar = np.column_stack([z[:, s].mean(axis=1) if s else np.zeros(draws) for s in shared.seeds])
    sigma = se * np.sqrt(n)
    if shared.effect is not None:
        s_b = np.sqrt(shared.effect.draw_shared(rng, draws))[:, None]
    else:
        s_b = np.sqrt(shared.rho) * scale
    own_part = np.where(unseeded, 1.0, np.sqrt(1 - shared.rho))[None, :] * scale * own / np.sqrt(n)[None, :]
    return center[None, :] + sigma[None, :] * (s_b * zbar + own_part)


def _subset(shared: SharedSeeds | None, ok: np.ndarray) -> SharedSeeds | None:
    if shared is None:
        return None
    kept = [s for s, keep in zip(shared.seeds, ok, strict=True) if keep]
    return SharedSeeds(kept, shared.n_seeds, shared.rho, shared.effect)


def p_best(
    mean: np.ndarray,
    se: np.ndarray,
    dof: np.ndarray,
    *,
    shared: SharedSeeds | None = None,
    draws: int = DRAWS,
    seed: int = 0,
):
    """``(p, mc_se)`` per configuration (NaN where se is unknown)."""
    draws = _draws_for(int(np.isfinite(np.asarray(se, float)).sum()), draws)
    mean, se, dof = (np.asarray(a, float) for a in (mean, se, dof))
    ok = np.isfinite(mean) & np.isfinite(se) & (se >= 0)
    p = np.full(mean.shape, np.nan)
    if ok.sum() == 0:
        return p, p.copy()
    far = _far(mean, se, ok)
    p[far] = 0.0
    ok &= ~far
    if ok.sum() == 1:
        p[ok] = 1.0
        return p, np.where(ok | far, 0.0, np.nan)
    sims = _draws(np.random.default_rng(seed), mean[ok], se[ok], dof[ok], draws, _subset(shared, ok))
    winner = np.argmin(sims, axis=1)
    p[ok] = np.bincount(winner, minlength=ok.sum()) / draws
    return p, np.sqrt(p * (1 - p) / draws)


def _draws_for(candidates: int, draws: int) -> int:
    return int(max(MIN_DRAWS, min(draws, MAX_CELLS // max(candidates, 1))))


def _far(mean: np.ndarray, se: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Configurations ``FAR`` combined standard errors above the lowest mean (never the lowest)."""
    if not ok.any():
        return np.zeros(mean.shape, bool)
    i = np.flatnonzero(ok)[np.argmin(mean[ok])]
    with np.errstate(invalid="ignore"):
        gap = (mean - mean[i]) / np.sqrt(se**2 + se[i] ** 2 + 1e-300)
    return ok & (gap > FAR)


def shrunk_truths(mean: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Empirical-Bayes truths for the selection bootstrap (see the module docstring)."""
    w = 1 / np.maximum(se, 1e-12) ** 2
    center = np.sum(w * mean) / np.sum(w)
    tau2 = max(0.0, float(np.var(mean, ddof=1)) - float(np.mean(se**2))) if mean.size > 1 else 0.0
    return center + tau2 / (tau2 + se**2) * (mean - center)


def selected_best(
    mean: np.ndarray,
    se: np.ndarray,
    dof: np.ndarray,
    *,
    shared: SharedSeeds | None = None,
    level: float = 0.95,
    draws: int = DRAWS,
    seed: int = 0,
) -> dict[str, float]:
    """The selection-corrected interval of the best (lowest) mean and of its lead over the
    runner-up, over configurations with a noise estimate. Keys ``best_lo, best_hi, lead,
    lead_lo, lead_hi, optimism`` (the mean amount the selected mean lies below its truth)."""
    mean, se, dof = (np.asarray(a, float) for a in (mean, se, dof))
    ok = np.isfinite(mean) & np.isfinite(se)
    far = _far(mean, se, ok)  # cannot be picked: leaving them out changes no draw's selection
    if ok.sum() >= 2:  # but the runner-up stays, for the lead
        far[np.flatnonzero(ok)[np.argsort(mean[ok])[1]]] = False
    ok &= ~far
    shared = _subset(shared, ok)
    mean, se, dof = mean[ok], se[ok], dof[ok]
    nan = {k: float("nan") for k in ("best_lo", "best_hi", "lead", "lead_lo", "lead_hi", "optimism")}
    if mean.size == 0:
        return nan
    rng = np.random.default_rng(seed)
    draws = _draws_for(mean.size, draws)
    truth = shrunk_truths(mean, se)
    sims = _draws(rng, truth, se, dof, draws, shared)
    order = np.argsort(sims, axis=1)
    first, second = order[:, 0], order[:, 1] if mean.size > 1 else order[:, 0]
    rows = np.arange(draws)
    err = sims[rows, first] - truth[first]  # < 0: the picked one looks better than it is
    q = ((1 - level) / 2, (1 + level) / 2)
    e_lo, e_hi = np.quantile(err, q)
    sorted_obs = np.sort(mean)
    out = {
        "best_lo": float(sorted_obs[0] - e_hi),
        "best_hi": float(sorted_obs[0] - e_lo),
        "optimism": float(-err.mean()),
    }
    if mean.size < 2:
        return {**nan, **out}
    lead_err = (sims[rows, second] - sims[rows, first]) - (truth[second] - truth[first])
    l_lo, l_hi = np.quantile(lead_err, q)
    lead = float(sorted_obs[1] - sorted_obs[0])
    return {**out, "lead": lead, "lead_lo": lead - float(l_hi), "lead_hi": lead - float(l_lo)}
