"""Chinchilla Approach 2 (isoFLOP): per compute budget, a least-squares parabola of loss in
``log N`` near the budget's minimum; its vertex is ``N_opt(C)``; then ``N_opt = k_N C**a`` by least
squares in log-log, and ``D_opt = C / (c N_opt**gamma)`` with the runs' own ``FlopsModel`` (the FLOP
counts the study budgeted with; ``6ND`` only when none is given).

Window: the loss is a parabola in ``log N`` only near its minimum, so each budget's parabola is
fitted to the sizes within a factor ``window`` (default 4) of its lowest-loss size (mean over seeds),
widened to the 3 nearest sizes when fewer fall inside; the ``budgets`` table says which sizes were
used. A budget whose lowest loss is at its smallest or largest size has no bracketed minimum: its
vertex would be an extrapolation, so it is not used for the exponents (a warning names it).

Intervals (``bootstrap > 0``): the minima scatter around the fitted line; with ``J`` budgets the
t distribution with ``J - 2`` degrees of freedom gives intervals for ``a``, ``k_N`` and ``N_opt(C)``
that account for that scatter however it arises (noise of each vertex, a window's bias). ``samples``
holds draws from it, so every interval is a percentile of them. Two budgets leave no residual: no
interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from .inputs import FlopsModel, clean, compute_budgets
from .intervals import percentile_interval
from .objective import NotIdentified, single_blas_thread

ISOFLOP_PARAMS = ("a", "b", "k_n", "k_d")
#: Draws from the t distribution of the line through the minima that intervals are percentiles of.
T_DRAWS = 4000


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
    ``n_runs``, ``n_sizes``, the window the parabola was fitted in (``window_lo``, ``window_hi``:
    sizes; ``window_runs``), ``n_opt``, ``d_opt``, ``loss_opt``, ``curvature`` (the parabola's x²
    coefficient; null when the parabola opens downward or is underdetermined), ``bracketed`` (the
    lowest loss is at an inner size), ``interior`` (the vertex lies within the sampled sizes) and
    ``used`` (the budget's minimum enters the exponents).
    """

    params: dict[str, float]  # a, b, k_n, k_d
    budgets: pl.DataFrame
    samples: np.ndarray  # (S, 4): draws of a, b, k_n, k_d (see module docstring)
    n_runs: int
    level: float = 0.95
    law: str = "isoflop"
    warnings: tuple[str, ...] = ()
    interval: str = "none"
    interval_note: str = ""
    line_draws: np.ndarray | None = None  # (S, 2): a and log N_opt at compute c_ref (numerically safe)
    c_ref: float = 1.0
    flops: FlopsModel = FlopsModel()

    @property
    def identified(self) -> bool:
        return True  # fit_isoflop raises NotIdentified instead of returning an unidentified fit

    def ci(self, level: float | None = None) -> dict[str, list[float]]:
        if len(self.samples) == 0:
            return {}
        lo, hi = percentile_interval(self.samples, level or self.level)
        return {name: [float(lo[i]), float(hi[i])] for i, name in enumerate(ISOFLOP_PARAMS)}

    def n_opt(self, compute: Any) -> np.ndarray:
        return self.params["k_n"] * np.asarray(compute, float) ** self.params["a"]

    def d_opt(self, compute: Any) -> np.ndarray:
        return self.params["k_d"] * np.asarray(compute, float) ** self.params["b"]

    def optimal_allocation(self, compute: Any) -> dict[str, np.ndarray]:
        """``N_opt(C)``, ``D_opt(C)`` and, with intervals, their percentile intervals."""
        c = np.atleast_1d(np.asarray(compute, float))
        out = {"compute": c, "n_opt": self.n_opt(c), "d_opt": self.d_opt(c)}
        if self.line_draws is not None and len(self.line_draws):
            a, log_ref = self.line_draws[:, :1], self.line_draws[:, 1:]
            log_n = log_ref + a * (np.log(c)[None, :] - np.log(self.c_ref))
            log_d = np.log(c)[None, :] - np.log(self.flops.c) - self.flops.gamma * log_n
            with np.errstate(over="ignore"):  # heavy t tails (1-2 df) may overflow: percentiles of inf are fine
                out["n_opt_lo"], out["n_opt_hi"] = np.exp(percentile_interval(log_n, self.level))
                out["d_opt_lo"], out["d_opt_hi"] = np.exp(percentile_interval(log_d, self.level))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": self.law,
            "identified": True,
            "params": dict(self.params),
            "ci": self.ci(),
            "undetermined": dict.fromkeys(self.params, self.interval_note) if self.interval == "unavailable" else {},
            "level": self.level,
            "interval": self.interval,
            "interval_note": self.interval_note,
            "n_runs": self.n_runs,
            "n_bootstrap": 0,
            "budgets": self.budgets.to_dicts(),
            "warnings": list(self.warnings),
        }


