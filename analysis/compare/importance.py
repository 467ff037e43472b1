"""Which searched parameters matter: Optuna's importance of each parameter for the loss."""

from __future__ import annotations

import numpy as np
import polars as pl

from archscale.analysis.data.loaders import ARCH_AXES, PathLike, load_trials, open_study


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
