"""Scaling-law fits with bootstrap uncertainty.

Laws (natural logarithms throughout; losses in nats/token):

* **Power law** ``L(x) = E + A * x**(-alpha)`` for x in ``params``, ``non_embedding_params``,
  ``tokens`` or ``compute``.
* **Chinchilla Approach 3** ``L(N, D) = E + A / N**alpha + B / D**beta`` (Hoffmann et al. 2022).
  Fitted, as in the paper, by minimising the Huber loss (delta = 1e-3) of the residuals of
  ``log L``, with ``log L_hat = LSE(a - alpha*log N, b - beta*log D, e)`` and ``A = exp(a)``,
  ``B = exp(b)``, ``E = exp(e)``. The loss is *summed* over runs, not averaged: with a mean the
  objective is ~1e-6 and L-BFGS-B's absolute tolerance stops it before convergence
  (Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt").
* **Chinchilla Approach 2** (isoFLOP): per compute budget, a parabola of loss in ``log N``; its
  vertex is ``N_opt(C)``; then ``N_opt ∝ C**a`` and ``D_opt ∝ C**b`` by least squares in log-log.

Starting points. The power law uses the same log-sum-exp machinery with one term. Both start from
Hoffmann et al.'s grid (alpha, beta in {0, 0.5, ..., 2}; e in {-1, -0.5, ..., 1}; a, b in
{0, 5, ..., 25}: 4,500 starts for Approach 3; the power law's ``a`` runs to 40 because ``x`` may
be a compute in FLOPs). The objective is evaluated on the whole grid at once (one broadcast numpy
expression), and L-BFGS-B runs only from the ``n_refine`` best starts (default 8). Running L-BFGS-B from all
4,500 starts costs ~300x more (55 s vs 0.17 s for 100 runs at the paper's scales, measured) and
there ended at the same optimum as the best 1, 8 and 64; the grid scan is what protects against
the bad local minima, so keeping its best starts keeps that protection.

Uncertainty. ``bootstrap=B`` resamples *runs* with replacement B times and refits each resample
(from the full-data optimum, which is close to the resample's optimum; a full grid per resample
would add nothing but time). Intervals are percentile intervals of the B refits, for every
parameter and for every prediction (``predict_interval``). Compute is ``C = c * N**gamma * D``
with ``c = 6, gamma = 1`` (the ``6ND`` rule) unless a ``FlopsModel`` fitted to the counted
``flops_per_token`` of the runs is given.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy.optimize import minimize

HUBER_DELTA = 1e-3
_GRID_EXP = np.arange(0.0, 2.01, 0.5)  # alpha, beta
_GRID_E = np.arange(-1.0, 1.01, 0.5)  # e = log E
_GRID_LOG_COEF = np.arange(0.0, 25.01, 5.0)  # a, b = log A, log B
_GRID_LOG_COEF_POWER = np.arange(0.0, 40.01, 5.0)



# --------------------------------------------------------------------------------------------
# The log-sum-exp Huber objective, vectorised over starting points.
# theta layout: [e, a_1..a_K, alpha_1..alpha_K]; log L_hat = LSE(e, a_k - alpha_k * log x_k).
# --------------------------------------------------------------------------------------------


def _lse_terms(theta: np.ndarray, log_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log L_hat (S, n) and the softmax weights of its terms (S, n, K+1) for thetas (S, 1+2K)."""
    k = log_x.shape[1]
    e, a, alpha = theta[:, :1], theta[:, 1 : 1 + k], theta[:, 1 + k :]
    power_terms = a[:, None, :] - alpha[:, None, :] * log_x[None, :, :]  # (S, n, K)
    terms = np.concatenate([np.broadcast_to(e[:, None, :], power_terms.shape[:2] + (1,)), power_terms], axis=2)
    top = terms.max(axis=2, keepdims=True)
    w = np.exp(terms - top)
    total = w.sum(axis=2, keepdims=True)
    return (top + np.log(total))[..., 0], w / total


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    abs_r = np.abs(r)
    return np.where(abs_r <= delta, 0.5 * r * r, delta * (abs_r - 0.5 * delta))


