"""The quickstart's answer: the small search's winner, the architecture a ladder search predicts best at
the target (with its interval and probability of being best), and what the held-out runs said.

`ladder_story(search_dir, ladder_dir)` reads what the two runs wrote (the search's trials.parquet,
the ladder search's predictions.parquet, validation.parquet and run.json) and states, with the
numbers behind each: whether the small-scale winner and the predicted target-scale winner agree,
and whether the held-out runs confirmed the prediction (`winner_verdict`, against seed noise).
Nothing is refitted here: every number is the one the ladder search recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from archscale.analysis.compare.validation import summarize_validation

TARGET_COLUMNS = (
    "label",
    "predicted_loss",
    "lo",
    "hi",
    "p_best",
    "p_best_mc_se",
    "target_compute",
    "target_params",
    "law",
)


def ladder_story(search_dir: str | Path, ladder_dir: str | Path) -> dict[str, Any]:
    """``best`` / ``ranking`` / ``seed_std``: the search's architectures by mean eval loss;
    ``predicted``: the ladder search's ranking at its target (identified laws only), best first;
    ``predicted_winner`` (or ``why_no_prediction``); ``agree``: whether the search's best is the
    predicted winner (None when either is missing); ``validation``: summarize_validation of the
    held-out runs (with ``winner_check``), or None when none ran; ``ladders``: counts by status."""
    search = pl.read_parquet(Path(search_dir) / "trials.parquet").filter(pl.col("status") == "completed")
    by_arch = (
        search.group_by("label")
        .agg(pl.col("eval_loss").mean().alias("mean"), pl.col("eval_loss").std().alias("std"), pl.len().alias("runs"))
        .sort("mean")
    )
    best = by_arch.row(0, named=True) if by_arch.height else None
    ladder_dir = Path(ladder_dir)
    preds = pl.read_parquet(ladder_dir / "predictions.parquet")
    ranked = preds.filter(pl.col("status") == "predicted").sort("predicted_loss")
    ranked = ranked.select([c for c in TARGET_COLUMNS if c in ranked.columns])
    winner = ranked.row(0, named=True) if ranked.height else None
    why = None
    if winner is None:
        reasons = [r for r in preds["reason"].drop_nulls().to_list()] if "reason" in preds.columns else []
        why = "no ladder's law is identified" + (f": {reasons[0]}" if reasons else "")
    validation = None
    if (ladder_dir / "validation.parquet").exists():
        validation = summarize_validation(pl.read_parquet(ladder_dir / "validation.parquet").to_dicts())
    run = json.loads((ladder_dir / "run.json").read_text())
    return {
        "best": best,
        "ranking": by_arch.to_dicts(),
        "seed_std": best.get("std") if best else None,
        "predicted": ranked.to_dicts(),
        "predicted_winner": winner,
        "why_no_prediction": why,
        "agree": None if best is None or winner is None else best["label"] == winner["label"],
        "validation": validation,
        "started_with": [a["label"] for a in run.get("started_with", {}).get("architectures", [])],
        "ladders": dict(preds.group_by("status").len().iter_rows()),
    }
