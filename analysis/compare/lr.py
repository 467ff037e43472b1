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


def lr_sweep_summary(trials: pl.DataFrame, *, metric: str = "eval_loss", level: float = 0.95) -> pl.DataFrame:
    """Was the study's lr (factor 1 of its ``lr_sweep``) the best at every size? One row per
    ``(run, group, planned_size)`` of the swept completed runs.

    ``best_factor`` is the factor of lowest seed-mean loss; ``diff`` = its mean loss minus factor
    1's, paired by seed (a study's factors of one family share its seeds), with a t interval on the
    seed pairs at ``level`` Bonferroni-corrected for the ``factors - 1`` comparisons the best was
    picked from (the winner of several is selected: uncorrected it would look better than it is).
    ``verdict``: "factor 1 is the best tried", "factor f is better (resolved)", "within noise", or
    "one seed: no noise estimate; run 2 more seeds". ``optimum_factor`` (``lo``, ``hi``) is the
    parabola's optimum over all the size's runs (``fit_lr_optimum``) relative to the study's lr --
    the drift of the optimum with size is what a transfer rule must keep at 1 -- or null with
    ``optimum_why``.
    """
    from scipy import stats

    need = {"lr_factor", "lr", "group", "seed", "status", metric}
    columns = {"run": pl.String, "group": pl.String, "planned_size": pl.Float64, "factors": pl.Int64,
               "seeds": pl.Int64, "best_factor": pl.Float64, "loss_at_1": pl.Float64, "diff": pl.Float64,
               "diff_lo": pl.Float64, "diff_hi": pl.Float64, "verdict": pl.String, "optimum_factor": pl.Float64,
               "optimum_lo": pl.Float64, "optimum_hi": pl.Float64, "optimum_why": pl.String}  # fmt: skip
    if not need <= set(trials.columns):
        return pl.DataFrame(schema=columns)
    swept = trials.filter(
        (pl.col("status") == "completed") & pl.col("lr_factor").is_not_null() & pl.col(metric).is_finite()
    )
    for name, dtype in (("run", pl.String), ("planned_size", pl.Float64)):
        if name not in swept.columns:
            swept = swept.with_columns(pl.lit(None, dtype).alias(name))
    rows = []
    for (run, group, size), cell in swept.group_by("run", "group", "planned_size", maintain_order=True):
        means = cell.group_by("lr_factor").agg(pl.col(metric).mean().alias("m")).sort("m")
        best = float(means["lr_factor"][0])
        at_1 = cell.filter(pl.col("lr_factor") == 1.0)
        row = {"run": run, "group": group, "planned_size": size, "factors": means.height,
               "seeds": int(cell["seed"].n_unique()), "best_factor": best,
               "loss_at_1": float(at_1[metric].mean()) if at_1.height else None}  # fmt: skip
        if not at_1.height:
            row["verdict"] = "factor 1 did not complete: nothing to compare"
        elif best == 1.0:
            row["verdict"] = "factor 1 is the best tried"
        else:
            pairs = cell.filter(pl.col("lr_factor") == best).join(at_1, on="seed", suffix="_1")
            d = (pairs[metric] - pairs[f"{metric}_1"]).to_numpy()
            row["diff"] = float(d.mean()) if d.size else None
            if d.size < 2:
                row["verdict"] = "one seed: no noise estimate; run 2 more seeds"
            else:
                alpha = (1 - level) / max(means.height - 1, 1)
                half = float(stats.t.ppf(1 - alpha / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
                row.update(diff_lo=row["diff"] - half, diff_hi=row["diff"] + half)
                row["verdict"] = f"factor {best:g} is better (resolved)" if row["diff_hi"] < 0 else "within noise"
        fit = fit_lr_optimum(cell["lr_factor"].to_list(), cell[metric].to_list(), level=level)
        if fit.identified:
            row.update(optimum_factor=fit.lr, optimum_lo=fit.lo, optimum_hi=fit.hi)
        else:
            row["optimum_why"] = fit.why
        rows.append(row)
    return pl.DataFrame(rows, schema=columns).sort("run", "group", "planned_size", nulls_last=True)
