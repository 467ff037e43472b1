"""The best architectures of a search and their learning curves."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from archscale.analysis.data.loaders import PathLike, load_curves, load_trials
from archscale.analysis.data.runs import NoData


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
