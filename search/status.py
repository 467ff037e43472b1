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
    if summary["trials"] and len(objectives) > 1:
        done = pl.read_parquet(out / "trials.parquet").filter(pl.col("status") == "completed")
        if done.height:
            points = done.select(objectives).to_numpy().astype(float)
            mask = pareto_mask(points, maximize=[d == "maximize" for d in directions])
            summary["pareto"] = done.filter(pl.Series(mask)).select("trial_id", "label", *objectives).to_dicts()
    return summary
