"""A ladder search's predictions as the report shows them: the ranking at the target and the chart."""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl


def prediction_tables(pred: Any) -> tuple[Any, list[str], Any]:
    """What the report shows of predictions.parquet: the ranking at the target (with the small-scale
    rank beside it), the crossings as sentences, and the architectures with no prediction and why."""
    ok = pred.filter(pl.col("status") == "predicted").sort("predicted_loss")
    small = pred.filter(pl.col("rung0_loss").is_not_null()).sort("rung0_loss")
    small_rank = {lid: i + 1 for i, lid in enumerate(small["ladder_id"].to_list())}
    extra = [c for c in ("p_best", "p_best_mc_se") if c in ok.columns]  # written by searches after issue 19
    table = ok.select(
        "run", "label", "predicted_loss", "lo", "hi", *extra, "law", "alpha", "rungs", "rung0_loss",
        pl.col("ladder_id").replace_strict(small_rank, default=None).alias("small_scale_rank"),
        "target_compute",
    ).with_row_index("rank", offset=1)  # fmt: skip
    lines = [
        _crossing_line(r["label"], c)
        for r in ok.iter_rows(named=True)
        for c in (r["crossings"] or [])
        if c["overtakes"] and not (0.2 < (c.get("p_overtakes") or 1.0) < 0.8)
    ]
    missing = pred.filter(pl.col("status") != "predicted").select("run", "label", "status", "reason")
    return table, lines, missing


def _crossing_line(label: str, c: dict[str, Any]) -> str:
    """A crossing as a sentence, with its probability when the search recorded one (a crossing
    whose probability is between 0.2 and 0.8 is not printed at all)."""
    p = c.get("p_overtakes")
    if p is None:
        return f"{label} overtakes {c['other']} above {c['compute']:.3g} FLOPs"
    if p <= 0.2:
        return f"{label} probably does not overtake {c['other']} in this range (probability {p:.2f})"
    return f"{label} overtakes {c['other']} above {c['compute']:.3g} FLOPs (probability {p:.2f})"


def ladder_chart(predictions: Any, trials: Any, held_out: Any = None) -> Any:
    """Each predicted architecture's fitted law with its 95% band from its ladder to the target,
    over the rungs it was fitted to (Altair); with `held_out` (validation.parquet's rows: label,
    compute, actual_loss), the held-out runs' means as crosses at the compute they spent."""
    ok = predictions.filter(pl.col("status") == "predicted")
    curves = ok.select("label", "curve").explode("curve").unnest("curve")
    rungs = trials.filter(pl.col("ladder_id").is_in(ok["ladder_id"].to_list()) & (pl.col("status") == "completed"))
    rungs = rungs.select("label", "compute", "eval_loss")
    x = alt.X("compute:Q", scale=alt.Scale(type="log"), title="training compute (FLOPs)")
    band = (
        alt.Chart(curves)
        .mark_area(opacity=0.2)
        .encode(x=x, y=alt.Y("lo:Q", title="loss (nats/token)"), y2="hi:Q", color="label:N")
    )
    line = alt.Chart(curves).mark_line().encode(x=x, y=alt.Y("loss:Q", scale=alt.Scale(zero=False)), color="label:N")
    points = (
        alt.Chart(rungs)
        .mark_point(filled=True)
        .encode(x=x, y="eval_loss:Q", color="label:N", tooltip=["label", "compute", "eval_loss"])
    )
    layers = band + line + points
    if held_out is not None and held_out.height:
        held = held_out.filter(pl.col("actual_loss").is_not_null()).select("label", "compute", "actual_loss")
        layers += (
            alt.Chart(held)
            .mark_point(shape="cross", size=140, filled=True, opacity=1)
            .encode(x=x, y="actual_loss:Q", color="label:N", tooltip=["label", "compute", "actual_loss"])
        )
    title = "fitted laws from the ladders to the target" + (" (crosses: held-out runs)" if held_out is not None else "")
    return layers.properties(width=560, height=320, title=title)
