"""The scaling fits a verdict can state: one row per (law, family) of a ``ScalingAnalysis``.

Read from the analysis's typed fields: ``power`` (identified power laws in compute, predicted at
``target`` through ``rank_architectures``), ``approach3`` (identified Chinchilla fits and their
ranking) and the refusals (``power_refused``, ``approach3_refused``: why a family has no law), so
a family with no law always says why.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from .law_ranking import rank_architectures, rankable
from .scaling import ScalingAnalysis

FIT_SCHEMA = {"law": pl.String, "series": pl.String, "identified": pl.Boolean, "quantity": pl.String,
              "estimate": pl.Float64, "lo": pl.Float64, "hi": pl.Float64, "at": pl.Float64, "n_runs": pl.Int64,
              "reason": pl.String}  # fmt: skip
POWER_LAW = "power law in compute"
APPROACH3 = "Chinchilla Approach 3"


def fit_rows(s: ScalingAnalysis) -> pl.DataFrame:
    """One row per (law, series) of ``s``: identified fits with their prediction at ``s.target``
    (and its interval when they have one), then every refused fit with its reason."""
    rows: list[dict[str, Any]] = []
    target = s.target
    for name, fit in s.power.items():
        row = {"law": POWER_LAW, "series": name, "identified": fit.identified, "at": target,
               "quantity": "loss at target", "n_runs": fit.n_runs,
               "reason": fit.not_identified or "; ".join(fit.warnings) or None}  # fmt: skip
        if fit.identified and "compute" in fit.inputs:
            ranked = rank_architectures({name: fit}, at=target)
            if ranked.height:
                r = ranked.row(0, named=True)
                row.update(estimate=r["predicted_loss"], lo=r["lo"], hi=r["hi"])
            else:  # identified, but its prediction at the target is not bounded (rankable says why)
                row.update(identified=False, reason=rankable({name: fit}, at=target).get(name, "not rankable"))
        rows.append(row)
    if s.approach3 is not None:
        ranking = s.approach3.ranking
        for name, fit in s.approach3.fits.items():
            row = {"law": APPROACH3, "series": name, "identified": fit.identified, "at": target,
                   "quantity": "loss at compute-optimal target", "n_runs": fit.n_runs,
                   "reason": fit.not_identified or "; ".join(fit.warnings) or None}  # fmt: skip
            mine = ranking.filter(pl.col("name") == name) if ranking.height else ranking
            if fit.identified and mine.height:
                r = mine.row(0, named=True)
                row.update(estimate=r["predicted_loss"], lo=r["lo"], hi=r["hi"])
            rows.append(row)
    for law, refused in ((POWER_LAW, s.power_refused), (APPROACH3, s.approach3_refused)):
        rows += [
            {"law": law, "series": name, "identified": False, "quantity": "not fitted", "reason": why}
            for name, why in refused.items()
        ]
    for row in rows:  # a zero-width interval comes from degenerate resamples: it is no interval
        lo, hi = row.get("lo"), row.get("hi")
        if lo is not None and hi is not None and math.isfinite(lo) and abs(hi - lo) <= 1e-9 * max(abs(hi), 1.0):
            row["lo"] = row["hi"] = None
            row["reason"] = "; ".join(filter(None, [row.get("reason"), "zero-width bootstrap interval: not shown"]))
    return pl.DataFrame(rows, schema=FIT_SCHEMA) if rows else pl.DataFrame(schema=FIT_SCHEMA)
