"""Architectures ranked by their fitted laws' predictions, and effective-compute multipliers.

They use a fit only through ``LawFit.loss_at`` / ``LawFit.at_for_loss``, so a new law plugs in
unchanged; a fit that is not identified (``LawFit.identified``) is never ranked nor compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from archscale.analysis.laws.inputs import FlopsModel
from archscale.analysis.laws.intervals import percentile_interval
from archscale.analysis.laws.objective import NotIdentified
from archscale.analysis.laws.record import LawFit


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
