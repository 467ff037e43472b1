"""Machinery shared by every scaling-law fit: the Huber objective, the starts, the optimiser,
the bootstrap, intervals, the compute model and the fit record.

Every law is ``L = E + sum_k A_k * x_k**(-alpha_k)`` (one term: a power law; two: Chinchilla
Approach 3), fitted, as Hoffmann et al. (2022) do, by minimising the Huber loss (delta = 1e-3) of
the residuals of ``log L`` with ``log L_hat = LSE(e, a_k - alpha_k * log x_k)``, ``E = exp(e)``,
``A_k = exp(a_k)``. The loss is *summed* over runs, not averaged: with a mean the objective is
~1e-6 and L-BFGS-B's absolute tolerance stops it before convergence (Besiroglu et al. 2024).

Starting points: Hoffmann et al.'s grid (alpha in {0, 0.5, ..., 2}; e in {-1, -0.5, ..., 1}; a in
{0, 5, ..., 25}: 4,500 starts for two terms; one term runs ``a`` to 40 because ``x`` may be a
compute in FLOPs). The objective is evaluated on the whole grid at once (one broadcast numpy
expression), and L-BFGS-B runs only from the ``n_refine`` best starts (default 8): from all 4,500
it costs ~300x more (55 s vs 0.17 s for 100 runs at the paper's scales, measured) and ended at the
same optimum as the best 1, 8 and 64; the grid scan is what protects against bad local minima.

Uncertainty (``law_intervals``): runs are grouped into *design units* (the planned grid point of a
study: all seeds of one size and token count together; else the distinct inputs). With at least
``MIN_BOOTSTRAP_UNITS`` units, a bootstrap resamples whole units with replacement and refits each
resample from the full-data optimum; resamples with fewer distinct units than parameters + 1, or
whose refit ends at the edge of the box, cannot determine the parameters and are dropped (and
counted); if more than ``MAX_DROPPED`` of them are, the bootstrap is not trusted. Otherwise (and
then) the interval is the likelihood-ratio (profile) interval of ``fits_profile``, which needs only
one residual degree of freedom and accounts for it with the F distribution (the power law: with
a parametric-bootstrap quantile of its likelihood-ratio statistic). ``LawFit.interval_of``
turns either into intervals for any derived quantity. A law's own module (``fits_power``,
``fits_chinchilla``, ``fits_isoflop``) says what its parameters mean.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

HUBER_DELTA = 1e-3


class NotIdentified(ValueError):
    """The runs' design cannot identify the law; the message is one line naming the reason and
    the design that would identify it."""


_GRID_EXP = np.arange(0.0, 2.01, 0.5)  # alpha, beta
_GRID_E = np.arange(-1.0, 1.01, 0.5)  # e = log E
_GRID_LOG_COEF = np.arange(0.0, 25.01, 5.0)  # a, b = log A, log B (two terms)
_GRID_LOG_COEF_POWER = np.arange(0.0, 40.01, 5.0)  # a (one term: x may be a compute in FLOPs)


# --------------------------------------------------------------------------------------------
# The log-sum-exp Huber objective, vectorised over starting points.
# theta layout: [e, a_1..a_K, alpha_1..alpha_K]; log L_hat = LSE(e, a_k - alpha_k * log x_k).
# --------------------------------------------------------------------------------------------


def _lse_terms(theta: np.ndarray, log_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log L_hat (S, n) and the softmax weights of its terms (S, n, K+1) for thetas (S, 1+2K)."""
    k = log_x.shape[1]
    e, a, alpha = theta[:, :1], theta[:, 1 : 1 + k], theta[:, 1 + k :]
    power_terms = a[:, None, :] - alpha[:, None, :] * log_x[None, :, :]  # (S, n, K)
    constant = np.broadcast_to(e[:, None, :], power_terms.shape[:2] + (1,))
    terms = np.concatenate([constant, power_terms], axis=2)
    top = terms.max(axis=2, keepdims=True)
    w = np.exp(terms - top)
    total = w.sum(axis=2, keepdims=True)
    return (top + np.log(total))[..., 0], w / total


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    abs_r = np.abs(r)
    return np.where(abs_r <= delta, 0.5 * r * r, delta * (abs_r - 0.5 * delta))


