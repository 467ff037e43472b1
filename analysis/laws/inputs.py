"""The inputs of a law: the columns it reads, clean runs, design units, compute budgets, the FLOP model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from .intervals import design_units


def clean(*arrays: Any) -> list[np.ndarray]:
    """The arrays as flat floats, keeping only the runs where every value is finite and positive."""
    cols = [np.asarray(a, float).ravel() for a in arrays]
    ok = np.logical_and.reduce([np.isfinite(c) & (c > 0) for c in cols])
    return [c[ok] for c in cols]


def compute_budgets(compute: Any, *, gap_decades: float = 0.02) -> np.ndarray:
    """Group runs into compute budgets: sorted ``log10 C`` split wherever the gap exceeds
    ``gap_decades`` (default 0.02 decades, ~5%). Returns a budget index per run (0 = smallest)."""
    log_c = np.log10(np.asarray(compute, float))
    order = np.argsort(log_c, kind="stable")
    new_budget = np.concatenate([[0], (np.diff(log_c[order]) > gap_decades).astype(int)])
    budget = np.empty_like(order)
    budget[order] = np.cumsum(new_budget)
    return budget


@dataclass(frozen=True)
class FlopsModel:
    """Training FLOPs per token as ``c * N**gamma`` (``c=6, gamma=1`` is the ``6N`` rule)."""

    c: float = 6.0
    gamma: float = 1.0

    @classmethod
    def fit(cls, params: np.ndarray, flops_per_token: np.ndarray) -> FlopsModel:
        """Least squares in log-log on the counted ``flops_per_token`` of the runs."""
        log_n, log_f = np.log(np.asarray(params, float)), np.log(np.asarray(flops_per_token, float))
        if np.unique(log_n).size < 2:
            return cls(c=float(np.exp(np.mean(log_f - log_n))), gamma=1.0)
        gamma, log_c = np.polyfit(log_n, log_f, 1)
        return cls(c=float(np.exp(log_c)), gamma=float(gamma))

    def tokens(self, compute: np.ndarray, params: np.ndarray) -> np.ndarray:
        return np.asarray(compute, float) / (self.c * np.asarray(params, float) ** self.gamma)


def unit_keys(frame: pl.DataFrame, inputs: Sequence[str]) -> np.ndarray:
    """The design unit of each run of ``frame``: its planned grid point (``planned_size`` and
    ``target_tokens``) when the frame records one for every run, else the distinct values of the
    fit's ``inputs`` (so the seeds of one size share a unit either way)."""
    planned = [c for c in ("planned_size", "target_tokens") if c in frame.columns]
    if "planned_size" in planned and frame.height and frame.select(pl.col(planned).is_not_null().all()).row(0)[0]:
        cols = planned
    else:
        cols = list(inputs)
    return design_units(*(frame[c].to_numpy() for c in cols))


@dataclass(frozen=True)
class Columns:
    """Which columns of a runs table a law reads: the power law's ``x``, Chinchilla's ``n`` and
    ``d``, the ``loss`` and the training ``compute``."""

    x: str = "compute"
    n: str = "params"
    d: str = "tokens"
    loss: str = "eval_loss"
    compute: str = "compute"


#: The columns of a results directory's trials.
DEFAULT_COLUMNS = Columns()


@dataclass(frozen=True)
class Simulated:
    """Runs drawn from a known truth: the table, how to read it, the true parameters per series
    (those the runs should recover) and an input to predict at."""

    runs: pl.DataFrame
    by: str
    columns: Columns
    truth: dict[str, dict[str, float]]
    at: float
