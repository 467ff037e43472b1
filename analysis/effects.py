"""Search analysis: per-axis effects, parameter importance, learning curves, best architectures.

Effects convention: for each architecture axis (``ffn_activation``, ``position``, ...) and each of
its values, ``effect = mean(metric | value) - mean(metric | baseline value)`` over completed trials
of the same run (so at equal budget: one search has one budget). Seeds are replicas: the interval
is Welch's t-interval on the two means (trials, including seed replicas, are the observations).
Negative effects on a loss mean the value is better than the baseline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from .loaders import ARCH_AXES, PathLike, load_trials, open_study

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


def axis_effects(
    trials: pl.DataFrame | pl.LazyFrame,
    *,
    metric: str = "eval_loss",
    axes: Sequence[str] | None = None,
    baselines: Mapping[str, str] | None = None,
    by: Sequence[str] = ("run",),
    level: float = 0.95,
) -> pl.DataFrame:
    """Difference of ``metric`` from the baseline value of every axis, with Welch intervals.

    Only completed trials with a non-null metric are used; axes with a single value are skipped.
    Returns one row per (``by``..., axis, value): ``n, mean, std, baseline, effect, lo, hi``
    (the baseline's own row has effect 0). Values are compared as strings (``"true"``, ``"64"``).
    """
    from scipy import stats

    lf = trials.lazy() if isinstance(trials, pl.DataFrame) else trials
    schema = lf.collect_schema()
    axes = [a for a in (axes or ARCH_AXES) if a in schema]
    by = [c for c in by if c in schema]
    baselines = {**DEFAULT_BASELINES, **(baselines or {})}
    empty = pl.DataFrame(
        schema={**{c: pl.String for c in by}, "axis": pl.String, "value": pl.String, "n": pl.UInt32, "mean": pl.Float64,
                "std": pl.Float64, "baseline": pl.String, "effect": pl.Float64, "lo": pl.Float64, "hi": pl.Float64}
    )  # fmt: skip
    if not axes or metric not in schema:
        return empty
    long = (
        lf.filter((pl.col("status") == "completed") & pl.col(metric).is_not_null() & pl.col(metric).is_finite())
        .select(*by, metric, *[pl.col(a).cast(pl.String).str.to_lowercase() for a in axes])
        .unpivot(index=[*by, metric], on=axes, variable_name="axis", value_name="value")
        .drop_nulls("value")
    )
    stats_lf = long.group_by(*by, "axis", "value").agg(
        n=pl.len(), mean=pl.col(metric).mean(), std=pl.col(metric).std()
    )
    n_values = pl.col("value").n_unique().over(*by, "axis")
    preferred = pl.col("axis").replace_strict(baselines, default=None)
    # baseline: the preferred value when present, else the most common value (ties: smallest)
    baseline_of = (
        stats_lf.filter(n_values > 1)
        .with_columns(is_preferred=pl.col("value") == preferred)
        .sort([*by, "axis", "is_preferred", "n", "value"], descending=[False] * len(by) + [False, True, True, False])
        .group_by(*by, "axis", maintain_order=True)
        .first()
        .select(*by, "axis", baseline="value", base_n="n", base_mean="mean", base_std="std")
    )
    df = stats_lf.join(baseline_of, on=[*by, "axis"], how="inner").collect()
    if df.height == 0:
        return empty
    var_a = df["std"].fill_null(0.0).to_numpy() ** 2 / df["n"].to_numpy()
    var_b = df["base_std"].fill_null(0.0).to_numpy() ** 2 / df["base_n"].to_numpy()
    se = np.sqrt(var_a + var_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        dof = (var_a + var_b) ** 2 / (
            np.where(df["n"].to_numpy() > 1, var_a**2 / (df["n"].to_numpy() - 1), 0.0)
            + np.where(df["base_n"].to_numpy() > 1, var_b**2 / (df["base_n"].to_numpy() - 1), 0.0)
        )
    t = stats.t.ppf(0.5 + level / 2.0, np.where(np.isfinite(dof) & (dof > 0), dof, np.nan))
    half = np.where(se > 0, t * se, np.nan)
    effect = df["mean"] - df["base_mean"]
    return (
        df.with_columns(effect=effect, half=pl.Series(half).fill_nan(None))
        .with_columns(lo=pl.col("effect") - pl.col("half"), hi=pl.col("effect") + pl.col("half"))
        .select(*by, "axis", "value", "n", "mean", "std", "baseline", "effect", "lo", "hi")
        .sort([*by, "axis", "effect"])
    )


def best_architectures(
    trials: pl.DataFrame | pl.LazyFrame, *, metric: str = "eval_loss", top: int = 10
) -> pl.DataFrame:
    """The ``top`` architectures (``arch_id``) by mean ``metric`` over their completed seeds.

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
        .sort("mean", "arch_id")
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


def describe_run(run: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of ``run.json`` a reader wants first (never the storage URL)."""
    keep = ("kind", "study_name", "objectives", "budget", "space", "args", "versions", "git_revision", "hardware")
    return {k: run[k] for k in keep if k in run}
