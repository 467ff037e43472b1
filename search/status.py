"""`archscale search status DIR`: counts by state, best trials, Pareto front, progress.

Reads only the results files, so it works while a search is running and on results copied off a
cluster. The Pareto front is over the objectives the search was run with (run.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from archscale.search.results import summarize


def status(out: str | Path) -> dict[str, Any]:
    import polars as pl

    from archscale.analysis.pareto import pareto_mask

    out = Path(out)
    if not (out / "run.json").exists():
        raise FileNotFoundError(f"{out}: not a results directory (no run.json); run `archscale search run` first")
    run = json.loads((out / "run.json").read_text())
    summary = summarize(out)
    args = run.get("args", {})
    summary["requested"] = int(args.get("trials", 0)) * int(args.get("seeds", 1))
    summary["study_name"] = run.get("study_name")
    summary["storage"] = run.get("storage")
    objectives = [o["name"] for o in run.get("objectives", [])] or ["eval_loss"]
    directions = [o.get("direction", "minimize") for o in run.get("objectives", [])] or ["minimize"]
    summary["objectives"] = objectives
    summary["pareto"] = []
    if run.get("kind") == "ladder-search":
        summary["requested"] = int(args.get("trials", 0)) * int(run.get("ladder", {}).get("rungs", 1))
        summary.update(ladder_summary(out, run, objectives, directions))
        summary["best"] = []  # rungs of different sizes: their losses do not rank architectures
        return summary
    if summary["trials"] and len(objectives) > 1:
        done = pl.read_parquet(out / "trials.parquet").filter(pl.col("status") == "completed")
        if done.height:
            points = done.select(objectives).to_numpy().astype(float)
            mask = pareto_mask(points, maximize=[d == "maximize" for d in directions])
            summary["pareto"] = done.filter(pl.Series(mask)).select("trial_id", "label", *objectives).to_dicts()
    return summary


def ladder_summary(out: Path, run: dict[str, Any], objectives: list[str], directions: list[str]) -> dict[str, Any]:
    """A ladder search's predictions: the ranking at the target with intervals, the crossings, and
    the small-scale (rung 0) ranking beside it, from DIR/predictions.parquet."""
    import polars as pl

    from archscale.analysis.pareto import pareto_mask

    path = out / "predictions.parquet"
    ladder = run.get("ladder", {})
    info: dict[str, Any] = {"ladder": ladder, "predicted": [], "not_predicted": [], "small_scale": []}
    if not path.exists():
        return info
    pred = pl.read_parquet(path)
    ok = pred.filter(pl.col("status") == "predicted").sort("predicted_loss")
    info["predicted"] = ok.select(
        "ladder_id", "label", "predicted_loss", "lo", "hi", "alpha", "rung0_loss", "target_compute", "crossings"
    ).to_dicts()
    info["not_predicted"] = (
        pred.filter(pl.col("status") != "predicted").select("ladder_id", "label", "status", "reason").to_dicts()
    )
    info["small_scale"] = (
        pred.filter(pl.col("rung0_loss").is_not_null()).sort("rung0_loss").select("ladder_id", "label", "rung0_loss")
    ).to_dicts()
    validation = out / "validation.parquet"
    if validation.exists():
        rows = pl.read_parquet(validation).to_dicts()
        done = [r for r in rows if r["actual_loss"] is not None]
        info["validation"] = {
            "rows": rows,
            "predicted_winner": min(done, key=lambda r: r["predicted_loss"])["label"] if done else None,
            "actual_winner": min(done, key=lambda r: r["actual_loss"])["label"] if done else None,
            "small_scale_winner": info["small_scale"][0]["label"] if info["small_scale"] else None,
            "coverage": sum(bool(r["covered"]) for r in done) / len(done) if done else None,
        }
    costs = {
        "params": "target_params",
        "flops_per_token": "target_flops_per_token",
        "kv_cache_bytes_per_token": "target_kv_cache_bytes_per_token",
    }
    columns = [("predicted_loss" if o == "predicted_loss" else costs.get(o)) for o in objectives]
    if len(objectives) > 1 and ok.height and all(columns):
        mask = pareto_mask(ok.select(columns).to_numpy().astype(float), maximize=[d == "maximize" for d in directions])
        info["pareto"] = ok.filter(pl.Series(mask)).select("ladder_id", "label", *columns).to_dicts()
    return info