def _windows(
    log_n: np.ndarray, loss: np.ndarray, budget: np.ndarray, n_budgets: int, log_window: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per budget, the runs whose size is within ``log_window`` of the lowest-loss size (mean over
    seeds; at least the 3 nearest sizes). Returns the run mask, ``bracketed``, the window's log-size
    range (G, 2) and the number of distinct sizes per budget. One pass per budget (a handful)."""
    use = np.zeros(log_n.size, bool)
    bracketed = np.zeros(n_budgets, bool)
    span = np.full((n_budgets, 2), np.nan)
    n_sizes = np.zeros(n_budgets, int)
    for g in range(n_budgets):
        mine = budget == g
        sizes, inverse = np.unique(log_n[mine], return_inverse=True)
        mean_loss = np.bincount(inverse, loss[mine]) / np.bincount(inverse)
        best = int(np.argmin(mean_loss))
        n_sizes[g] = sizes.size
        bracketed[g] = 0 < best < sizes.size - 1
        distance = np.abs(sizes - sizes[best])
        chosen = distance <= log_window + 1e-12
        if chosen.sum() < 3:
            chosen = np.zeros(sizes.size, bool)
            chosen[np.argsort(distance, kind="stable")[:3]] = True
        use[np.flatnonzero(mine)[chosen[inverse]]] = True
        span[g] = sizes[chosen].min(), sizes[chosen].max()
    return use, bracketed, span, n_sizes


def _line_draws(log_c: np.ndarray, log_n: np.ndarray, n_draws: int, seed: int) -> np.ndarray:
    """Draws of (a, log N_opt at the mean log C) from the t distribution of the least-squares line
    through the minima (``J - 2`` degrees of freedom), shape (n_draws, 2)."""
    x = np.column_stack([log_c - log_c.mean(), np.ones_like(log_c)])
    coef, *_ = np.linalg.lstsq(x, log_n, rcond=None)
    df = log_c.size - 2
    s2 = float(((log_n - x @ coef) ** 2).sum() / df)
    chol = np.linalg.cholesky(s2 * np.linalg.inv(x.T @ x) + 1e-300 * np.eye(2))
    rng = np.random.default_rng(seed)
    t = rng.standard_normal((n_draws, 2)) @ chol.T / np.sqrt(rng.chisquare(df, (n_draws, 1)) / df)
    return coef[None, :] + t


@single_blas_thread
def fit_isoflop(
    n: Any,
    loss: Any,
    compute: Any,
    *,
    flops: FlopsModel | None = None,
    gap_decades: float = 0.02,
    window: float = 4.0,
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> IsoFlopFit:
    """Chinchilla Approach 2 on runs at a few fixed compute budgets (see the module docstring).

    Budgets are found with ``compute_budgets``; ``flops`` is the runs' FLOP model (``6ND`` if
    None); ``window`` the factor in N around each budget's lowest-loss size. ``bootstrap > 0`` asks
    for intervals (t-based, from the scatter of the minima). Raises ``NotIdentified`` (a
    ``ValueError``) with fewer than 2 budgets whose minimum is bracketed.
    """
    flops = flops or FlopsModel()
    n, loss, compute = clean(n, loss, compute)
    budget = compute_budgets(compute, gap_decades=gap_decades)
    n_budgets = int(budget.max()) + 1 if budget.size else 0
    remedy = "run 3+ compute budgets, each with 3+ sizes on both sides of its best size"
    if n_budgets < 2:
        raise NotIdentified(f"Approach 2 needs runs at 2 or more compute budgets, got {n_budgets}; {remedy}")
    log_n, log_c = np.log(n), np.log(compute)
    count = np.bincount(budget, minlength=n_budgets)
    c_budget = np.exp(np.bincount(budget, log_c, minlength=n_budgets) / count)
    use, bracketed, span, n_sizes = _windows(log_n, loss, budget, n_budgets, np.log(window))
    xv, lv, curv = _parabola_vertices(log_n[use], loss[use], budget[use], n_budgets)
    window_runs = np.bincount(budget[use], minlength=n_budgets)
    lo_n, hi_n = np.full(n_budgets, np.inf), np.full(n_budgets, -np.inf)
    np.minimum.at(lo_n, budget, log_n)
    np.maximum.at(hi_n, budget, log_n)
    interior = (xv >= lo_n) & (xv <= hi_n)
    used = bracketed & (n_sizes >= 3) & np.isfinite(xv) & interior
    if used.sum() < 2:
        raise NotIdentified(
            f"Approach 2 needs 2 or more budgets whose minimum is bracketed by 3+ sizes and whose parabola "
            f"in log N opens upward; got {int(used.sum())} of {n_budgets} budgets; {remedy}"
        )
    n_opt = np.exp(xv)
    a, log_kn = np.polyfit(np.log(c_budget[used]), xv[used], 1)
    samples, note, method = np.empty((0, 4)), "no intervals asked for (bootstrap=0)", "none"
    draws, c_ref = None, float(np.exp(np.log(c_budget[used]).mean()))
    if bootstrap > 0 and used.sum() >= 3:
        draws = _line_draws(np.log(c_budget[used]), xv[used], T_DRAWS, seed)
        samples = _natural(draws[:, 0], draws[:, 1] - draws[:, 0] * np.log(c_ref), flops)
        method = "t"
        note = f"t interval from the scatter of {int(used.sum())} budgets' minima about the line ({used.sum() - 2} df)"
    elif bootstrap > 0:
        method = "unavailable"
        note = "no interval: 2 budgets leave no residual to measure the scatter of the minima; run 3+ budgets"
    fit = _natural(np.array([a]), np.array([log_kn]), flops)[0]
    budgets = pl.DataFrame(
        {
            "compute": c_budget,
            "n_runs": count,
            "n_sizes": n_sizes,
            "window_lo": np.exp(span[:, 0]),
            "window_hi": np.exp(span[:, 1]),
            "window_runs": window_runs,
            "n_opt": n_opt,
            "d_opt": flops.tokens(c_budget, n_opt),
            "loss_opt": np.where(np.isfinite(xv), lv, np.nan),
            "curvature": curv,
            "bracketed": bracketed,
            "interior": interior,
            "used": used,
        }
    ).with_columns(pl.col("n_opt", "d_opt", "loss_opt", "curvature").fill_nan(None))
    return IsoFlopFit(
        params=dict(zip(ISOFLOP_PARAMS, map(float, fit), strict=True)),
        budgets=budgets,
        samples=samples,
        n_runs=int(n.size),
        level=level,
        warnings=_isoflop_warnings(bracketed, np.isfinite(xv), interior, c_budget),
        interval=method,
        interval_note=note,
        line_draws=draws,
        c_ref=c_ref,
        flops=flops,
    )


def _natural(a: np.ndarray, log_kn: np.ndarray, flops: FlopsModel) -> np.ndarray:
    """``[a, b, k_N, k_D]`` rows: with ``C = c N^gamma D``, ``log D_opt = -log c - gamma log k_N
    + (1 - gamma a) log C``."""
    b = 1.0 - flops.gamma * a
    log_kd = -np.log(flops.c) - flops.gamma * log_kn
    with np.errstate(over="ignore", under="ignore"):
        return np.column_stack([a, b, np.exp(log_kn), np.exp(log_kd)])


def _isoflop_warnings(
    bracketed: np.ndarray, valid: np.ndarray, interior: np.ndarray, compute: np.ndarray
) -> tuple[str, ...]:
    out = []

    def at(mask: np.ndarray) -> str:
        return ", ".join(f"{c:.3g}" for c in compute[mask])

    if (~bracketed).any():
        out.append(
            f"{int((~bracketed).sum())} budget(s) with the lowest loss at the smallest or largest size (minimum not "
            f"bracketed, not used; add sizes beyond it): C = {at(~bracketed)}"
        )
    rest = bracketed & ~(valid & interior)
    if rest.any():
        out.append(
            f"{int(rest.sum())} budget(s) whose parabola has no minimum within the sizes (not used): C = {at(rest)}"
        )
    return tuple(out)