def _objective(
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


def _grid(k: int) -> np.ndarray:
    """Hoffmann et al.'s grid of starts for a law with ``k`` power terms, shape (S, 1+2k)."""
    coef = _GRID_LOG_COEF if k == 2 else _GRID_LOG_COEF_POWER
    axes = [_GRID_E] + [coef] * k + [_GRID_EXP] * k
    return np.array(list(itertools.product(*axes)))


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS to one thread. L-BFGS-B calls BLAS on tiny vectors thousands of times; with
    OpenBLAS threads on a busy 2-core machine that made a 100-resample bootstrap take 27 s
    instead of 0.7 s (measured). Falls back to a no-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _bounds(k: int) -> list[tuple[float, float]]:
    """Box for L-BFGS-B: e in [-10, 10], a_k in [-50, 200], alpha_k in [0, 10] (wide: they only
    stop runaway parameters on data that cannot identify them; ``_bound_warnings`` reports it)."""
    return [(-10.0, 10.0)] + [(-50.0, 200.0)] * k + [(0.0, 10.0)] * k


def _bound_warnings(theta: np.ndarray, names: Sequence[str]) -> tuple[str, ...]:
    """One message per parameter that ended on its bound: the data do not pin it down."""
    out = []
    for value, (lo, hi), name in zip(theta, _bounds((len(theta) - 1) // 2), names, strict=True):
        if np.isclose(value, lo, atol=1e-6) or np.isclose(value, hi, atol=1e-6):
            shown = f"{name}={np.exp(value):.3g}" if name in ("E", "A", "B") else f"{name}={value:.3g}"
            out.append(f"{shown} is at the edge of the search box: the runs do not constrain {name}")
    return tuple(out)


def _single_blas_thread(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _one_blas_thread():
            return fn(*args, **kwargs)

    return wrapper


def _lbfgs(
    theta0: np.ndarray, log_x: np.ndarray, log_loss: np.ndarray, delta: float, maxiter: int = 2000
) -> tuple[np.ndarray, float]:
    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = _objective(theta[None, :], log_x, log_loss, delta)
        return float(f[0]), g[0]

    k = log_x.shape[1]
    bounds = _bounds(k)
    res = minimize(
        fun, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
        options={"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-12},
    )  # fmt: skip
    return res.x, float(res.fun)


def _fit_lse(
    log_x: np.ndarray, log_loss: np.ndarray, *, delta: float, n_refine: int, starts: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Best theta over a grid scan followed by L-BFGS-B from the ``n_refine`` best starts."""
    grid = _grid(log_x.shape[1]) if starts is None else starts
    # evaluate the whole grid in chunks to bound memory (S * n * (K+1) floats per chunk)
    chunk = max(1, 2_000_000 // max(1, log_x.shape[0] * (log_x.shape[1] + 1)))
    values = np.concatenate([_objective(grid[i : i + chunk], log_x, log_loss, delta)[0] for i in range(0, len(grid), chunk)])
    best = grid[np.argsort(values, kind="stable")[:n_refine]]
    results = [_lbfgs(theta0, log_x, log_loss, delta) for theta0 in best]
    theta, value = min(results, key=lambda tv: tv[1])
    return theta, value


def _bootstrap_indices(n: int, n_boot: int, seed: int, levels: np.ndarray | None = None, min_levels: int = 3) -> np.ndarray:
    """``n_boot`` resamples of ``n`` run indices. Resamples in which fewer than ``min_levels``
    distinct values of ``levels`` survive cannot identify the law and are dropped."""
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    if levels is None or n_boot == 0:
        return idx
    picked = np.sort(levels[idx], axis=1)
    distinct = 1 + (np.diff(picked, axis=1) != 0).sum(axis=1)
    return idx[distinct >= min_levels]


def _interval(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0, ignoring NaN refits (all-NaN columns give NaN)."""
    import warnings

    tail = (1.0 - level) / 2.0 * 100.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": reported as NaN
        lo, hi = np.nanpercentile(samples, [tail, 100.0 - tail], axis=0)
    return lo, hi


# --------------------------------------------------------------------------------------------
# Compute model
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


# --------------------------------------------------------------------------------------------
# Fit results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LawFit:
    """A fitted law: point estimates, bootstrap refits and the data size.

    ``samples`` has one row per bootstrap refit, columns in the order of ``params`` (empty when
    no bootstrap was asked for). ``objective`` is the summed Huber loss at the optimum.
    """

    law: str
    params: dict[str, float]
    samples: np.ndarray
    n_runs: int
    objective: float
    inputs: tuple[str, ...]
    level: float = 0.95
    warnings: tuple[str, ...] = ()

    def _theta(self) -> np.ndarray:
        return np.array([list(self.params.values())])

    def _predict(self, theta: np.ndarray, *x: np.ndarray) -> np.ndarray:  # (S, m)
        raise NotImplementedError

    def predict(self, *x: Any) -> np.ndarray:
        """Predicted loss at the given inputs (broadcast numpy arrays)."""
        arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, float)) for v in x))
        return self._predict(self._theta(), *(a.ravel() for a in arrays))[0].reshape(arrays[0].shape)

    def predict_interval(self, *x: Any, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of the prediction over bootstrap refits (NaN without bootstrap)."""
        arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, float)) for v in x))
        if len(self.samples) == 0:
            nan = np.full(arrays[0].shape, np.nan)
            return nan, nan
        preds = self._predict(self.samples, *(a.ravel() for a in arrays))
        lo, hi = _interval(preds, level or self.level)
        return lo.reshape(arrays[0].shape), hi.reshape(arrays[0].shape)

    def ci(self, level: float | None = None) -> dict[str, list[float]]:
        """``{param: [lo, hi]}`` percentile intervals over bootstrap refits (empty without)."""
        if len(self.samples) == 0:
            return {}
        lo, hi = _interval(self.samples, level or self.level)
        return {name: [float(lo[i]), float(hi[i])] for i, name in enumerate(self.params)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": self.law,
            "inputs": list(self.inputs),
            "params": dict(self.params),
            "ci": self.ci(),
            "level": self.level,
            "n_runs": self.n_runs,
            "n_bootstrap": len(self.samples),
            "huber_loss": self.objective,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class PowerLawFit(LawFit):
    """``L(x) = E + A * x**(-alpha)``; params ``E, A, alpha``."""

    def _predict(self, theta: np.ndarray, *x: np.ndarray) -> np.ndarray:
        e, a, alpha = theta[:, :1], theta[:, 1:2], theta[:, 2:3]
        return e + a * x[0][None, :] ** (-alpha)

    def x_for_loss(self, loss: Any, theta: np.ndarray | None = None) -> np.ndarray:
        """The x at which the law reaches ``loss`` (inf when ``loss <= E``)."""
        theta = self._theta() if theta is None else theta
        e, a, alpha = theta[:, :1], theta[:, 1:2], theta[:, 2:3]
        gap = np.atleast_1d(np.asarray(loss, float))[None, :] - e
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gap > 0, (a / np.where(gap > 0, gap, 1.0)) ** (1.0 / alpha), np.inf)


@dataclass(frozen=True)
class ChinchillaFit(LawFit):
    """``L(N, D) = E + A / N**alpha + B / D**beta``; params ``E, A, B, alpha, beta``."""

    def _predict(self, theta: np.ndarray, *x: np.ndarray) -> np.ndarray:
        e, a, b, alpha, beta = (theta[:, i : i + 1] for i in range(5))
        return e + a * x[0][None, :] ** (-alpha) + b * x[1][None, :] ** (-beta)

    def _optimal(self, theta: np.ndarray, compute: np.ndarray, flops: FlopsModel) -> tuple[np.ndarray, np.ndarray]:
        # minimise A N^-alpha + B (C / (c N^gamma))^-beta:  N^(alpha + gamma beta) = alpha A C^beta / (gamma beta B c^beta)
        _, a, b, alpha, beta = (theta[:, i : i + 1] for i in range(5))
        c, gamma = flops.c, flops.gamma
        log_n = (np.log(alpha * a) - np.log(gamma * beta * b) - beta * np.log(c) + beta * np.log(compute)[None, :]) / (
            alpha + gamma * beta
        )
        n_opt = np.exp(log_n)
        return n_opt, flops.tokens(compute[None, :], n_opt)

    def optimal_allocation(
        self, compute: Any, flops: FlopsModel | None = None
    ) -> dict[str, np.ndarray]:
        """Compute-optimal ``N_opt(C)``, ``D_opt(C)`` and the loss there, with bootstrap intervals.

        ``C = c * N**gamma * D``: ``FlopsModel()`` is ``C = 6ND``; pass ``FlopsModel.fit(params,
        flops_per_token)`` to use the counted FLOPs of the runs instead.
        """
        flops = flops or FlopsModel()
        compute = np.atleast_1d(np.asarray(compute, float))
        n_opt, d_opt = self._optimal(self._theta(), compute, flops)
        out = {
            "compute": compute,
            "n_opt": n_opt[0],
            "d_opt": d_opt[0],
            "loss": self._predict(self._theta(), n_opt[0], d_opt[0])[0],
        }
        if len(self.samples):
            ns, ds = self._optimal(self.samples, compute, flops)
            loss_s = self.samples[:, :1] + self.samples[:, 1:2] * ns ** (-self.samples[:, 3:4]) + self.samples[
                :, 2:3
            ] * ds ** (-self.samples[:, 4:5])
            for name, s in (("n_opt", ns), ("d_opt", ds), ("loss", loss_s)):
                out[f"{name}_lo"], out[f"{name}_hi"] = _interval(s, self.level)
        return out

    def loss_at_compute(self, compute: Any, flops: FlopsModel | None = None, theta: np.ndarray | None = None) -> np.ndarray:
        """Loss at the compute-optimal allocation, shape (S, m) for thetas (S, 5)."""
        flops = flops or FlopsModel()
        theta = self._theta() if theta is None else theta
        compute = np.atleast_1d(np.asarray(compute, float))
        n, d = self._optimal(theta, compute, flops)
        e, a, b, alpha, beta = (theta[:, i : i + 1] for i in range(5))
        return e + a * n ** (-alpha) + b * d ** (-beta)


# --------------------------------------------------------------------------------------------
# Fitting functions
# --------------------------------------------------------------------------------------------


def _clean(*arrays: Any) -> list[np.ndarray]:
    cols = [np.asarray(a, float).ravel() for a in arrays]
    ok = np.logical_and.reduce([np.isfinite(c) & (c > 0) for c in cols])
    return [c[ok] for c in cols]


@_single_blas_thread
def fit_power_law(
    x: Any,
    loss: Any,
    *,
    x_name: str = "x",
    bootstrap: int = 0,
    seed: int = 0,
    delta: float = HUBER_DELTA,
    n_refine: int = 8,
    level: float = 0.95,
) -> PowerLawFit:
    """Fit ``L(x) = E + A * x**(-alpha)`` (Huber on log-residuals, summed over runs).

    Non-positive or non-finite values are dropped. Needs at least 3 runs.
    """
    x, loss = _clean(x, loss)
    if x.size < 3:
        raise ValueError(f"a power law needs at least 3 runs with positive {x_name} and loss, got {x.size}")
    log_x, log_loss = np.log(x)[:, None], np.log(loss)
    theta, value = _fit_lse(log_x, log_loss, delta=delta, n_refine=n_refine)
    samples = np.array(
        [_lbfgs(theta, log_x[idx], log_loss[idx], delta, 500)[0] for idx in _bootstrap_indices(x.size, bootstrap, seed, x)]
    ).reshape(-1, 3)

    def natural(t: np.ndarray) -> np.ndarray:  # [e, a, alpha] -> [E, A, alpha]
        return np.column_stack([np.exp(t[:, 0]), np.exp(t[:, 1]), t[:, 2]])

    point = natural(theta[None, :])[0]
    return PowerLawFit(
        law="power",
        params={"E": float(point[0]), "A": float(point[1]), "alpha": float(point[2])},
        samples=natural(samples),
        n_runs=int(x.size),
        objective=value,
        inputs=(x_name,),
        level=level,
        warnings=_bound_warnings(theta, ("E", "A", "alpha")),
    )


@_single_blas_thread
def fit_chinchilla(
    n: Any,
    d: Any,
    loss: Any,
    *,
    bootstrap: int = 0,
    seed: int = 0,
    delta: float = HUBER_DELTA,
    n_refine: int = 8,
    level: float = 0.95,
    inputs: tuple[str, str] = ("params", "tokens"),
) -> ChinchillaFit:
    """Chinchilla Approach 3: ``L(N, D) = E + A/N**alpha + B/D**beta`` (see module docstring)."""
    n, d, loss = _clean(n, d, loss)
    if n.size < 5:
        raise ValueError(f"Approach 3 needs at least 5 runs with positive N, D and loss, got {n.size}")
    log_x, log_loss = np.column_stack([np.log(n), np.log(d)]), np.log(loss)
    theta, value = _fit_lse(log_x, log_loss, delta=delta, n_refine=n_refine)
    pair_id = np.unique(log_x, axis=0, return_inverse=True)[1].ravel()  # distinct (N, D) pairs
    samples = np.array(
        [_lbfgs(theta, log_x[idx], log_loss[idx], delta, 500)[0] for idx in _bootstrap_indices(n.size, bootstrap, seed, pair_id, 5)]
    ).reshape(-1, 5)

    def natural(t: np.ndarray) -> np.ndarray:  # [e, a, b, alpha, beta] -> [E, A, B, alpha, beta]
        return np.column_stack([np.exp(t[:, 0]), np.exp(t[:, 1]), np.exp(t[:, 2]), t[:, 3], t[:, 4]])

    point = natural(theta[None, :])[0]
    return ChinchillaFit(
        law="chinchilla",
        params=dict(zip(("E", "A", "B", "alpha", "beta"), map(float, point), strict=True)),
        samples=natural(samples),
        n_runs=int(n.size),
        objective=value,
        inputs=inputs,
        level=level,
        warnings=_bound_warnings(theta, ("E", "A", "B", "alpha", "beta")),
    )


# --------------------------------------------------------------------------------------------
# Approach 2 (isoFLOP parabolas)
# --------------------------------------------------------------------------------------------


def compute_budgets(compute: Any, *, gap_decades: float = 0.02) -> np.ndarray:
    """Group runs into compute budgets: sorted ``log10 C`` split wherever the gap exceeds
    ``gap_decades`` (default 0.02 decades, ~5%). Returns a budget index per run (0 = smallest)."""
    log_c = np.log10(np.asarray(compute, float))
    order = np.argsort(log_c, kind="stable")
    new_budget = np.concatenate([[0], (np.diff(log_c[order]) > gap_decades).astype(int)])
    budget = np.empty_like(order)
    budget[order] = np.cumsum(new_budget)
    return budget


def _parabola_vertices(
    log_n: np.ndarray, loss: np.ndarray, group: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares parabola ``loss = p2 x^2 + p1 x + p0`` per group (vectorised with bincount;
    ``group`` may index many bootstrap replicas at once). Returns vertex x, vertex loss, curvature p2."""
    count = np.bincount(group, minlength=n_groups)
    mean_x = np.bincount(group, log_n, minlength=n_groups) / np.maximum(count, 1)
    x = log_n - mean_x[group]  # centred for conditioning
    s = np.stack([np.bincount(group, x**p, minlength=n_groups) for p in range(5)], axis=1)  # (G, 5)
    t = np.stack([np.bincount(group, loss * x**p, minlength=n_groups) for p in range(3)], axis=1)
    m = np.stack([s[:, [4, 3, 2]], s[:, [3, 2, 1]], s[:, [2, 1, 0]]], axis=1)  # (G, 3, 3)
    rhs = t[:, [2, 1, 0]]
    solvable = np.abs(np.linalg.det(m)) > 1e-12 * np.maximum(1.0, np.abs(m).max(axis=(1, 2))) ** 3
    m[~solvable] = np.eye(3)
    coef = np.linalg.solve(m, rhs[..., None])[..., 0]
    p2, p1, p0 = coef[:, 0], coef[:, 1], coef[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xv = np.where(solvable & (p2 > 0), -p1 / (2 * p2), np.nan)
    return xv + mean_x, p0 + p1 * xv + p2 * xv**2, np.where(solvable, p2, np.nan)


@dataclass(frozen=True)
class IsoFlopFit:
    """Chinchilla Approach 2: per-budget optima and ``N_opt = k_N C**a``, ``D_opt = k_D C**b``.

    ``budgets`` has one row per compute budget: ``compute`` (geometric mean of the runs' compute),
    ``n_runs``, ``n_opt``, ``d_opt``, ``loss_opt``, ``curvature`` (the parabola's x² coefficient;
    null when the parabola opens downward or is underdetermined), ``interior`` (the vertex lies
    within the sampled N range; an exterior vertex is an extrapolation).
    """

    params: dict[str, float]  # a, b, k_n, k_d
    budgets: pl.DataFrame
    samples: np.ndarray  # (B, 4): bootstrap a, b, k_n, k_d
    n_runs: int
    level: float = 0.95
    law: str = "isoflop"
    warnings: tuple[str, ...] = ()

    def ci(self, level: float | None = None) -> dict[str, list[float]]:
        if len(self.samples) == 0:
            return {}
        lo, hi = _interval(self.samples, level or self.level)
        return {name: [float(lo[i]), float(hi[i])] for i, name in enumerate(("a", "b", "k_n", "k_d"))}

    def n_opt(self, compute: Any) -> np.ndarray:
        return self.params["k_n"] * np.asarray(compute, float) ** self.params["a"]

    def d_opt(self, compute: Any) -> np.ndarray:
        return self.params["k_d"] * np.asarray(compute, float) ** self.params["b"]

    def optimal_allocation(self, compute: Any) -> dict[str, np.ndarray]:
        """``N_opt(C)``, ``D_opt(C)`` and, with a bootstrap, their percentile intervals."""
        c = np.atleast_1d(np.asarray(compute, float))
        out = {"compute": c, "n_opt": self.n_opt(c), "d_opt": self.d_opt(c)}
        if len(self.samples):
            a, b, k_n, k_d = (self.samples[:, i : i + 1] for i in range(4))
            out["n_opt_lo"], out["n_opt_hi"] = _interval(k_n * c[None, :] ** a, self.level)
            out["d_opt_lo"], out["d_opt_hi"] = _interval(k_d * c[None, :] ** b, self.level)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": self.law,
            "params": dict(self.params),
            "ci": self.ci(),
            "level": self.level,
            "n_runs": self.n_runs,
            "n_bootstrap": len(self.samples),
            "budgets": self.budgets.to_dicts(),
            "warnings": list(self.warnings),
        }


def _exponents(log_c: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """Slopes and intercepts of log N_opt and log D_opt on log C over finite budgets."""
    ok = np.isfinite(log_n) & np.isfinite(log_d)
    if ok.sum() < 2:
        return np.full(4, np.nan)
    a, log_kn = np.polyfit(log_c[ok], log_n[ok], 1)
    b, log_kd = np.polyfit(log_c[ok], log_d[ok], 1)
    return np.array([a, b, log_kn, log_kd])


@_single_blas_thread
def fit_isoflop(
    n: Any,
    loss: Any,
    compute: Any,
    *,
    flops: FlopsModel | None = None,
    gap_decades: float = 0.02,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> IsoFlopFit:
    """Chinchilla Approach 2 on runs at a few fixed compute budgets.

    Budgets are found with ``compute_budgets``. ``D_opt = C / (c * N_opt**gamma)`` with the
    ``FlopsModel`` (``6ND`` by default). Bootstrap resamples runs within each budget.
    """
    flops = flops or FlopsModel()
    n, loss, compute = _clean(n, loss, compute)
    budget = compute_budgets(compute, gap_decades=gap_decades)
    n_budgets = int(budget.max()) + 1 if budget.size else 0
    if n_budgets < 2:
        raise ValueError(f"Approach 2 needs runs at 2 or more compute budgets, got {n_budgets}")
    log_n, log_c = np.log(n), np.log(compute)
    count = np.bincount(budget, minlength=n_budgets)
    c_budget = np.exp(np.bincount(budget, log_c, minlength=n_budgets) / count)
    xv, lv, curv = _parabola_vertices(log_n, loss, budget, n_budgets)
    xv = np.where(count >= 3, xv, np.nan)
    n_opt = np.exp(xv)
    d_opt = flops.tokens(c_budget, n_opt)
    if np.isfinite(n_opt).sum() < 2:
        raise ValueError(
            f"Approach 2 needs 2 or more budgets with 3+ runs whose parabola in log N opens upward; "
            f"got {int(np.isfinite(n_opt).sum())} of {n_budgets} budgets"
        )
    fit = _exponents(np.log(c_budget), np.log(n_opt), np.log(d_opt))
    lo_n = np.full(n_budgets, np.inf)
    hi_n = np.full(n_budgets, -np.inf)
    np.minimum.at(lo_n, budget, log_n)
    np.maximum.at(hi_n, budget, log_n)

    samples = np.empty((0, 4))
    if bootstrap:
        # stratified resampling: each run is replaced by a random run of the same budget
        order = np.argsort(budget, kind="stable")
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        rng = np.random.default_rng(seed)
        pick = start[budget][None, :] + np.floor(rng.random((bootstrap, n.size)) * count[budget][None, :]).astype(int)
        idx = order[pick]  # (B, n)
        group = (budget[idx] + n_budgets * np.arange(bootstrap)[:, None]).ravel()
        bxv, _, _ = _parabola_vertices(log_n[idx].ravel(), loss[idx].ravel(), group, n_budgets * bootstrap)
        bxv = np.where(np.tile(count >= 3, bootstrap), bxv, np.nan).reshape(bootstrap, n_budgets)
        log_cb = np.log(c_budget)
        log_db = np.log(flops.tokens(c_budget[None, :], np.exp(bxv)))
        fitted = np.array([_exponents(log_cb, bxv[i], log_db[i]) for i in range(bootstrap)])  # a, b, log k_n, log k_d
        samples = np.column_stack([fitted[:, 0], fitted[:, 1], np.exp(fitted[:, 2]), np.exp(fitted[:, 3])])

    budgets = pl.DataFrame(
        {
            "compute": c_budget,
            "n_runs": count,
            "n_opt": n_opt,
            "d_opt": d_opt,
            "loss_opt": np.where(np.isfinite(xv), lv, np.nan),
            "curvature": curv,
            "interior": (xv >= lo_n) & (xv <= hi_n),
        }
    ).with_columns(pl.col("n_opt", "d_opt", "loss_opt", "curvature").fill_nan(None))
    return IsoFlopFit(
        params={"a": float(fit[0]), "b": float(fit[1]), "k_n": float(np.exp(fit[2])), "k_d": float(np.exp(fit[3]))},
        budgets=budgets,
        samples=samples,
        n_runs=int(n.size),
        level=level,
        warnings=_isoflop_warnings(np.isfinite(xv), (xv >= lo_n) & (xv <= hi_n), c_budget),
    )


def _isoflop_warnings(valid: np.ndarray, interior: np.ndarray, compute: np.ndarray) -> tuple[str, ...]:
    out = []
    if (~valid).any():
        out.append(f"{int((~valid).sum())} budget(s) without a minimum (under 3 runs or a parabola opening downward): "
                   + ", ".join(f"{c:.3g}" for c in compute[~valid]))  # fmt: skip
    outside = valid & ~interior
    if outside.any():
        out.append("minimum outside the sampled N range (extrapolated) at C = " + ", ".join(f"{c:.3g}" for c in compute[outside]))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Checks and comparisons
# --------------------------------------------------------------------------------------------


def leave_largest_out(
    law: Literal["power", "chinchilla"],
    inputs: Sequence[Any],
    loss: Any,
    compute: Any,
    *,
    gap_decades: float = 0.02,
    **fit_kwargs: Any,
) -> dict[str, Any]:
    """Fit without the largest compute budget and report the error predicting its runs.

    ``inputs`` is ``(x,)`` for a power law or ``(N, D)`` for Chinchilla. The held-out budget is
    the top group of ``compute_budgets``. Errors are in loss units (nats/token) and relative.
    """
    arrays = _clean(*inputs, loss, compute)
    *xs, loss, compute = arrays
    budget = compute_budgets(compute, gap_decades=gap_decades)
    held = budget == budget.max()
    fit_fn: Callable[..., LawFit] = fit_power_law if law == "power" else fit_chinchilla
    fitted = fit_fn(*(x[~held] for x in xs), loss[~held], **fit_kwargs)
    pred = fitted.predict(*(x[held] for x in xs))
    err = pred - loss[held]
    return {
        "held_out_compute": float(np.exp(np.mean(np.log(compute[held])))),
        "n_held_out": int(held.sum()),
        "n_fit": int((~held).sum()),
        "mean_error": float(np.mean(err)),
        "mean_abs_error": float(np.mean(np.abs(err))),
        "mean_rel_error": float(np.mean(np.abs(err) / loss[held])),
        "max_rel_error": float(np.max(np.abs(err) / loss[held])),
        "params": fitted.params,
    }


def fit_groups(
    frame: pl.DataFrame,
    *,
    by: str = "group",
    law: Literal["power", "chinchilla"] = "power",
    x: str = "compute",
    n_col: str = "params",
    d_col: str = "tokens",
    loss_col: str = "eval_loss",
    bootstrap: int = 0,
    seed: int = 0,
    min_runs: int | None = None,
) -> dict[str, LawFit]:
    """One fit per value of ``by`` (e.g. ``group`` in a scaling study, or ``label``).

    Groups with too few runs for the law (3 for a power law, 5 for Chinchilla) are skipped.
    """
    min_runs = min_runs or (3 if law == "power" else 5)
    cols = [x] if law == "power" else [n_col, d_col]
    fits: dict[str, LawFit] = {}
    for (name,), part in frame.drop_nulls([by, loss_col, *cols]).group_by(by, maintain_order=True):
        if part.height < min_runs:
            continue
        if law == "power":
            fits[str(name)] = fit_power_law(
                part[x].to_numpy(), part[loss_col].to_numpy(), x_name=x, bootstrap=bootstrap, seed=seed
            )
        else:
            fits[str(name)] = fit_chinchilla(
                part[n_col].to_numpy(), part[d_col].to_numpy(), part[loss_col].to_numpy(),
                bootstrap=bootstrap, seed=seed, inputs=(n_col, d_col),
            )  # fmt: skip
    return fits


def _loss_samples(fit: LawFit, at: float, flops: FlopsModel | None) -> tuple[float, np.ndarray]:
    """Point prediction at ``at`` (x for a power law, compute for Chinchilla) and its bootstrap samples."""
    if isinstance(fit, ChinchillaFit):
        point = float(fit.loss_at_compute(at, flops)[0, 0])
        samples = fit.loss_at_compute(at, flops, theta=fit.samples)[:, 0] if len(fit.samples) else np.empty(0)
        return point, samples
    point = float(fit.predict(at)[0])
    samples = fit._predict(fit.samples, np.array([at]))[:, 0] if len(fit.samples) else np.empty(0)
    return point, samples


def rank_architectures(
    fits: Mapping[str, LawFit], *, at: float, flops: FlopsModel | None = None, level: float = 0.95
) -> pl.DataFrame:
    """Architectures ranked by predicted loss at ``at`` (lowest first), with bootstrap intervals.

    ``at`` is the x of the power laws (a compute or a size), or a compute for Chinchilla fits
    (loss at the compute-optimal allocation). Columns: ``rank, name, predicted_loss, lo, hi``.
    """
    rows = {"name": [], "predicted_loss": [], "lo": [], "hi": []}
    for name, fit in fits.items():
        point, samples = _loss_samples(fit, at, flops)
        lo, hi = _interval(samples[:, None], level) if samples.size else (np.array([np.nan]), np.array([np.nan]))
        rows["name"].append(name)
        rows["predicted_loss"].append(point)
        rows["lo"].append(float(lo[0]))
        rows["hi"].append(float(hi[0]))
    frame = pl.DataFrame(rows, schema={"name": pl.String, "predicted_loss": pl.Float64, "lo": pl.Float64, "hi": pl.Float64})
    return (
        frame.with_columns(pl.col("lo", "hi").fill_nan(None))
        .sort("predicted_loss")
        .with_row_index("rank", offset=1)
        .with_columns(at=pl.lit(float(at)))
    )


def _compute_for_loss(fit: LawFit, loss: np.ndarray, theta: np.ndarray, flops: FlopsModel | None) -> np.ndarray:
    """Compute at which the law with parameters ``theta[i]`` reaches ``loss[i]`` (inf if never)."""
    e = theta[:, 0]
    if isinstance(fit, PowerLawFit):
        a, alpha = theta[:, 1], theta[:, 2]
        gap = np.where(loss > e, loss - e, 1.0)
        return np.where(loss > e, (a / gap) ** (1.0 / alpha), np.inf)
    # Chinchilla: the loss at the compute-optimal allocation falls with C; bisect log C row-wise.
    flops = flops or FlopsModel()
    lo = np.full(loss.shape, np.log(1e3))
    hi = np.full(loss.shape, np.log(1e45))
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        above = _paired_loss_at_compute(theta, np.exp(mid), flops) > loss
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return np.where(loss > e, np.exp(0.5 * (lo + hi)), np.inf)


def _paired_loss_at_compute(theta: np.ndarray, compute: np.ndarray, flops: FlopsModel) -> np.ndarray:
    """Chinchilla loss at the compute-optimal allocation for ``theta[i]`` at ``compute[i]``."""
    e, a, b, alpha, beta = theta.T
    log_n = (np.log(alpha * a) - np.log(flops.gamma * beta * b) - beta * np.log(flops.c) + beta * np.log(compute)) / (
        alpha + flops.gamma * beta
    )
    n = np.exp(log_n)
    d = flops.tokens(compute, n)
    return e + a * n ** (-alpha) + b * d ** (-beta)


def effective_compute_multiplier(
    baseline: LawFit, variant: LawFit, *, at: float, flops: FlopsModel | None = None, level: float = 0.95
) -> dict[str, float]:
    """How much more compute the baseline needs to reach the variant's loss at compute ``at``.

    Both fits must be power laws in compute (``x = compute``) or Chinchilla fits (loss at the
    compute-optimal allocation). ``multiplier > 1`` means the variant is better. The interval pairs
    the i-th bootstrap refit of each fit (both need the same number of refits). ``inf``: the
    baseline never reaches that loss (it is below the baseline's irreducible loss E).
    """
    v_point, v_samples = _loss_samples(variant, at, flops)
    c_point = _compute_for_loss(baseline, np.array([v_point]), baseline._theta(), flops)[0]
    out = {"at": float(at), "variant_loss": v_point, "multiplier": float(c_point / at), "lo": np.nan, "hi": np.nan}
    m = min(len(baseline.samples), len(v_samples))
    if m:
        c_samples = _compute_for_loss(baseline, v_samples[:m], baseline.samples[:m], flops) / at
        lo, hi = _interval(c_samples[:, None], level)
        out["lo"], out["hi"] = float(lo[0]), float(hi[0])
    return out
