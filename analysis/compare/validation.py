"""A ladder search's held-out check: one training run's interval, and who won at the held-out scale."""

from __future__ import annotations

import math
from typing import Any

from archscale.analysis.laws.ladder_record import LadderFit


def one_run_interval(
    pred: tuple[Any, float, float], fit: LadderFit, level: float = 0.95, runs: int = 1
) -> tuple[float, float]:
    """The 95% interval for the mean of `runs` training runs (seeds) at the held-out scale: the law's
    interval (for the mean loss, ``pred = (mean, lo, hi)``) widened on each side by the run-to-run
    noise the fit measured (its residual sigma / sqrt(runs), t with the fit's dof). Real runs are what
    ``--validate-top`` compares with, so this is the interval whose coverage it reports. NaN without
    an interval."""
    from scipy.stats import t

    mean, lo, hi = pred
    if mean is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return math.nan, math.nan
    noise = t.ppf((1 + level) / 2, max(fit.dof, 1)) * fit.sigma / math.sqrt(runs) if math.isfinite(fit.sigma) else 0.0
    return mean - math.hypot(mean - lo, noise), mean + math.hypot(hi - mean, noise)


def winner_verdict(rows: list[dict[str, Any]], predicted: str | None, level: float = 0.95) -> dict[str, Any]:
    """Did the held-out runs confirm the predicted winner? Among the validated architectures with
    their seeds' losses (``losses``), the actual best by mean is compared with the predicted winner:
    the difference of means with a t interval from the seed noise pooled over every validated
    architecture (df = the sum over architectures of seeds - 1). ``confirmed``: the predicted winner
    had the lowest held-out mean; ``within noise``: another was lower, by less than the seed noise
    resolves; ``refuted``: another was lower by a resolved margin; ``no noise estimate``: one seed
    each (run 2 or more with --validate-seeds)."""
    from scipy.stats import t

    done = {r["label"]: [x for x in (r.get("losses") or [r["actual_loss"]]) if x is not None] for r in rows}
    done = {k: v for k, v in done.items() if v}
    if predicted not in done:
        return {"verdict": None, "why": "the predicted winner has no completed held-out run"}
    means = {k: sum(v) / len(v) for k, v in done.items()}
    actual = min(means, key=means.get)
    df = sum(len(v) - 1 for v in done.values())
    out = {"actual_best": actual, "gap": means[predicted] - means[actual], "df": df}
    if actual == predicted:
        return {**out, "verdict": "confirmed", "why": "the predicted winner had the lowest held-out mean"}
    if df < 1:
        return {**out, "verdict": "no noise estimate", "why": "one seed each: run --validate-seeds 2 or more"}
    ss = sum(sum((x - means[k]) ** 2 for x in v) for k, v in done.items())
    sd = math.sqrt(ss / df)
    se = sd * math.sqrt(1 / len(done[predicted]) + 1 / len(done[actual]))
    half = t.ppf((1 + level) / 2, df) * se
    resolved = out["gap"] > half
    return {
        **out,
        "seed_sd": sd,
        "gap_lo": out["gap"] - half,
        "gap_hi": out["gap"] + half,
        "verdict": "refuted" if resolved else "within noise",
        "why": (
            f"{actual} beat it by {out['gap']:.3f} nats, beyond the seed noise (95% [{out['gap'] - half:.3f}, "
            f"{out['gap'] + half:.3f}])"
            if resolved
            else f"{actual}'s lead of {out['gap']:.3f} nats is within noise (95% [{out['gap'] - half:.3f}, "
            f"{out['gap'] + half:.3f}], seed sd {sd:.3f}, df {df})"
        ),
    }


def summarize_validation(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Who won at the held-out scale, and whether each search had picked it (rows of validation.parquet)."""
    done = [r for r in rows if r["actual_loss"] is not None]
    predicted = [r for r in done if r.get("predicted_top", True) and r["predicted_loss"] is not None]
    covered = [r for r in done if r["covered"] is not None]
    small = next((r for r in rows if r.get("small_scale_pick")), None)
    started = next((r for r in rows if r.get("started_best")), None)
    winner = min(predicted, key=lambda r: r["predicted_loss"])["label"] if predicted else None
    return {
        "validated": rows,
        "predicted_winner": winner,
        "actual_winner": min(done, key=lambda r: r["actual_loss"])["label"] if done else None,
        "small_scale_winner": small["label"] if small else None,
        "start_winner": started["label"] if started else None,
        "coverage": (sum(r["covered"] for r in covered) / len(covered)) if covered else None,
        "winner_check": winner_verdict(done, winner),
    }
