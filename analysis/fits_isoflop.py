"""Chinchilla Approach 2 (isoFLOP): per compute budget, a least-squares parabola of loss in
``log N``; its vertex is ``N_opt(C)``; then ``N_opt = k_N C**a`` and ``D_opt = k_D C**b`` by least
squares in log-log, with ``D_opt = C / FLOPs-per-token(N_opt)`` from a ``FlopsModel`` (``6ND`` by
default). Budgets are found with ``compute_budgets``; the bootstrap resamples runs within each
budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from .fits_common import FlopsModel, clean, compute_budgets, percentile_interval, single_blas_thread

ISOFLOP_PARAMS = ("a", "b", "k_n", "k_d")


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
        lo, hi = percentile_interval(self.samples, level or self.level)
        return {name: [float(lo[i]), float(hi[i])] for i, name in enumerate(ISOFLOP_PARAMS)}

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
            out["n_opt_lo"], out["n_opt_hi"] = percentile_interval(k_n * c[None, :] ** a, self.level)
            out["d_opt_lo"], out["d_opt_hi"] = percentile_interval(k_d * c[None, :] ** b, self.level)
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


@single_blas_thread
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
    n, loss, compute = clean(n, loss, compute)
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
        dropped = ", ".join(f"{c:.3g}" for c in compute[~valid])
        out.append(
            f"{int((~valid).sum())} budget(s) without a minimum (under 3 runs or a parabola opening downward): "
            + dropped
        )
    outside = valid & ~interior
    if outside.any():
        out.append(
            "minimum outside the sampled N range (extrapolated) at C = "
            + ", ".join(f"{c:.3g}" for c in compute[outside])
        )
    return tuple(out)
