"""Search analysis: per-axis effects, parameter importance, learning curves, best architectures.

Effects convention: for each architecture axis (``ffn_activation``, ``position``, ...) and each of
its values, ``effect = mean(metric | value) - mean(metric | baseline value)`` over completed trials
at equal budget: within one search (one search has one budget), or within one grid point (size
and tokens) of a scaling study. Seeds are replicas: the interval is Welch's t-interval on the two
means (trials, including seed replicas, are the observations), combined over grid points with
Welch-Satterthwaite degrees of freedom. Negative effects on a loss mean the value is better.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from .loaders import ARCH_AXES, PathLike, load_curves, load_trials, open_study
from .runs import NoData

#: Baseline value per axis: a GPT-2-like decoder. Axes not listed use their most common value.
DEFAULT_BASELINES: dict[str, str] = {
    "ffn_activation": "gelu",
    "norm": "layernorm",
    "norm_position": "pre",
    "qk_norm": "false",
    "position": "learned",
    "block": "sequential",
    "ffn_per_block": "1",
    "tie_embeddings": "true",
    "bias": "true",
}


def budget_cell() -> pl.Expr:
    """Which trials share a budget (within a run). A search has one budget, so a search trial
    (null ``group``) is in the run's single cell. In a scaling study (``group`` set) a cell is a
    grid point: ``params`` and ``target_tokens`` equal to within 0.05 decades (~12%), so
    families are compared at the same size and training length, never across sizes."""
    size = (pl.col("params").cast(pl.Float64).log10() * 20).round(0).cast(pl.Int64).cast(pl.String)
    tokens = (pl.col("target_tokens").cast(pl.Float64).log10() * 20).round(0).cast(pl.Int64).cast(pl.String)
    return (
        pl.when(pl.col("group").is_null())
        .then(pl.lit("search"))
        .otherwise(pl.concat_str([pl.lit("N"), size.fill_null("?"), pl.lit("D"), tokens.fill_null("?")]))
    )


def axis_effects(
    trials: pl.DataFrame | pl.LazyFrame,
    *,
    metric: str = "eval_loss",
    axes: Sequence[str] | None = None,
    baselines: Mapping[str, str] | None = None,
    by: Sequence[str] = ("run",),
    level: float = 0.95,
) -> pl.DataFrame:
    """Difference of ``metric`` from the baseline value of every axis, at equal budget.

    Within each budget cell (``budget_cell``) of each ``by`` group, ``d = mean(value) -
    mean(baseline)``; cells are combined weighted by the value's trial count, and the interval is
    a t-interval with Welch-Satterthwaite degrees of freedom (exactly Welch's interval when there
    is one cell, as in a search). Seeds are replicas: every completed trial is an observation.
    Without replicas (one run per grid point, common in studies) the interval is a paired
    t-interval over the cells' differences instead.
    Only completed trials with a finite metric count; an axis is compared only in cells where it
    takes 2+ values and the baseline is present. Returns one row per (``by``..., axis, value):
    ``n, mean, std, baseline, effect, lo, hi, cells`` (the baseline's own row has effect 0 and
    shows its own noise). Values are compared as lower-case strings (``"true"``, ``"64"``).
    """
    from scipy import stats

    lf = trials.lazy() if isinstance(trials, pl.DataFrame) else trials
    schema = lf.collect_schema()
    axes = [a for a in (axes or ARCH_AXES) if a in schema]
    by = [c for c in by if c in schema]
    baselines = {**DEFAULT_BASELINES, **(baselines or {})}
    empty = pl.DataFrame(
        schema={**{c: pl.String for c in by}, "axis": pl.String, "value": pl.String, "n": pl.UInt32, "mean": pl.Float64,
                "std": pl.Float64, "baseline": pl.String, "effect": pl.Float64, "lo": pl.Float64, "hi": pl.Float64,
                "cells": pl.UInt32}
    )  # fmt: skip
    if not axes or metric not in schema:
        return empty
    for name, dtype in (("group", pl.String), ("params", pl.Int64), ("target_tokens", pl.Int64)):
        if name not in schema:
            lf = lf.with_columns(pl.lit(None, dtype).alias(name))
    keys = [*by, "cell", "axis"]
    long = (
        lf.filter((pl.col("status") == "completed") & pl.col(metric).is_not_null() & pl.col(metric).is_finite())
        .with_columns(cell=budget_cell())
        .select(*by, "cell", metric, *[pl.col(a).cast(pl.String).str.to_lowercase() for a in axes])
        .unpivot(index=[*by, "cell", metric], on=axes, variable_name="axis", value_name="value")
        .drop_nulls("value")
    )
    per_cell = (
        long.group_by(*keys, "value")
        .agg(n=pl.len(), mean=pl.col(metric).mean(), var=pl.col(metric).var().fill_null(0.0))
        .filter(pl.col("value").n_unique().over(keys) > 1)
    )
    # the baseline of an axis: the preferred value when present, else the most common (ties: smallest)
    preferred = pl.col("axis").replace_strict(baselines, default=None)
    baseline_of = (
        long.filter(pl.col("value").n_unique().over(keys) > 1)
        .group_by(*by, "axis", "value")
        .agg(count=pl.len())
        .with_columns(is_preferred=pl.col("value") == preferred)
        .sort(
            [*by, "axis", "is_preferred", "count", "value"], descending=[False] * len(by) + [False, True, True, False]
        )
        .group_by(*by, "axis", maintain_order=True)
        .first()
        .select(*by, "axis", baseline="value")
    )
    base_stats = per_cell.join(baseline_of, on=[*by, "axis"]).filter(pl.col("value") == pl.col("baseline"))
    cells = per_cell.join(
        base_stats.select(*keys, "baseline", base_n="n", base_mean="mean", base_var="var"), on=keys, how="inner"
    )
    weight = pl.col("n") / pl.col("n").sum().over(*by, "axis", "value")
    var_a = weight**2 * pl.col("var") / pl.col("n")  # variance components of the weighted difference
    var_b = weight**2 * pl.col("base_var") / pl.col("base_n")
    dof_part = pl.when(pl.col("n") > 1).then(var_a**2 / (pl.col("n") - 1)).otherwise(0.0) + pl.when(
        pl.col("base_n") > 1
    ).then(var_b**2 / (pl.col("base_n") - 1)).otherwise(0.0)
    df = (
        cells.with_columns(w=weight, va=var_a, vb=var_b, dof_part=dof_part, d=pl.col("mean") - pl.col("base_mean"))
        .group_by(*by, "axis", "value", "baseline")
        .agg(
            n=pl.col("n").sum(),
            mean=(pl.col("w") * pl.col("mean")).sum(),
            std=((pl.col("var") * (pl.col("n") - 1)).sum() / (pl.col("n").sum() - pl.len()).clip(lower_bound=1)).sqrt(),
            effect=(pl.col("w") * pl.col("d")).sum(),
            variance=(pl.col("va") + pl.col("vb")).sum(),
            dof_denominator=pl.col("dof_part").sum(),
            cells=pl.len(),
            d_var=pl.col("d").var(),
        )
        .collect()
    )
    if df.height == 0:
        return empty
    variance = df["variance"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        dof = variance**2 / df["dof_denominator"].to_numpy()
    # no replicas within cells (one run per grid point): a paired t-interval over the cells
    cells_n = df["cells"].to_numpy().astype(float)
    paired = (variance == 0) & (cells_n >= 2)
    d_var = df["d_var"].fill_null(0.0).to_numpy()
    variance = np.where(paired, d_var / cells_n, variance)
    dof = np.where(paired, cells_n - 1, dof)
    t = stats.t.ppf(0.5 + level / 2.0, np.where(np.isfinite(dof) & (dof > 0), dof, np.nan))
    half = np.where(variance > 0, t * np.sqrt(variance), np.nan)
    return (
        df.with_columns(half=pl.Series(half).fill_nan(None))
        .with_columns(lo=pl.col("effect") - pl.col("half"), hi=pl.col("effect") + pl.col("half"))
        .select(
            *by,
            "axis",
            "value",
            pl.col("n").cast(pl.UInt32),
            "mean",
            "std",
            "baseline",
            "effect",
            "lo",
            "hi",
            pl.col("cells").cast(pl.UInt32),
        )
        .sort([*by, "axis", "effect"])
    )


def best_architectures(
    trials: pl.DataFrame | pl.LazyFrame, *, metric: str = "eval_loss", top: int = 10
) -> pl.DataFrame:
    """The ``top`` architectures (``arch_id``) of each run by mean ``metric`` over their
    completed seeds (runs are not ranked against each other: their budgets differ).

    Columns: ``run, arch_id, label, n_seeds, mean, std, params, flops_per_token, tokens_per_s``.
    """
    lf = trials.lazy() if isinstance(trials, pl.DataFrame) else trials
    return (
        lf.filter((pl.col("status") == "completed") & pl.col(metric).is_not_null())
        .group_by("run", "arch_id")
        .agg(
            label=pl.col("label").first(),
            n_seeds=pl.col("seed").n_unique(),
            mean=pl.col(metric).mean(),
            std=pl.col(metric).std(),
            params=pl.col("params").first(),
            flops_per_token=pl.col("flops_per_token").first(),
            tokens_per_s=pl.col("tokens_per_s").mean(),
        )
        .sort("run", "mean", "arch_id")
        .group_by("run", maintain_order=True)
        .head(top)
        .collect()
    )


def _importance_from_trials(trials: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Share of the metric's variance explained by each axis alone (eta squared): a fallback
    when the Optuna study is missing or too small for optuna.importance."""
    done = trials.filter((pl.col("status") == "completed") & pl.col(metric).is_not_null())
    axes = [a for a in ARCH_AXES if a in done.columns]
    if done.height < 3 or not axes:
        return pl.DataFrame(schema={"param": pl.String, "importance": pl.Float64, "method": pl.String})
    long = done.select(metric, *[pl.col(a).cast(pl.String) for a in axes]).unpivot(
        index=metric, on=axes, variable_name="param", value_name="value"
    )
    total = done[metric].var(ddof=0) or 1.0
    grand = done[metric].mean()
    return (
        long.group_by("param", "value")
        .agg(n=pl.len(), mean=pl.col(metric).mean())
        .group_by("param")
        .agg(between=((pl.col("mean") - grand) ** 2 * pl.col("n")).sum() / pl.col("n").sum())
        .select("param", importance=pl.col("between") / total, method=pl.lit("eta²"))
        .filter(pl.col("importance") > 0)
        .sort("importance", descending=True)
    )


