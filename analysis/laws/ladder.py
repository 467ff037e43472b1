"""Ladder fits: each architecture's loss law in compute, fitted jointly over the ladders of a search.

A ladder is one architecture trained at K sizes (rungs). Each architecture i gets its own law in
training compute C,

    L_i(C) = E + exp(a_i) * (C / C0) ** -alpha_i,

and the irreducible loss E is shared by every architecture of the search: it belongs to the data
(the entropy of the text), not to the model, so all ladders inform it. K = 3 rungs could not
identify (E, A, alpha) for one architecture on its own (three points, three parameters, no
residual); with E shared, m ladders give 3m points for 2m + 1 parameters.

Identification is checked, never assumed: at least two complete ladders, at least three distinct
compute levels per ladder, a well-conditioned Jacobian, and no parameter at its bound (E at the
smallest observed loss, an exponent at the edge of its range). A ladder that fails any of these
gets no prediction, only the reason. When E ends at 0 (the ladders show no flattening), the
nested law with E = 0 is identified and is fitted instead (`archscale.analysis.laws.ladder_nofloor`,
labelled "no floor (E = 0)").

Intervals come from a parametric bootstrap that also draws the noise level: with few residual
degrees of freedom the residual variance is itself uncertain, so each replicate draws
sigma^2 = SSE / chi2(dof) before simulating losses around the fit and refitting. The interval is
the basic (reflected) bootstrap interval, which corrects for the fit's bias at the target. Its coverage is
measured by simulation at the ladder design (`tests/analysis/test_ladders.py`,
`benchmarks/bench_calibration.py`: 0.90-0.93 at 200 simulated searches per noise level) and
against real runs (`benchmarks/bench_predicted.py`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .ladder_nofloor import fit_without_floor
from .ladder_record import ALPHA_BOUNDS, LOG_A_BOUNDS, MIN_LADDERS, MIN_RUNGS, LadderFit, LadderLaw

MAX_CONDITION = 1e10  # of J^T J at the fit (scaled columns): beyond it the fit is not identified


def _per_ladder_given_e(e: float, logc: np.ndarray, y: np.ndarray) -> tuple[float, float, float] | None:
    """For a fixed E, log(L - E) is linear in log C: (log_A, alpha, sse) by least squares."""
    gap = y - e
    if np.any(gap <= 0):
        return None
    slope, intercept = np.polyfit(logc, np.log(gap), 1)
    alpha = float(np.clip(-slope, *ALPHA_BOUNDS))
    log_a = float(np.clip(intercept, *LOG_A_BOUNDS))
    pred = e + np.exp(log_a - alpha * logc)
    return log_a, alpha, float(np.sum((y - pred) ** 2))


def _fit_once(
    groups: list[tuple[np.ndarray, np.ndarray]], e_hi: float, start: np.ndarray | None = None
) -> tuple[float, list[tuple[float, float]], float]:
    """Least squares for (E, log_A_i, alpha_i): a profile over E for a start (each ladder is a
    straight line in log(L - E) vs log C once E is fixed), then a joint refinement. `start`
    skips the profile (bootstrap refits start from the point estimate)."""
    from scipy.optimize import least_squares

    if start is None:
        best = None
        for e in np.linspace(0.0, e_hi * (1 - 1e-6), 40):
            parts = [_per_ladder_given_e(e, logc, y) for logc, y in groups]
            if any(p is None for p in parts):
                continue
            sse = sum(p[2] for p in parts)
            if best is None or sse < best[0]:
                best = (sse, e, [(p[0], p[1]) for p in parts])
        if best is None:
            raise ValueError("no E below the smallest loss fits the ladders")
        start = np.array([best[1], *[v for pair in best[2] for v in pair]])
    lo = np.array([0.0, *[b for _ in groups for b in (LOG_A_BOUNDS[0], ALPHA_BOUNDS[0])]])
    hi = np.array([e_hi, *[b for _ in groups for b in (LOG_A_BOUNDS[1], ALPHA_BOUNDS[1])]])
    x0 = np.clip(start, lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [y - (x[0] + np.exp(x[1 + 2 * i] - x[2 + 2 * i] * logc)) for i, (logc, y) in enumerate(groups)]
        )

    sizes = [len(y) for _, y in groups]
    rows = np.repeat(np.arange(len(groups)), sizes)  # the ladder of each residual
    logc_all = np.concatenate([logc for logc, _ in groups])

    def jacobian(x: np.ndarray) -> np.ndarray:
        """Analytic: d r / d E = -1, d r / d log_A_i = -term, d r / d alpha_i = log C * term (on
        ladder i's rows). With it a bootstrap refit costs ~4x less than by finite differences."""
        term = np.exp(x[1 + 2 * rows] - x[2 + 2 * rows] * logc_all)
        jac = np.zeros((logc_all.size, x.size))
        jac[:, 0] = -1.0
        jac[np.arange(logc_all.size), 1 + 2 * rows] = -term
        jac[np.arange(logc_all.size), 2 + 2 * rows] = logc_all * term
        return jac

    res = least_squares(residuals, x0, jac=jacobian, bounds=(lo, hi), method="trf", x_scale="jac")
    x = res.x
    return float(x[0]), [(float(x[1 + 2 * i]), float(x[2 + 2 * i])) for i in range(len(groups))], float(2 * res.cost)


def _jacobian_condition(e: float, params: list[tuple[float, float]], groups) -> float:
    """Condition number of J^T J at the fit, columns scaled to unit norm."""
    n = sum(len(y) for _, y in groups)
    rows = []
    for i, (logc, _) in enumerate(groups):
        log_a, alpha = params[i]
        term = np.exp(log_a - alpha * logc)
        block = np.zeros((len(logc), 1 + 2 * len(groups)))
        block[:, 0] = 1.0
        block[:, 1 + 2 * i] = term
        block[:, 2 + 2 * i] = -logc * term
        rows.append(block)
    jac = np.vstack(rows)
    norms = np.linalg.norm(jac, axis=0)
    if np.any(norms == 0) or jac.shape[0] < jac.shape[1] or n == 0:
        return math.inf
    scaled = jac / norms
    return float(np.linalg.cond(scaled.T @ scaled))


def usable_ladders(
    ladders: dict[Any, tuple[Sequence[float], Sequence[float]]],
) -> tuple[dict[Any, tuple[np.ndarray, np.ndarray]], dict[Any, LadderLaw], float]:
    """The ladders a fit can use (finite runs, at least MIN_RUNGS distinct compute levels), the
    refused ones as unidentified laws with the reason, and c0 (the geometric mean compute of the
    usable rungs, which every law is centred on)."""
    usable, refused = {}, {}
    for key, (compute, loss) in ladders.items():
        c, y = np.asarray(compute, float), np.asarray(loss, float)
        ok = np.isfinite(c) & np.isfinite(y) & (c > 0)
        c, y = c[ok], y[ok]
        if len(np.unique(c)) < MIN_RUNGS:
            refused[key] = f"{len(np.unique(c))} distinct compute levels; a ladder needs at least {MIN_RUNGS}"
        else:
            usable[key] = (c, y)
    all_c = np.concatenate([c for c, _ in usable.values()]) if usable else np.array([1.0])
    c0 = float(np.exp(np.mean(np.log(all_c))))
    laws = {k: LadderLaw(k, math.nan, math.nan, math.nan, c0, False, r) for k, r in refused.items()}
    return usable, laws, c0


def fit_ladders(
    ladders: dict[Any, tuple[Sequence[float], Sequence[float]]], *, bootstrap: int = 200, seed: int = 0
) -> LadderFit:
    """Fit every ladder's law with a shared E. `ladders` maps a ladder key to (compute, loss) of
    its rungs (seeds of a rung may repeat a compute value). Ladders with fewer than MIN_RUNGS
    distinct compute levels are kept out of the fit and reported as not identified."""
    usable, laws, c0 = usable_ladders(ladders)
    if len(usable) < MIN_LADDERS:
        reason = (
            f"{len(usable)} complete ladder(s); E is shared, so at least {MIN_LADDERS} are needed "
            "(run more trials, or more rungs per ladder)"
        )
        for k in usable:
            laws[k] = LadderLaw(k, math.nan, math.nan, math.nan, c0, False, reason)
        return LadderFit(laws, math.nan, math.nan, 0, 0, c0, False, reason)

    keys = list(usable)
    groups = [(np.log(usable[k][0] / c0), usable[k][1]) for k in keys]
    n = sum(len(y) for _, y in groups)
    p = 1 + 2 * len(groups)
    dof = n - p
    e_hi = float(min(y.min() for _, y in groups))
    e, params, sse = _fit_once(groups, e_hi)
    sigma = math.sqrt(sse / dof) if dof > 0 else math.nan
    reason = None
    if dof < 1:
        reason = f"{n} rungs for {p} parameters: no residual degrees of freedom (add ladders or rungs)"
    elif e <= 1e-3 * e_hi:
        # no flattening seen: the nested law with E = 0 is identified (laws/ladder_nofloor.py)
        why = (
            f"the shared irreducible loss E = {e:.3g} is at the lower edge of its range [0, {e_hi:.4g}]: "
            "the ladders show no flattening to fit it from (train larger rungs, more tokens per parameter, "
            "or more ladders to fit a floor)"
        )
        fit = fit_without_floor(usable, c0, why)
        fit.laws = {**laws, **fit.laws}
        return fit
    elif e >= e_hi * (1 - 1e-3):
        reason = (
            f"the shared irreducible loss E = {e:.4g} is at the upper edge of its range (the smallest loss "
            "seen): the losses do not fall like a power law (check the rungs train long enough)"
        )
    elif _jacobian_condition(e, params, groups) > MAX_CONDITION:
        reason = "the joint fit is ill-conditioned (its Jacobian is nearly singular)"
    for k, (log_a, alpha) in zip(keys, params, strict=True):
        at_edge = alpha <= ALPHA_BOUNDS[0] * 1.01 or alpha >= ALPHA_BOUNDS[1] * 0.99
        why = reason or (f"alpha = {alpha:.3g} is at the edge of its range {ALPHA_BOUNDS}" if at_edge else None)
        laws[k] = LadderLaw(k, e, log_a, alpha, c0, why is None, why)
    fit = LadderFit(laws, e, sigma, dof, n, c0, reason is None, reason)
    if reason is None and bootstrap:
        fit.replicates = _bootstrap(groups, keys, e, params, sse, dof, e_hi, bootstrap, seed)
    return fit


def _bootstrap(groups, keys, e, params, sse, dof, e_hi, n_boot, seed):
    """Parametric bootstrap: ``n_boot`` data sets simulated around the fit (each with its own noise
    level, sigma^2 = SSE / chi2(dof)), all refitted at once (``_refit_all``); a refit whose E ends
    at 0 or at its data set's smallest loss cannot determine E and is dropped."""
    rng = np.random.default_rng(seed)
    means = [e + np.exp(log_a - alpha * logc) for (logc, _), (log_a, alpha) in zip(groups, params, strict=True)]
    start = np.array([e, *[v for pair in params for v in pair]])
    sims = []
    for _ in range(n_boot):
        sigma = math.sqrt(sse / rng.chisquare(dof))  # the noise level itself is uncertain with few dof
        sims.append(np.concatenate([mu + rng.normal(0, sigma, size=len(mu)) for mu in means]))
    y = np.array(sims).reshape(n_boot, -1)
    floor = y.min(axis=1)
    x, settled = _refit_all(groups, start, y, floor)
    sizes = np.cumsum([0, *[len(lc) for lc, _ in groups]])
    for i in np.flatnonzero(~settled):  # at a bound or not converged: scipy's bounded solver, as before
        sim = [(logc, y[i, sizes[j] : sizes[j + 1]]) for j, (logc, _) in enumerate(groups)]
        try:
            e_b, params_b, _ = _fit_once(sim, floor[i], start=np.minimum(start, [floor[i] * (1 - 1e-6), *start[1:]]))
        except ValueError:
            x[i] = np.nan
            continue
        x[i] = [e_b, *[v for pair in params_b for v in pair]]
    ok = (x[:, 0] > 0) & (x[:, 0] < floor) & np.isfinite(x).all(axis=1)
    return [
        {k: (float(row[0]), float(row[1 + 2 * i]), float(row[2 + 2 * i])) for i, k in enumerate(keys)} for row in x[ok]
    ]


def _refit_all(
    groups, start: np.ndarray, y: np.ndarray, floor: np.ndarray, max_iter: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Least squares for (E, log_A_i, alpha_i) on every simulated data set (rows of ``y``) at once:
    Levenberg-Marquardt from ``start``, steps projected onto the bounds (E in [0, the data set's
    smallest loss]), until the relative change of the residual sum of squares is below 1e-12.
    Returns the refits and which of them *settled*: converged with no parameter at a bound. The
    others (a projected step stalls on a bound) are left to scipy's bounded solver by the caller.
    One scipy ``least_squares`` call per data set cost ~10 ms of Python overhead: 2 s per
    200-refit fit, paid at every completed ladder of a search and 600 times by the calibration
    benchmark; batched, ~0.2 s."""
    rows = np.concatenate([np.full(len(lc), i) for i, (lc, _) in enumerate(groups)])  # ladder of each run
    logc = np.concatenate([lc for lc, _ in groups])
    n_sets, n = y.shape
    p = start.size
    lo = np.array([0.0, *[b for _ in groups for b in (LOG_A_BOUNDS[0], ALPHA_BOUNDS[0])]])
    hi = np.tile(np.array([np.inf, *[b for _ in groups for b in (LOG_A_BOUNDS[1], ALPHA_BOUNDS[1])]]), (n_sets, 1))
    hi[:, 0] = floor
    x = np.clip(np.tile(start, (n_sets, 1)), lo, hi - 1e-9 * np.abs(hi))
    a_col, alpha_col, run = 1 + 2 * rows, 2 + 2 * rows, np.arange(n)

    def residuals(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        term = np.exp(x[:, a_col] - x[:, alpha_col] * logc)  # (S, n)
        return y - x[:, :1] - term, term

    r, term = residuals(x)
    cost = (r * r).sum(axis=1)
    damping = np.full(n_sets, 1e-3)
    active = np.ones(n_sets, bool)
    for _ in range(max_iter):
        jac = np.zeros((n_sets, n, p))  # d r / d x, as in _fit_once
        jac[:, :, 0] = -1.0
        jac[:, run, a_col] = -term
        jac[:, run, alpha_col] = logc * term
        jtj = np.einsum("sni,snj->sij", jac, jac)
        grad = np.einsum("sni,sn->si", jac, r)
        scaled = jtj + damping[:, None, None] * (np.eye(p) * np.diagonal(jtj, axis1=1, axis2=2)[:, None, :] + 1e-12)
        step = -np.linalg.solve(scaled, grad[..., None])[..., 0]
        x_new = np.clip(x + step, lo, hi)
        r_new, term_new = residuals(x_new)
        cost_new = (r_new * r_new).sum(axis=1)
        better = active & (cost_new < cost)
        done = active & ((cost - np.minimum(cost_new, cost)) <= 1e-12 * cost) & (better | (damping > 1e8))
        x[better], r[better], term[better] = x_new[better], r_new[better], term_new[better]
        cost = np.where(better, cost_new, cost)
        damping = np.where(better, damping / 3.0, damping * 3.0)
        active &= ~done
        if not active.any():
            break
    margin = 1e-6 * (hi - lo)
    interior = ((x > lo + np.minimum(margin, 1e-6)) & (x < hi - np.minimum(margin, 1e-6))).all(axis=1)
    return x, ~active & interior & np.isfinite(x).all(axis=1)
