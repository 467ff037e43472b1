"""A ladder search's held-out check: one training run's interval, and who won at the held-out scale."""

from __future__ import annotations

import math
from typing import Any

from archscale.analysis.laws.ladder_record import LadderFit


def one_run_interval(pred: tuple[Any, float, float], fit: LadderFit, level: float = 0.95) -> tuple[float, float]:
    """The 95% interval for ONE training run at the held-out scale: the law's interval (for the mean
    loss, ``pred = (mean, lo, hi)``) widened on each side by the run-to-run noise the fit measured
    (its residual sigma, t with the fit's dof). A single real run is what ``--validate-top``
    compares with, so this is the interval whose coverage it reports. NaN without an interval."""
    from scipy.stats import t

    mean, lo, hi = pred
    if mean is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return math.nan, math.nan
    noise = t.ppf((1 + level) / 2, max(fit.dof, 1)) * fit.sigma if math.isfinite(fit.sigma) else 0.0
    return mean - math.hypot(mean - lo, noise), mean + math.hypot(hi - mean, noise)


def summarize_validation(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Who won at the held-out scale, and whether each search had picked it (rows of validation.parquet)."""
    done = [r for r in rows if r["actual_loss"] is not None]
    predicted = [r for r in done if r.get("predicted_top", True) and r["predicted_loss"] is not None]
    covered = [r for r in done if r["covered"] is not None]
    small = next((r for r in rows if r.get("small_scale_pick")), None)
    return {
        "validated": rows,
        "predicted_winner": min(predicted, key=lambda r: r["predicted_loss"])["label"] if predicted else None,
        "actual_winner": min(done, key=lambda r: r["actual_loss"])["label"] if done else None,
        "small_scale_winner": small["label"] if small else None,
        "coverage": (sum(r["covered"] for r in covered) / len(covered)) if covered else None,
    }