def parameter_importance(dir: PathLike, *, metric: str = "eval_loss", min_trials: int = 8) -> pl.DataFrame:
    """Hyperparameter importance for the search in ``dir``.

    Uses ``optuna.importance`` with ``PedAnovaImportanceEvaluator`` on the study's first objective
    when the study opens and has at least ``min_trials`` completed trials; otherwise (no storage,
    too few trials, a single-valued space, or any error) falls back to the variance each axis
    explains in ``trials.parquet`` (``method = "eta²"``). Columns: ``param, importance, method``.
    """
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = open_study(dir)
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(complete) < min_trials:
            raise ValueError("too few completed trials")
        target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
        scores = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), target=target
        )
        if not scores or not np.isfinite(sum(scores.values())):
            raise ValueError("no importances")
        return pl.DataFrame(
            {"param": list(scores), "importance": [float(v) for v in scores.values()], "method": "ped-anova"}
        ).sort("importance", descending=True)
    except Exception:  # any failure of the study path means: use the trials table instead
        return _importance_from_trials(load_trials(dir).collect(), metric)


def learning_curves(
    curves: pl.LazyFrame | pl.DataFrame, *, max_points: int = 100, columns: Sequence[str] | None = None
) -> pl.LazyFrame:
    """Curves downsampled to at most ``max_points`` evaluations per trial (evenly by rank in
    tokens, always keeping each trial's first and last evaluation), so charts never embed millions
    of rows. ``columns`` keeps only those columns (plus ``run, trial_id, tokens``)."""
    lf = curves.lazy() if isinstance(curves, pl.DataFrame) else curves
    key = ["run", "trial_id"]
    if columns is not None:
        lf = lf.select(*dict.fromkeys([*key, "tokens", *columns]))
    rank = pl.col("tokens").rank("ordinal").over(key) - 1
    count = pl.len().over(key)
    stride = ((count - 1) // max(1, max_points - 1)).clip(lower_bound=1)
    return lf.filter(pl.col("tokens").is_not_null()).filter((rank % stride == 0) | (rank == count - 1))


def best_curves(
    dirs: PathLike | Sequence[PathLike], *, y: str = "eval_loss", max_trials: int = 30, max_points: int = 100
) -> pl.DataFrame:
    """Learning curves (``run, trial_id, tokens, label, y``) of the ``max_trials`` trials with the
    lowest final eval loss (failed trials excluded), each downsampled by ``learning_curves``.
    Raises ``NoData`` when there are none or ``curves.parquet`` has no column ``y``."""
    trials = load_trials(dirs).filter(pl.col("status") != "failed").collect()
    best = trials.sort(pl.col("eval_loss"), nulls_last=True).head(max_trials).select("run", "trial_id", "label")
    curves = load_curves(dirs)
    if y not in curves.collect_schema():
        raise NoData(f"curves.parquet has no column {y!r}")
    out = (
        curves.join(best.lazy(), on=["run", "trial_id"])  # the best trials first, then downsample
        .pipe(learning_curves, max_points=max_points, columns=list(dict.fromkeys(["label", y])))
        .collect()
    )
    if out.height == 0:
        raise NoData(
            "no learning curves of known trials (curves.parquet missing or empty, or trials.parquet not written yet)"
        )
    return out
