"""`archscale search status DIR [DIR ...] [--storage URL]`: counts by state, best trials, Pareto front, progress.

Reads only the results files, so it works while a search is running and on results copied off a
cluster. Several directories (drivers that shared one study) are shown as their union. The Pareto
front is over the objectives the searches were run with (run.json).

With `--storage URL` (needed when the URL in run.json had its password removed) it also opens the
study and adds `study`: the study's trials by state across every driver that adds to it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archscale.search.results import summarize
from archscale.spaces.errors import UserError


def _run_of(out: Path) -> dict[str, Any]:
    if not (out / "run.json").exists():
        raise FileNotFoundError(f"{out}: not a results directory (no run.json); run `archscale search run` first")
    return json.loads((out / "run.json").read_text())


def status(out: str | Path | Sequence[str | Path], storage: str | None = None) -> dict[str, Any]:
    import polars as pl

    from archscale.analysis.compare.pareto import pareto_mask

    dirs = [Path(out)] if isinstance(out, (str, Path)) else [Path(d) for d in out]
    runs = [_run_of(d) for d in dirs]
    objectives = [o["name"] for o in runs[0].get("objectives", [])] or ["eval_loss"]
    directions = [o.get("direction", "minimize") for o in runs[0].get("objectives", [])] or ["minimize"]
    for d, run in zip(dirs[1:], runs[1:], strict=True):
        if ([o["name"] for o in run.get("objectives", [])] or ["eval_loss"]) != objectives:
            raise UserError(f"{d}: searched other objectives than {dirs[0]}; show them separately")
    frames = [pl.read_parquet(d / "trials.parquet") for d in dirs if (d / "trials.parquet").exists()]
    trials = pl.concat(frames, how="diagonal_relaxed") if frames else None
    if len(dirs) == 1:
        summary = summarize(dirs[0])
    else:
        summary = _summarize_union(dirs, trials)
    args = [r.get("args", {}) for r in runs]
    summary["requested"] = sum(int(a.get("trials", 0)) * int(a.get("seeds", 1)) for a in args)
    summary["study_name"] = runs[0].get("study_name")
    summary["storage"] = runs[0].get("storage")
    summary["objectives"] = objectives
    summary["pareto"] = []
    if runs[0].get("kind") == "ladder-search":
        if len(dirs) > 1:
            raise UserError(f"{dirs[1]}: a ladder search's status is shown one directory at a time")
        summary["requested"] = int(args[0].get("trials", 0)) * int(runs[0].get("ladder", {}).get("rungs", 1))
        from archscale.analysis import ladder_summary

        summary.update(ladder_summary(dirs[0], runs[0], objectives, directions))
        summary["best"] = []  # rungs of different sizes: their losses do not rank architectures
        return summary
    if trials is not None and trials.height and len(objectives) > 1:
        done = trials.filter(pl.col("status") == "completed")
        if done.height:
            points = done.select(objectives).to_numpy().astype(float)
            mask = pareto_mask(points, maximize=[d == "maximize" for d in directions])
            summary["pareto"] = done.filter(pl.Series(mask)).select("trial_id", "label", *objectives).to_dicts()
    if storage:
        summary["study"] = study_counts(storage, summary["study_name"], objectives)
    return summary


def _summarize_union(dirs: list[Path], trials) -> dict[str, Any]:
    import polars as pl

    out = ", ".join(str(d) for d in dirs)
    if trials is None:
        return {"out": out, "trials": 0, "by_status": {}, "best": []}
    best = (
        trials.filter(pl.col("status") == "completed")
        .sort("eval_loss")
        .select("trial_id", "label", "seed", "eval_loss", "params", "tokens")
        .head(5)
        .to_dicts()
    )
    by_status = dict(trials.group_by("status").len().iter_rows())
    return {"out": out, "trials": trials.height, "by_status": by_status, "best": best}


def study_counts(storage: str, study_name: str, objectives: list[str]) -> dict[str, Any]:
    """The study's trials by state, over every driver that adds to it."""
    from archscale.search.storage import StudySpec

    study = StudySpec(storage=storage, study_name=study_name, objectives=objectives).open(create=False)
    by_state: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        by_state[t.state.name.lower()] = by_state.get(t.state.name.lower(), 0) + 1
    drivers = {t.user_attrs.get("run_id") for t in study.get_trials(deepcopy=False)} - {None}
    return {"trials": sum(by_state.values()), "by_state": by_state, "drivers": len(drivers)}
