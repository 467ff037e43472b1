"""Scaling-law fits with bootstrap uncertainty: the public face of the ``fits_*`` modules.

Laws (natural logarithms throughout; losses in nats/token), one module each:

* ``fits_power``: the power law ``L(x) = E + A * x**(-alpha)`` (``fit_power_law``).
* ``fits_chinchilla``: Chinchilla Approach 3 ``L(N, D) = E + A / N**alpha + B / D**beta``
  (``fit_chinchilla``), the compute-optimal allocation and the design check.
* ``fits_isoflop``: Chinchilla Approach 2, isoFLOP parabolas (``fit_isoflop``).
* ``fits_common``: the Huber/L-BFGS-B machinery they share, Hoffmann et al.'s grid of starts,
  the bootstrap, percentile intervals, ``FlopsModel`` and the ``LawFit`` record.

* ``fits_profile``: the linear-in-coefficients view of both laws: the variable-projection grid
  and likelihood-ratio intervals (threshold calibrated by a parametric bootstrap for the power law).
* ``fits_record``: the tail both Huber-fitted laws share, from an optimum to its ``LawFit``.

This module adds what works across laws: ``fit_groups`` (one fit per family), ``unit_keys``
(the design unit of each run), ``leave_largest_out``, ``rank_architectures`` and
``effective_compute_multiplier``. They use a fit only through ``LawFit.loss_at`` /
``LawFit.at_for_loss``, so a new law plugs in unchanged; a fit that is not identified
(``LawFit.identified``) is never ranked nor compared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import polars as pl

from .fits_chinchilla import ChinchillaFit, chinchilla_loss, design_problems, fit_chinchilla
from .fits_common import (
    HUBER_DELTA,
    FlopsModel,
    LawFit,
    NotIdentified,
    clean,
    compute_budgets,
    design_units,
    percentile_interval,
)
from .fits_isoflop import IsoFlopFit, fit_isoflop
from .fits_power import PowerLawFit, fit_power_law

__all__ = [
    "HUBER_DELTA",
    "ChinchillaFit",
    "FlopsModel",
    "IsoFlopFit",
    "LawFit",
    "PowerLawFit",
    "chinchilla_loss",
    "NotIdentified",
    "compute_budgets",
    "design_problems",
    "design_units",
    "effective_compute_multiplier",
    "fit_chinchilla",
    "fit_groups",
    "fit_isoflop",
    "fit_power_law",
    "leave_largest_out",
    "rank_architectures",
    "unit_keys",
]

Law = Literal["power", "chinchilla"]
#: Fewest runs ``fit_groups`` fits a family on, per law.
MIN_RUNS: dict[str, int] = {"power": 3, "chinchilla": 5}


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
    fit_fn: Callable[..., LawFit] = fit_power_law if law == "power" else fit_chinchilla
    fitted = fit_fn(*(x[~held] for x in xs), loss[~held], **fit_kwargs)
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
    min_runs = min_runs or MIN_RUNS[law]
    cols = [x] if law == "power" else [n_col, d_col]
    fits: dict[str, LawFit] = {}
    for (name,), part in frame.drop_nulls([by, loss_col, *cols]).group_by(by, maintain_order=True):
        if part.height < min_runs:
            continue
        loss, units = part[loss_col].to_numpy(), unit_keys(part, cols)
        try:
            if law == "power":
                fits[str(name)] = fit_power_law(
                    part[x].to_numpy(), loss, x_name=x, bootstrap=bootstrap, seed=seed, units=units
                )
            else:
                n, d = part[n_col].to_numpy(), part[d_col].to_numpy()
                fits[str(name)] = fit_chinchilla(
                    n, d, loss, bootstrap=bootstrap, seed=seed, inputs=(n_col, d_col), units=units
                )
        except NotIdentified:
            continue
    return fits


def _loss_samples(fit: LawFit, at: float, flops: FlopsModel | None) -> tuple[float, np.ndarray]:
    """The fit's loss at ``at`` and the same at each of its samples (bootstrap refits or points of
    its likelihood-ratio set)."""
    point = float(fit.loss_at(at, flops=flops)[0, 0])
    with np.errstate(all="ignore"):
        samples = fit.loss_at(at, fit.samples, flops)[:, 0] if len(fit.samples) else np.empty(0)
    return point, samples


def rankable(fits: Mapping[str, LawFit], *, at: float, flops: FlopsModel | None = None) -> dict[str, str]:
    """``{name: why}`` for the fits ``rank_architectures`` leaves out: not identified, or with an
    interval at ``at`` that the runs do not bound (empty: all are ranked)."""
    out = {}
    for name, fit in fits.items():
        if not fit.identified:
            out[name] = fit.not_identified
            continue
        if fit.interval == "unavailable":
            out[name] = fit.interval_note
            continue
        _, samples = _loss_samples(fit, at, flops)
        if samples.size:
            lo, hi = fit.interval_of(samples[:, None])
            if not (np.isfinite(lo[0]) and np.isfinite(hi[0])):
                out[name] = f"its predicted loss at {at:.3g} has an interval the runs do not bound"
    return out


def rank_architectures(
    fits: Mapping[str, LawFit], *, at: float, flops: FlopsModel | None = None, level: float = 0.95
) -> pl.DataFrame:
    """Architectures ranked by predicted loss at ``at`` (lowest first), with intervals.

    ``at`` is the x of the power laws (a compute or a size), or a compute for Chinchilla fits
    (loss at the compute-optimal allocation). Only identified fits whose prediction is bounded are
    ranked (``rankable`` says why others are not). Columns: ``rank, name, predicted_loss, lo, hi,
    interval, n_runs, at``. ``level`` applies to bootstrap intervals.
    """
    skip = rankable(fits, at=at, flops=flops)
    rows: dict[str, list[Any]] = {"name": [], "predicted_loss": [], "lo": [], "hi": [], "interval": [], "n_runs": []}
    for name, fit in fits.items():
        if name in skip:
            continue
        point, samples = _loss_samples(fit, at, flops)
        if not samples.size:
            lo, hi = [np.nan], [np.nan]
        elif fit.interval == "bootstrap":
            lo, hi = percentile_interval(samples[:, None], level)
        else:
            lo, hi = fit.interval_of(samples[:, None])
        rows["name"].append(name)
        rows["predicted_loss"].append(point)
        rows["lo"].append(float(lo[0]))
        rows["hi"].append(float(hi[0]))
        rows["interval"].append(fit.interval)
        rows["n_runs"].append(fit.n_runs)
    schema = {
        "name": pl.String,
        "predicted_loss": pl.Float64,
        "lo": pl.Float64,
        "hi": pl.Float64,
        "interval": pl.String,
        "n_runs": pl.Int64,
    }
    return (
        pl.DataFrame(rows, schema=schema)
        .with_columns(pl.col("lo", "hi").fill_nan(None))
        .sort("predicted_loss")
        .with_row_index("rank", offset=1)
        .with_columns(at=pl.lit(float(at)))
    )


def effective_compute_multiplier(
    baseline: LawFit, variant: LawFit, *, at: float, flops: FlopsModel | None = None, level: float = 0.95
) -> dict[str, float]:
    """How much more compute the baseline needs to reach the variant's loss at compute ``at``.

    Both fits must be identified (else ``NotIdentified``) power laws in compute (``x = compute``)
    or Chinchilla fits (loss at the compute-optimal allocation). ``multiplier > 1`` means the
    variant is better. The interval pairs the i-th bootstrap refit of each fit, so it exists only
    when both fits have bootstrap refits (likelihood-ratio sets of two fits do not pair). ``inf``:
    the baseline never reaches that loss (it is below the baseline's irreducible loss E).
    """
    for fit in (baseline, variant):
        if not fit.identified:
            raise NotIdentified(f"no multiplier from a fit that is {fit.not_identified}")
    v_point, v_samples = _loss_samples(variant, at, flops)
    c_point = baseline.at_for_loss(np.array([v_point]), baseline._theta(), flops)[0]
    out = {"at": float(at), "variant_loss": v_point, "multiplier": float(c_point / at), "lo": np.nan, "hi": np.nan}
    m = min(len(baseline.samples), len(v_samples))
    if m and baseline.interval == variant.interval == "bootstrap":
        c_samples = baseline.at_for_loss(v_samples[:m], baseline.samples[:m], flops) / at
        lo, hi = percentile_interval(c_samples[:, None], level)
        out["lo"], out["hi"] = float(lo[0]), float(hi[0])
    return out
