"""DIR/predictions.parquet: one row per architecture of a ladder search (see search/strategies/ladder.py).

Columns: `ladder_id`, `arch_id`, `label`, `status` (predicted, not identified, pruned, failed,
duplicate, running), `reason`, `target_compute`, the counts at the target size (`target_params`,
`target_flops_per_token`, `target_kv_cache_bytes_per_token`), `law` ("shared E", or "no floor
(E = 0)" when the ladders show no flattening: analysis/laws/ladder_nofloor.py), `predicted_loss` with
its 95% interval (`lo`, `hi`), the law's parameters (`E`, `log_A`, `alpha`, `c0`), the joint fit's `sigma` and `dof`,
the small-scale result it started from (`rung0_compute`, `rung0_loss`) and `crossings`: a list of
{other, compute, overtakes, p_overtakes} saying at which compute this architecture overtakes (or is
overtaken by) each other predicted architecture between its top rung and 10x the target, and in
what share of the bootstrap refits; `p_best` and `p_best_mc_se`: the probability that it is the best
at its target over the joint bootstrap refits (null with fewer than 20 refits); and
`curve`: the fitted law with its 95% band at 24 compute values from rung 0 to the target.
Rewritten whole (temp file, rename) after every refit.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from archscale.search.results import write_atomically


def prediction_rows(ladders: dict[int, dict[str, Any]], fit: Any) -> list[dict[str, Any]]:
    from archscale.analysis import crossings_by_ladder, ladder_p_best

    rows = []
    predicted = {}
    for i, lad in ladders.items():
        counts = lad.get("target_counts") or {}
        rung0 = lad.get("rungs", {}).get(0)
        row = {
            "ladder_id": i,
            "arch_id": lad.get("arch_id"),
            "label": lad.get("label"),
            "status": None,
            "reason": lad.get("error"),
            "target_compute": lad.get("target_compute"),
            "target_params": counts.get("params"),
            "target_flops_per_token": counts.get("flops_per_token"),
            "target_kv_cache_bytes_per_token": counts.get("kv_cache_bytes_per_token"),
            "law": None,
            "predicted_loss": None,
            "lo": None,
            "hi": None,
            "E": None,
            "log_A": None,
            "alpha": None,
            "c0": None,
            "sigma": None,
            "dof": None,
            "rungs": len(lad.get("rungs", {})),
            "rung0_compute": rung0[0] if rung0 else None,
            "rung0_loss": rung0[1] if rung0 else None,
            "top_compute": max((c for c, _ in lad.get("rungs", {}).values()), default=None),
            "p_best": None,
            "p_best_mc_se": None,
            "crossings": [],
            "curve": [],
        }
        state = lad["state"]
        law = fit.laws.get(i) if fit is not None else None
        pred = fit.predict(i, lad["target_compute"]) if law is not None and lad.get("target_compute") else None
        if pred is not None and math.isfinite(pred[1]):
            row["curve"] = fit.curve(i, row["rung0_compute"], lad["target_compute"])
            row.update(
                status="predicted",
                law=fit.law,
                predicted_loss=pred[0],
                lo=pred[1],
                hi=pred[2],
                E=law.E,
                log_A=law.log_A,
                alpha=law.alpha,
                c0=law.c0,
                sigma=fit.sigma,
                dof=fit.dof,
            )
            predicted[i] = row
        elif state == "done":
            row.update(status="not identified", reason=lad.get("error") or (law.reason if law else None))
        else:
            row["status"] = {"pruned": "pruned", "failed": "failed", "duplicate": "duplicate"}.get(state, "running")
        rows.append(row)
    if fit is not None and predicted:
        p_best = ladder_p_best(fit, {i: r["target_compute"] for i, r in predicted.items()})
        for i, (p, mc_se) in p_best.items():
            predicted[i].update(p_best=p, p_best_mc_se=mc_se)
        lo = min(r["top_compute"] for r in predicted.values())
        hi = 10 * max(r["target_compute"] for r in predicted.values())
        for me, found in crossings_by_ladder(fit, lo, hi).items():
            for cross in found:
                if me in predicted and cross["other"] in predicted:
                    predicted[me]["crossings"].append({**cross, "other": predicted[cross["other"]]["label"]})
    return rows


def write_predictions(out: Path, ladders: dict[int, dict[str, Any]], fit: Any, plan: Any) -> None:
    import polars as pl

    rows = prediction_rows(ladders, fit)
    if not rows:
        return
    crossing = pl.List(
        pl.Struct({"other": pl.String, "compute": pl.Float64, "overtakes": pl.Boolean, "p_overtakes": pl.Float64})
    )
    curve = pl.List(pl.Struct({"compute": pl.Float64, "loss": pl.Float64, "lo": pl.Float64, "hi": pl.Float64}))
    frame = pl.DataFrame(
        rows, schema_overrides={"crossings": crossing, "curve": curve}, infer_schema_length=None, strict=False
    )
    frame = frame.with_columns(pl.lit(plan.risk).alias("risk"))
    write_atomically(out / "predictions.parquet", frame.write_parquet)
