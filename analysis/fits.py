"""Scaling-law fits with bootstrap uncertainty: the public face of the ``fits_*`` modules.

Laws (natural logarithms throughout; losses in nats/token), one module each:

* ``fits_power``: the power law ``L(x) = E + A * x**(-alpha)`` (``fit_power_law``).
* ``fits_chinchilla``: Chinchilla Approach 3 ``L(N, D) = E + A / N**alpha + B / D**beta``
  (``fit_chinchilla``), the compute-optimal allocation and the design check.
* ``fits_isoflop``: Chinchilla Approach 2, isoFLOP parabolas (``fit_isoflop``).
* ``fits_common``: the Huber/L-BFGS-B machinery they share, Hoffmann et al.'s grid of starts,
  the bootstrap, percentile intervals, ``FlopsModel`` and the ``LawFit`` record.

This module adds what works across laws: ``fit_groups`` (one fit per family),
``leave_largest_out``, ``rank_architectures`` and ``effective_compute_multiplier``. They use a
fit only through ``LawFit.loss_at`` / ``LawFit.at_for_loss``, so a new law plugs in unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import polars as pl

from .fits_chinchilla import ChinchillaFit, chinchilla_loss, fit_chinchilla
from .fits_common import HUBER_DELTA, FlopsModel, LawFit, clean, compute_budgets, percentile_interval
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
    "compute_budgets",
    "effective_compute_multiplier",
    "fit_chinchilla",
    "fit_groups",
    "fit_isoflop",
    "fit_power_law",
    "leave_largest_out",
    "rank_architectures",
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
    """One fit per value of ``by`` (e.g. ``group`` in a scaling study, or ``label``).

    Groups with too few runs for the law (3 for a power law, 5 for Chinchilla) are skipped.
    """
    min_runs = min_runs or MIN_RUNS[law]
    cols = [x] if law == "power" else [n_col, d_col]
    fits: dict[str, LawFit] = {}
    for (name,), part in frame.drop_nulls([by, loss_col, *cols]).group_by(by, maintain_order=True):
        if part.height < min_runs:
            continue
        loss = part[loss_col].to_numpy()
        if law == "power":
            fits[str(name)] = fit_power_law(part[x].to_numpy(), loss, x_name=x, bootstrap=bootstrap, seed=seed)
        else:
            n, d = part[n_col].to_numpy(), part[d_col].to_numpy()
            fits[str(name)] = fit_chinchilla(n, d, loss, bootstrap=bootstrap, seed=seed, inputs=(n_col, d_col))
    return fits


def _loss_samples(fit: LawFit, at: float, flops: FlopsModel | None) -> tuple[float, np.ndarray]:
    """The fit's loss at ``at`` and the same for each bootstrap refit."""
    point = float(fit.loss_at(at, flops=flops)[0, 0])
    samples = fit.loss_at(at, fit.samples, flops)[:, 0] if len(fit.samples) else np.empty(0)
    return point, samples


def rank_architectures(
    fits: Mapping[str, LawFit], *, at: float, flops: FlopsModel | None = None, level: float = 0.95
) -> pl.DataFrame:
    """Architectures ranked by predicted loss at ``at`` (lowest first), with bootstrap intervals.

    ``at`` is the x of the power laws (a compute or a size), or a compute for Chinchilla fits
    (loss at the compute-optimal allocation). Columns: ``rank, name, predicted_loss, lo, hi, at``.
    """
    rows: dict[str, list[Any]] = {"name": [], "predicted_loss": [], "lo": [], "hi": []}
    for name, fit in fits.items():
        point, samples = _loss_samples(fit, at, flops)
        lo, hi = percentile_interval(samples[:, None], level) if samples.size else ([np.nan], [np.nan])
        rows["name"].append(name)
        rows["predicted_loss"].append(point)
        rows["lo"].append(float(lo[0]))
        rows["hi"].append(float(hi[0]))
    schema = {"name": pl.String, "predicted_loss": pl.Float64, "lo": pl.Float64, "hi": pl.Float64}
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

    Both fits must be power laws in compute (``x = compute``) or Chinchilla fits (loss at the
    compute-optimal allocation). ``multiplier > 1`` means the variant is better. The interval pairs
    the i-th bootstrap refit of each fit (both need the same number of refits). ``inf``: the
    baseline never reaches that loss (it is below the baseline's irreducible loss E).
    """
    v_point, v_samples = _loss_samples(variant, at, flops)
    c_point = baseline.at_for_loss(np.array([v_point]), baseline._theta(), flops)[0]
    out = {"at": float(at), "variant_loss": v_point, "multiplier": float(c_point / at), "lo": np.nan, "hi": np.nan}
    m = min(len(baseline.samples), len(v_samples))
    if m:
        c_samples = baseline.at_for_loss(v_samples[:m], baseline.samples[:m], flops) / at
        lo, hi = percentile_interval(c_samples[:, None], level)
        out["lo"], out["hi"] = float(lo[0]), float(hi[0])
    return out
