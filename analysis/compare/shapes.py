"""The shapes a ladder's rungs reached, against the search's shape rule (`spaces/shape_rule.py`).

``rung_shapes(trials, rules)`` is the table the report's ladder section shows: one row per rung
with d_model, n_layers, n_heads, head_dim, d_ff, ffn_ratio (d_ff / d_model) and aspect_ratio
(d_model / n_layers), and, under a rule, the dimensions that stray more than 5% from it; the
flagged rungs also come back as sentences ("relu·rope (ladder 3) rung 0: aspect_ratio 48 vs 32
(+50%)"). ``shape_rules(dirs)`` reads each run's rule from its run.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from archscale.analysis.data.loaders import PathLike, load_run, run_names
from archscale.spaces.shape_rule import ShapeRule, off_rule

SHAPE_COLUMNS = ("d_model", "n_layers", "n_heads", "head_dim", "d_ff", "ffn_ratio", "aspect_ratio")


def shape_rule_of(run: dict[str, Any]) -> tuple[ShapeRule | None, bool]:
    """A run.json's shape rule (a search's space or a study's file) and its budget's match_gated."""
    spec = run.get("space") or run.get("study") or {}
    shape = spec.get("shape")
    match_gated = bool((spec.get("budget") or {}).get("match_gated", True))
    return (ShapeRule.model_validate(shape) if shape else None), match_gated


def shape_rules(dirs: Sequence[PathLike]) -> dict[str, tuple[ShapeRule | None, bool]]:
    """Each results directory's shape rule, by its run name (the `run` column of `load_trials`)."""
    return {name: shape_rule_of(load_run(d)) for d, name in zip(dirs, run_names(dirs), strict=True)}


def rung_shapes(
    trials: pl.DataFrame, rules: dict[str, tuple[ShapeRule | None, bool]]
) -> tuple[pl.DataFrame, list[str]]:
    """The ladders' rungs with their achieved shapes and `off_rule` (what strays more than 5% from
    the run's rule, "; "-joined; empty on the rule, null without a rule), and the flagged rungs as
    sentences (module docstring). Results written before the ratio columns existed get them from
    d_ff, d_model and n_layers."""
    rungs = (
        trials.filter(pl.col("ladder_id").is_not_null() & pl.col("d_model").is_not_null())
        .with_columns(
            ffn_ratio=pl.coalesce("ffn_ratio", pl.col("d_ff") / pl.col("d_model")),
            aspect_ratio=pl.coalesce("aspect_ratio", pl.col("d_model") / pl.col("n_layers")),
        )
        .sort("run", "ladder_id", "rung")
    )
    texts, lines = [], []
    for row in rungs.iter_rows(named=True):  # a few rows per ladder: the rule's arithmetic lives in spaces
        rule, match_gated = rules.get(row["run"], (None, True))
        off = None if rule is None else off_rule(rule, row, match_gated)
        texts.append(None if off is None else "; ".join(off))
        if off:
            lines.append(f"{row['label']} (ladder {row['ladder_id']}) rung {row['rung']}: {'; '.join(off)}")
    table = rungs.with_columns(off_rule=pl.Series(texts, dtype=pl.String)).select(
        "run", "label", "ladder_id", "rung", "status", *SHAPE_COLUMNS, "off_rule"
    )
    return table, lines