def objective(
    theta: np.ndarray, log_x: np.ndarray, log_loss: np.ndarray, delta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Summed Huber loss of log-residuals and its analytic gradient, for thetas of shape (S, P).

    With softmax weights w of the LSE terms: d log L_hat / d e = w_0, / d a_k = w_k,
    / d alpha_k = -w_k log x_k; the chain rule multiplies by huber'(r) = clip(r, -delta, delta).
    """
    log_pred, w = _lse_terms(theta, log_x)  # (S, n), (S, n, K+1)
    r = log_pred - log_loss[None, :]  # (S, n)
    psi = np.clip(r, -delta, delta)
    g_terms = np.einsum("sn,snk->sk", psi, w)  # (S, K+1): e, a_1..a_K
    g_alpha = -np.einsum("sn,snk,nk->sk", psi, w[:, :, 1:], log_x)  # (S, K)
    return _huber(r, delta).sum(axis=1), np.concatenate([g_terms, g_alpha], axis=1)


def grid(k: int) -> np.ndarray:
    """Hoffmann et al.'s grid of starts for a law with ``k`` power terms, shape (S, 1+2k)."""
    coef = _GRID_LOG_COEF if k == 2 else _GRID_LOG_COEF_POWER
    axes = [_GRID_E] + [coef] * k + [_GRID_EXP] * k
    return np.array(list(itertools.product(*axes)))


def bounds(k: int) -> list[tuple[float, float]]:
    """Box for L-BFGS-B: e in [-10, 10], a_k in [-50, 200], alpha_k in [0, 10] (wide: they only
    stop runaway parameters on data that cannot identify them; ``bound_warnings`` reports it)."""
    return [(-10.0, 10.0)] + [(-50.0, 200.0)] * k + [(0.0, 10.0)] * k


def bound_warnings(theta: np.ndarray, names: Sequence[str]) -> tuple[str, ...]:
    """One message per parameter that ended on its bound: the data do not pin it down.
    ``names`` are the natural names in theta's order (``E``, ``A``/``B`` for logs, exponents)."""
    out = []
    for value, (lo, hi), name in zip(theta, bounds((len(theta) - 1) // 2), names, strict=True):
        if np.isclose(value, lo, atol=1e-6) or np.isclose(value, hi, atol=1e-6):
            shown = f"{name}={np.exp(value):.3g}" if name in ("E", "A", "B") else f"{name}={value:.3g}"
            out.append(f"{shown} is at the edge of the search box: the runs do not constrain {name}")
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Optimisation
# --------------------------------------------------------------------------------------------


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS to one thread. L-BFGS-B calls BLAS on tiny vectors thousands of times; with
    OpenBLAS threads on a busy 2-core machine that made a 100-resample bootstrap take 27 s
    instead of 0.7 s (measured). Falls back to a no-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def single_blas_thread(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: run ``fn`` with BLAS limited to one thread (see ``_one_blas_thread``)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _one_blas_thread():
            return fn(*args, **kwargs)

    return wrapper


def lbfgs(
    theta0: np.ndarray, log_x: np.ndarray, log_loss: np.ndarray, delta: float, maxiter: int = 2000
) -> tuple[np.ndarray, float]:
    """L-BFGS-B from ``theta0``; returns the optimum (clipped into ``bounds``) and its objective.

    The optimiser works in the scale-free parametrisation ``a'_k = a_k - alpha_k * mean(log x_k)``
    (``log x`` centred): in ``(a, alpha)`` the two are nearly collinear whenever ``log x`` is far
    from 0 (``log C`` ~ 25-60), the Huber valley is long and thin, and L-BFGS-B stopped before the
    optimum (on an isoFLOP grid of 20 runs, bootstrap refits ended up to 0.12 off in alpha with an
    objective 1e-6 higher; centred, they converge in fewer iterations, ~2x faster, measured)."""
    k = log_x.shape[1]
    mean = log_x.mean(axis=0)
    centred = log_x - mean

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = objective(theta[None, :], centred, log_loss, delta)
        return float(f[0]), g[0]

    start = np.array(theta0, float)
    start[1 : 1 + k] -= start[1 + k :] * mean
    box = bounds(k)
    box_centred = box[:1] + [(-1e3, 1e3)] * k + box[1 + k :]
    options = {"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-12}
    res = minimize(fun, start, jac=True, method="L-BFGS-B", bounds=box_centred, options=options)
    theta = res.x.copy()
    theta[1 : 1 + k] += theta[1 + k :] * mean
    theta = np.clip(theta, [lo for lo, _ in box], [hi for _, hi in box])  # a_k beyond its box: at the edge
    return theta, float(objective(theta[None, :], log_x, log_loss, delta)[0][0])


def fit_lse(
    log_x: np.ndarray, log_loss: np.ndarray, *, delta: float, n_refine: int, starts: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Best theta over a grid scan followed by L-BFGS-B from the ``n_refine`` best starts."""
    starts = grid(log_x.shape[1]) if starts is None else starts
    # evaluate the grid in chunks to bound memory (S * n * (K+1) floats per chunk)
    chunk = max(1, 2_000_000 // max(1, log_x.shape[0] * (log_x.shape[1] + 1)))
    values = np.concatenate(
        [objective(starts[i : i + chunk], log_x, log_loss, delta)[0] for i in range(0, len(starts), chunk)]
    )
    best = starts[np.argsort(values, kind="stable")[:n_refine]]
    results = [lbfgs(theta0, log_x, log_loss, delta) for theta0 in best]
    return min(results, key=lambda tv: tv[1])


# --------------------------------------------------------------------------------------------
# Bootstrap and intervals
# --------------------------------------------------------------------------------------------


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
    from .fits_profile import profile_region

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


def clean(*arrays: Any) -> list[np.ndarray]:
    """The arrays as flat floats, keeping only the runs where every value is finite and positive."""
    cols = [np.asarray(a, float).ravel() for a in arrays]
    ok = np.logical_and.reduce([np.isfinite(c) & (c > 0) for c in cols])
    return [c[ok] for c in cols]


def compute_budgets(compute: Any, *, gap_decades: float = 0.02) -> np.ndarray:
    """Group runs into compute budgets: sorted ``log10 C`` split wherever the gap exceeds
    ``gap_decades`` (default 0.02 decades, ~5%). Returns a budget index per run (0 = smallest)."""
    log_c = np.log10(np.asarray(compute, float))
    order = np.argsort(log_c, kind="stable")
    new_budget = np.concatenate([[0], (np.diff(log_c[order]) > gap_decades).astype(int)])
    budget = np.empty_like(order)
    budget[order] = np.cumsum(new_budget)
    return budget


# --------------------------------------------------------------------------------------------
# Compute model and the fit record
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlopsModel:
    """Training FLOPs per token as ``c * N**gamma`` (``c=6, gamma=1`` is the ``6N`` rule)."""

    c: float = 6.0
    gamma: float = 1.0

    @classmethod
    def fit(cls, params: np.ndarray, flops_per_token: np.ndarray) -> FlopsModel:
        """Least squares in log-log on the counted ``flops_per_token`` of the runs."""
        log_n, log_f = np.log(np.asarray(params, float)), np.log(np.asarray(flops_per_token, float))
        if np.unique(log_n).size < 2:
            return cls(c=float(np.exp(np.mean(log_f - log_n))), gamma=1.0)
        gamma, log_c = np.polyfit(log_n, log_f, 1)
        return cls(c=float(np.exp(log_c)), gamma=float(gamma))

    def tokens(self, compute: np.ndarray, params: np.ndarray) -> np.ndarray:
        return np.asarray(compute, float) / (self.c * np.asarray(params, float) ** self.gamma)


@dataclass(frozen=True)
class LawFit:
    """A fitted law: point estimates, the points its intervals are taken over, and the data size.

    ``samples`` has one row per point, columns in the order of ``params``: bootstrap refits when
    ``interval == "bootstrap"`` (intervals are percentiles), points of the likelihood-ratio set
    when ``interval == "profile"`` (intervals are ranges; ``edge`` marks points on the edge of the
    searched exponents, and a side reached only there is unbounded), empty when ``"none"`` (not
    asked for) or ``"unavailable"`` (asked for, impossible: every parameter is then not determined;
    ``interval_note`` says why). ``objective`` is the summed Huber loss at the optimum.

    ``not_identified`` is empty for a fit the runs determine, else the reason (a parameter at the
    edge of the box): nothing (prediction, ranking, multiplier) may be derived from such a fit.

    A law implements ``_predict`` (loss at its inputs), ``loss_at`` (loss at one scalar: the x of
    a power law, a compute for a law in N and D) and ``at_for_loss`` (its inverse); rankings,
    multipliers and charts use only these, so a new law needs no changes there.
    """

    law: str
    params: dict[str, float]
    samples: np.ndarray
    n_runs: int
    objective: float
    inputs: tuple[str, ...]
    level: float = 0.95
    warnings: tuple[str, ...] = ()
    interval: str = "bootstrap"
    interval_note: str = ""
    edge: np.ndarray | None = None
    n_dropped: int = 0
    n_units: int = 0
    not_identified: str = ""

    @property
    def identified(self) -> bool:
        return not self.not_identified

    def _theta(self) -> np.ndarray:
        return np.array([list(self.params.values())])

    def _predict(self, theta: np.ndarray, *x: np.ndarray) -> np.ndarray:  # (S, m)
        raise NotImplementedError

    def loss_at(self, at: Any, theta: np.ndarray | None = None, flops: FlopsModel | None = None) -> np.ndarray:
        """Loss at the scalar(s) ``at`` for each row of ``theta`` (default: the estimate), (S, m)."""
        raise NotImplementedError

    def at_for_loss(self, loss: np.ndarray, theta: np.ndarray, flops: FlopsModel | None = None) -> np.ndarray:
        """Where the law with parameters ``theta[i]`` reaches ``loss[i]`` (inf if never), (S,)."""
        raise NotImplementedError

    def interval_of(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The interval of a derived quantity from its values at ``samples`` (S, m): percentiles of
        bootstrap refits, or the range over the likelihood-ratio set (NaN: unbounded; no samples: NaN)."""
        if len(self.samples) == 0:
            nan = np.full(values.shape[1:], np.nan)
            return nan, nan.copy()
        if self.interval == "profile":
            from .fits_profile import region_interval

            edge = self.edge if self.edge is not None else np.zeros(len(values), bool)
            return region_interval(values, edge)
        return percentile_interval(values, self.level)

    def predict(self, *x: Any) -> np.ndarray:
        """Predicted loss at the given inputs (broadcast numpy arrays)."""
        arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, float)) for v in x))
        return self._predict(self._theta(), *(a.ravel() for a in arrays))[0].reshape(arrays[0].shape)

    def predict_interval(self, *x: Any, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Interval of the prediction (see ``interval_of``; NaN without samples or where unbounded).
        ``level`` applies to bootstrap percentiles; a likelihood-ratio set is built at ``self.level``."""
        arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, float)) for v in x))
        if len(self.samples) == 0:
            nan = np.full(arrays[0].shape, np.nan)
            return nan, nan
        preds = self._predict(self.samples, *(a.ravel() for a in arrays))
        if self.interval == "bootstrap" and level is not None:
            lo, hi = percentile_interval(preds, level)
        else:
            lo, hi = self.interval_of(preds)
        return lo.reshape(arrays[0].shape), hi.reshape(arrays[0].shape)

    def ci(self, level: float | None = None) -> dict[str, list[float]]:
        """``{param: [lo, hi]}`` intervals (empty without samples; NaN for an unbounded side)."""
        if len(self.samples) == 0:
            return {}
        if self.interval == "bootstrap" and level is not None:
            lo, hi = percentile_interval(self.samples, level)
        else:
            lo, hi = self.interval_of(self.samples)
        return {name: [float(lo[i]), float(hi[i])] for i, name in enumerate(self.params)}

    def undetermined(self) -> dict[str, str]:
        """``{param: why}`` for parameters whose interval the runs do not bound, or every parameter
        when intervals were asked for and cannot be made (empty when none were asked for)."""
        if self.interval == "unavailable":
            return dict.fromkeys(self.params, self.interval_note)
        out = {}
        for name, (lo, hi) in self.ci().items():
            if not (np.isfinite(lo) and np.isfinite(hi)):
                side = "below" if not np.isfinite(lo) else "above"
                out[name] = f"its {self.level:.0%} interval is not bounded {side} by the runs"
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": self.law,
            "inputs": list(self.inputs),
            "identified": self.identified,
            "not_identified": self.not_identified or None,
            "params": dict(self.params),
            "ci": self.ci(),
            "undetermined": self.undetermined(),
            "level": self.level,
            "interval": self.interval,
            "interval_note": self.interval_note,
            "n_runs": self.n_runs,
            "n_units": self.n_units,
            "n_bootstrap": len(self.samples) if self.interval == "bootstrap" else 0,
            "n_bootstrap_dropped": self.n_dropped,
            "huber_loss": self.objective,
            "warnings": list(self.warnings),
        }
