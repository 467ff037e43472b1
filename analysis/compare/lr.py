"""Learning-rate sensitivity of each architecture over the learning rates a search tried for it."""

from __future__ import annotations

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
