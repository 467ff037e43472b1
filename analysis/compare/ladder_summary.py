"""What ``search status`` shows of a ladder search: the ranking at the target, the small-scale ranking, the check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from .pareto import pareto_mask
from .validation import summarize_validation

#: The predictions.parquet column of each cost objective a ladder search can have.
TARGET_COSTS = {
    "params": "target_params",
    "flops_per_token": "target_flops_per_token",
    "kv_cache_bytes_per_token": "target_kv_cache_bytes_per_token",
}


def ladder_summary(out: Path, run: dict[str, Any], objectives: list[str], directions: list[str]) -> dict[str, Any]:
    """A ladder search's predictions (``out``: its results directory, ``run``: its run.json): the
    ranking at the target with intervals, the crossings, the small-scale (rung 0) ranking beside it,
    the rungs that stray from the search's shape rule (``off_rule``, sentences),
    the held-out validation when there is one, and the Pareto front of the predicted loss and the
    target's costs when the search has several ``objectives`` (with their ``directions``)."""
    path = out / "predictions.parquet"
    info: dict[str, Any] = {"ladder": run.get("ladder", {}), "predicted": [], "not_predicted": [], "small_scale": []}
    if not path.exists():
        return info
    pred = pl.read_parquet(path)
    ok = pred.filter(pl.col("status") == "predicted").sort("predicted_loss")
    info["predicted"] = ok.select(
        "ladder_id", "label", "predicted_loss", "lo", "hi", "law", "alpha", "rung0_loss", "target_compute", "crossings"
    ).to_dicts()
    info["not_predicted"] = (
        pred.filter(pl.col("status") != "predicted").select("ladder_id", "label", "status", "reason").to_dicts()
    )
    info["small_scale"] = (
        pred.filter(pl.col("rung0_loss").is_not_null()).sort("rung0_loss").select("ladder_id", "label", "rung0_loss")
    ).to_dicts()
    if (out / "trials.parquet").exists():  # rungs that stray >5% from the search's shape rule (shapes.py)
        from .shapes import rung_shapes, shape_rule_of

        trials = pl.read_parquet(out / "trials.parquet").with_columns(run=pl.lit(out.name))
        info["off_rule"] = rung_shapes(trials, {out.name: shape_rule_of(run)})[1]
    validation = out / "validation.parquet"
    if run.get("validation", {}).get("skipped"):
        info["validation_skipped"] = run["validation"]["skipped"]
    if validation.exists():
        summary = summarize_validation(pl.read_parquet(validation).to_dicts())
        info["validation"] = {"rows": summary.pop("validated"), **summary}
    columns = [("predicted_loss" if o == "predicted_loss" else TARGET_COSTS.get(o)) for o in objectives]
    if len(objectives) > 1 and ok.height and all(columns):
        mask = pareto_mask(ok.select(columns).to_numpy().astype(float), maximize=[d == "maximize" for d in directions])
        info["pareto"] = ok.filter(pl.Series(mask)).select("ladder_id", "label", *columns).to_dicts()
    return info
