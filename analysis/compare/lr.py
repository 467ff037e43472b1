"""Learning-rate sensitivity of each architecture over the learning rates a search tried for it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from archscale.analysis.data.runs import diverged_run


def lr_sensitivity(trials: pl.DataFrame, *, metric: str = "eval_loss") -> pl.DataFrame:
    """Learning-rate sensitivity of each ``(run, arch_id)`` over the learning rates tried for it.

    Wortsman et al. (2023), "Small-scale proxies for large-scale Transformer training
    instabilities", section 2.2: ``E_lr[min(L(lr), L0) - L*]``, where ``L(lr)`` is the final loss at
    learning rate ``lr`` (here the mean over its seeds), ``L* = min_lr L(lr)`` and ``L0`` the loss at
    initialisation, which caps a run that diverged. ``L0`` is taken as ``ln(vocab_size)`` (the loss
    of the uniform prediction a freshly initialised decoder makes); a failed trial whose run
    diverged (``run_status``: the trainer's non-finite loss or 3x-loss checks) counts as ``L0``.
    The expectation is the mean
    over the distinct learning rates tried (a search samples them log-uniformly, as the paper's grid
    is log-spaced). Columns: ``run, arch_id, lrs, lr_min, lr_max, best_lr, best_loss,
    lr_sensitivity`` (null with fewer than 2 learning rates: nothing to compare).
    """
    need = {"run", "arch_id", "lr", "status", metric}
    if not need <= set(trials.columns):
        return pl.DataFrame(schema={"run": pl.String, "arch_id": pl.String, "lrs": pl.UInt32, "lr_min": pl.Float64,
                                    "lr_max": pl.Float64, "best_lr": pl.Float64, "best_loss": pl.Float64,
                                    "lr_sensitivity": pl.Float64})  # fmt: skip
    vocab = pl.col("vocab_size").cast(pl.Float64) if "vocab_size" in trials.columns else pl.lit(None, pl.Float64)
    diverged = (pl.col("status") == "failed") & diverged_run(trials)
    init_loss = vocab.log()
    usable = trials.filter(pl.col("arch_id").is_not_null() & pl.col("lr").is_not_null()).with_columns(
        l0=init_loss, y=pl.when(diverged).then(init_loss).otherwise(pl.col(metric))
    )
    usable = usable.filter(((pl.col("status") == "completed") | diverged) & pl.col("y").is_finite())
    per_lr = usable.group_by("run", "arch_id", "lr").agg(y=pl.col("y").mean(), l0=pl.col("l0").first())
    return (
        per_lr.with_columns(best=pl.col("y").min().over("run", "arch_id"))
        .with_columns(gap=pl.min_horizontal("y", pl.col("l0").fill_null(float("inf"))) - pl.col("best"))
        .group_by("run", "arch_id")
        .agg(
            lrs=pl.len().cast(pl.UInt32),
            lr_min=pl.col("lr").min(),
            lr_max=pl.col("lr").max(),
            best_lr=pl.col("lr").sort_by("y").first(),
            best_loss=pl.col("best").first(),
            lr_sensitivity=pl.when(pl.len() >= 2).then(pl.col("gap").mean()),
        )
        .sort("run", "arch_id")
    )


@dataclass(frozen=True)
class LrOptimum:
    """Where the loss is lowest along log lr, from one architecture's runs (``fit_lr_optimum``).

    ``lr`` is the fitted optimum and ``lo``/``hi`` its Fieller interval at ``level``, all None when
    the runs do not identify it; ``why`` then says why, in words a study's error can quote.
    ``distinct``/``runs``: the learning rates and finished runs the fit saw."""

    lr: float | None
    lo: float | None
    hi: float | None
    distinct: int
    runs: int
    level: float
    why: str | None = None

    @property
    def identified(self) -> bool:
        return self.lr is not None


def fit_lr_optimum(lrs: Sequence[float], losses: Sequence[float], *, level: float = 0.95) -> LrOptimum:
    """The learning rate of lowest loss, from a quadratic in ``ln lr`` fitted by least squares.

    Near its optimum the final loss of a transformer is close to a parabola in log learning rate
    (the "U" of Wortsman et al. 2023, fig. 1; the lr sweeps of Bjorck et al. 2024 fit the same
    form), so ``loss = b0 + b1 x + b2 x^2`` with ``x = ln lr`` has its minimum at
    ``x* = -b1 / (2 b2)``. ``x*`` is a ratio of two estimates, so its interval is Fieller's (the set of
    ``x`` where ``b1 + 2 b2 x = 0`` is not rejected by a t test on ``n - 3`` residual degrees of
    freedom): exact under normal noise, and unbounded -- no estimate -- when the curvature is not
    resolved from the noise, where the delta method would print a finite interval anyway.

    Not identified (``lr`` None, ``why`` set) with fewer than 3 distinct learning rates, with fewer
    than 4 runs (a parabola through 3 points leaves no residual to judge it), when the loss does
    not curve up, when the curvature is within noise (the interval has no bounds), or when the fitted
    optimum or its interval reaches outside the learning rates tried (an optimum at the edge of the
    range is not an estimate: the runs must bracket it, and beyond them the parabola is extrapolated).
    Runs with a non-finite loss or lr are dropped; a diverged run belongs in none of them (it is not
    on the parabola).
    """
    from scipy import stats

    x = np.log(np.asarray(lrs, float))
    y = np.asarray(losses, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    distinct, n = int(np.unique(x).size), int(x.size)

    def refused(why: str) -> LrOptimum:
        return LrOptimum(None, None, None, distinct, n, level, why)

    if distinct < 3:
        return refused(f"the search tried {distinct} learning rate{'s' if distinct != 1 else ''}")
    if n < 4:
        return refused(f"{n} runs at 3 learning rates leave no residual to judge the curve (one more run is needed)")
    centre = float(x.mean())  # centred for conditioning; the optimum is shifted back below
    design = np.column_stack([np.ones(n), x - centre, (x - centre) ** 2])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    dof = n - 3
    # HC3 sandwich covariance: the seed noise of a run grows toward the edge of stability (0.015 nats
    # near the optimum, 0.14 near the largest stable lr, measured here), and the OLS covariance,
    # which assumes one noise level, covered 0.60-0.74 in simulation where HC3 keeps near 0.95
    bread = np.linalg.inv(design.T @ design)
    resid = y - design @ beta
    leverage = np.einsum("ij,jk,ik->i", design, bread, design)
    meat = design.T @ (design * (resid / np.clip(1 - leverage, 1e-6, None))[:, None] ** 2)
    cov = bread @ meat @ bread
    b1, b2 = beta[1], beta[2]
    tried = f"{np.exp(x.min()):.3g}-{np.exp(x.max()):.3g}"
    if b2 <= 0:
        return refused(f"the loss does not curve up over the learning rates tried ({tried})")
    # Fieller: {theta : (a - theta d)^2 <= t^2 (Vaa - 2 theta Vad + theta^2 Vdd)} with a = -b1, d = 2 b2
    t2 = stats.t.ppf(0.5 + level / 2, dof) ** 2
    a, d = -b1, 2 * b2
    vaa, vdd, vad = cov[1, 1], 4 * cov[2, 2], -2 * cov[1, 2]
    qa, qb, qc = d * d - t2 * vdd, -2 * (a * d - t2 * vad), a * a - t2 * vaa
    theta = a / d + centre
    if qa <= 0:
        return refused(f"the curvature over {tried} is within the noise (its interval has no bounds)")
    if not x.min() <= theta <= x.max():
        edge = "above" if theta > x.max() else "below"
        return refused(f"the fitted optimum (lr {np.exp(theta):.3g}) lies {edge} the learning rates tried ({tried})")
    disc = max(qb * qb - 4 * qa * qc, 0.0)
    lo, hi = sorted(((-qb - np.sqrt(disc)) / (2 * qa) + centre, (-qb + np.sqrt(disc)) / (2 * qa) + centre))
    if lo < x.min() or hi > x.max():  # beyond the runs the parabola is an extrapolation: not bracketed
        side = "above" if hi > x.max() else "below"
        return refused(
            f"the optimum's interval (lr {np.exp(lo):.3g}-{np.exp(hi):.3g}) reaches {side} the learning rates "
            f"tried ({tried}): the runs do not bracket it"
        )
    return LrOptimum(float(np.exp(theta)), float(np.exp(lo)), float(np.exp(hi)), distinct, n, level)
