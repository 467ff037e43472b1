"""Fits over the runs of a table: one law per family (``fit_groups``), design units, leave-largest-out.

A fit that is not identified (``LawFit.identified``) is returned as such; ``compare.law_ranking``
ranks and compares only identified fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import polars as pl

from .inputs import clean, compute_budgets, unit_keys
from .objective import NotIdentified
from .record import LawFit
from .registry import LAWS, Columns

Law = Literal["power", "chinchilla"]


def leave_largest_out(
    law: Law,
    inputs: Sequence[Any],
    loss: Any,
    compute: Any,
    *,
    gap_decades: float = 0.02,
    **fit_kwargs: Any,
) -> dict[str, Any]:
    """Fit without the largest compute budget and report the error predicting its runs.

    ``inputs`` is ``(x,)`` for a power law or ``(N, D)`` for Chinchilla. The held-out budget is
    the top group of ``compute_budgets``. Errors are in loss units (nats/token) and relative.
    """
    *xs, loss, compute = clean(*inputs, loss, compute)
    budget = compute_budgets(compute, gap_decades=gap_decades)
    held = budget == budget.max()
    fit_arrays = LAWS[law].fit_arrays
    assert fit_arrays is not None, f"{law} is not fitted from arrays"
    fitted = fit_arrays(tuple(x[~held] for x in xs), loss[~held], **fit_kwargs)
    if not fitted.identified:
        raise NotIdentified(f"without the largest budget the fit is {fitted.not_identified}")
    err = fitted.predict(*(x[held] for x in xs)) - loss[held]
    return {
        "held_out_compute": float(np.exp(np.mean(np.log(compute[held])))),
        "n_held_out": int(held.sum()),
        "n_fit": int((~held).sum()),
        "mean_error": float(np.mean(err)),
        "mean_abs_error": float(np.mean(np.abs(err))),
        "mean_rel_error": float(np.mean(np.abs(err) / loss[held])),
        "max_rel_error": float(np.max(np.abs(err) / loss[held])),
        "params": fitted.params,
    }


def fit_groups(
    frame: pl.DataFrame,
    *,
    by: str = "group",
    law: Law = "power",
    x: str = "compute",
    n_col: str = "params",
    d_col: str = "tokens",
    loss_col: str = "eval_loss",
    bootstrap: int = 0,
    seed: int = 0,
    min_runs: int | None = None,
) -> dict[str, LawFit]:
    """One fit per value of ``by`` (e.g. ``group`` in a scaling study, or ``label``), with the
    runs' design units (``unit_keys``) for the intervals.

    Groups with too few runs for the law (3 for a power law, 5 for Chinchilla) or whose design
    cannot identify it (``NotIdentified``) are skipped; fits that are not identified are returned
    with ``identified`` False (the caller decides how to show them).
    """
    entry = LAWS[law]
    assert entry.fit_arrays is not None, f"{law} is not fitted from arrays"
    min_runs = min_runs or entry.min_runs
    cols = list(entry.inputs(Columns(x=x, n=n_col, d=d_col)))
    fits: dict[str, LawFit] = {}
    for (name,), part in frame.drop_nulls([by, loss_col, *cols]).group_by(by, maintain_order=True):
        if part.height < min_runs:
            continue
        loss, units = part[loss_col].to_numpy(), unit_keys(part, cols)
        inputs = tuple(part[c].to_numpy() for c in cols)
        try:
            fits[str(name)] = entry.fit_arrays(
                inputs, loss, names=tuple(cols), units=units, bootstrap=bootstrap, seed=seed
            )
        except NotIdentified:
            continue
    return fits
