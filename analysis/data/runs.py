"""The runs an analysis starts from: completed trials with a finite loss, and the series each
belongs to. Every analysis function accepts results directories or an already-loaded frame."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from .loaders import PathLike, load_trials

#: Results directories, or a trials frame already loaded from them.
Source = PathLike | Sequence[PathLike] | pl.DataFrame


class NoData(ValueError):
    """Raised when results hold nothing to analyse or draw for a question (the message says why)."""


def completed(source: Source, loss: str = "eval_loss") -> pl.DataFrame:
    """Completed trials with a finite ``loss``, collected (from directories or a trials frame)."""
    if isinstance(source, pl.DataFrame):
        return source.filter((pl.col("status") == "completed") & pl.col(loss).is_finite())
    return load_trials(source, status="completed").filter(pl.col(loss).is_finite()).collect()


def diverged_run(trials: pl.DataFrame) -> pl.Expr:
    """True for a trial whose training diverged: the trainer's typed outcome (``run_status``, a
    ``spaces.outcome.RunStatus`` value). Results written before that column existed (or rows whose
    run never reported one) fall back to the error text the trainer wrote for the same outcome,
    "diverged: <reason>"."""
    typed = pl.col("run_status") == "diverged" if "run_status" in trials.columns else pl.lit(None, pl.Boolean)
    text = pl.col("error").cast(pl.String).str.starts_with("diverged") if "error" in trials.columns else pl.lit(False)
    return pl.coalesce(typed, text.fill_null(False))


def at_transferred_lr(runs: pl.DataFrame) -> pl.DataFrame:
    """The runs of a study's lr sweep (``lr_factor``) at the lr the study transferred or was given
    (factor 1), and every run that was not swept: a scaling law is fitted at one lr rule, never over
    the deliberately detuned points of the check (``compare.lr.lr_sweep_summary`` reads those)."""
    if "lr_factor" not in runs.columns:
        return runs
    return runs.filter(pl.col("lr_factor").is_null() | (pl.col("lr_factor") == 1.0))


def series_column(runs: pl.DataFrame) -> pl.DataFrame:
    """Add ``series``: the scaling-study ``group``, else the run name (one series per search)."""
    if "group" in runs.columns and runs["group"].drop_nulls().len():
        return runs.with_columns(series=pl.coalesce(pl.col("group"), pl.col("run")))
    return runs.with_columns(series=pl.col("run"))
