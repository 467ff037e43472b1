"""A ladder search's verdicts at the target: the probability each architecture is best, and differences.

Both read a ``LadderFit``'s bootstrap refits, which are **joint**: refit ``r`` of every ladder
comes from one simulated search, so a difference between two ladders' predictions in refit ``r``
carries the noise they share.

* ``ladder_p_best(fit, targets)``: for each identified ladder, the fraction of refits in which its
  prediction at its target is the lowest, with the Monte Carlo error ``sqrt(p (1 - p) / R)``.
* ``ladder_differences(fit, targets)``: every ladder against the best predicted one: the
  difference of predictions, a percentile interval from the refits' differences, a bootstrap
  p-value ``2 min(P(d* <= 0), P(d* >= 0))``, Holm over every pair of ladders (the best is
  selected), and the verdict ``resolved`` / ``within noise`` (``no interval`` with < 20 refits).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from archscale.analysis.laws.ladder_record import LadderFit

from .stats import holm, verdict

MIN_REFITS = 20


def _draws(fit: LadderFit, targets: dict[Any, float]) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Identified ladders, their predictions at target, and the refits' predictions (R, k)."""
    keys = [k for k, law in fit.laws.items() if law.identified and fit.identified and k in targets]
    mean = np.array([float(fit.laws[k].loss_at(targets[k])) for k in keys])
    reps = [rep for rep in fit.replicates if all(k in rep for k in keys)]
    draws = np.array(
        [[rep[k][0] + math.exp(rep[k][1] - rep[k][2] * math.log(targets[k] / fit.c0)) for k in keys] for rep in reps]
    ).reshape(len(reps), len(keys))
    return keys, mean, draws


def ladder_p_best(fit: LadderFit, targets: dict[Any, float]) -> dict[Any, tuple[float, float]]:
    """``{ladder: (p_best, mc_se)}`` at each ladder's target (empty with < 20 refits)."""
    keys, _, draws = _draws(fit, targets)
    if len(draws) < MIN_REFITS or not keys:
        return {}
    p = np.bincount(np.argmin(draws, axis=1), minlength=len(keys)) / len(draws)
    return {k: (float(p[i]), float(math.sqrt(p[i] * (1 - p[i]) / len(draws)))) for i, k in enumerate(keys)}


def ladder_differences(fit: LadderFit, targets: dict[Any, float], *, level: float = 0.95) -> pl.DataFrame:
    """Every identified ladder against the best predicted one (see the module docstring)."""
    keys, mean, draws = _draws(fit, targets)
    schema = {"ladder": pl.String, "best": pl.String, "diff": pl.Float64, "lo": pl.Float64, "hi": pl.Float64,
              "p": pl.Float64, "p_holm": pl.Float64, "verdict": pl.String, "comparisons": pl.Int64}  # fmt: skip
    if len(keys) < 2:
        return pl.DataFrame(schema=schema)
    b = int(np.argmin(mean))
    others = [i for i in range(len(keys)) if i != b]
    family = len(keys) * (len(keys) - 1) // 2
    rows = []
    for i in others:
        d = mean[i] - mean[b]
        if len(draws) >= MIN_REFITS:
            dd = draws[:, i] - draws[:, b]
            lo, hi = np.quantile(dd, [(1 - level) / 2, (1 + level) / 2])
            p = min(1.0, 2 * min(np.mean(dd <= 0), np.mean(dd >= 0)) + 1 / len(dd))
        else:
            lo = hi = p = math.nan
        rows.append({"ladder": str(keys[i]), "best": str(keys[b]), "diff": d, "lo": lo, "hi": hi, "p": p})
    out = pl.DataFrame(rows).with_columns(pl.col("lo", "hi", "p").fill_nan(None))
    adjusted = holm(out["p"].fill_null(np.nan).to_numpy(), family=family)
    return (
        out.with_columns(p_holm=pl.Series(adjusted).fill_nan(None), comparisons=pl.lit(family, pl.Int64))
        .with_columns(verdict=verdict(pl.col("p_holm"), pl.col("lo").is_not_null()))
        .select(list(schema))
    )
