"""The report's "One law for the space": the axis effects on level and slope, the ranking, what to train next.

Renders ``compare.space_summary.space_summary`` (computed there, shown here): a chart of every
estimated level and slope effect with its 95% interval, a table of the space's best architectures
at the target with p_best (trained or not), the values without a slope estimate and the runs that
would most change the answer.
"""

from __future__ import annotations

import html
from typing import Any

import altair as alt
import polars as pl

from .html_tables import html_table
from .report_parts import figure, note_paragraph

NOTE = (
    "One law over every completed run: L(a, C) = E + exp(log_A(a)) (C/C0)^-alpha(a), log_A and alpha linear in the "
    "architecture's axis values (contrasts with each axis's reference value), shrunk toward the space's mean with "
    "prior scales chosen by marginal likelihood; 95% intervals from the Laplace posterior. A level effect shifts "
    "the curve by a constant factor; a slope effect changes the exponent: positive means the loss falls faster "
    "with compute, an advantage that grows with scale. Architectures never trained are predicted from their "
    "values' effects. Shrinkage: the share of a value's prior variance left after the data (1: all borrowed)."
)


def effects_chart(effects: pl.DataFrame) -> alt.HConcatChart:
    """Every estimated level and slope effect with its 95% interval, one panel each (Altair)."""
    shown = effects.filter(pl.col("estimated")).select("effect", "name", "estimate", "lo", "hi", "shrinkage")
    panels = []
    for effect, title in (("level", "level effect (change of log A)"), ("slope", "slope effect (change of alpha)")):
        part = shown.filter(pl.col("effect") == effect)
        y = alt.Y("name:N", title=None, sort=None)
        rule = alt.Chart(part).mark_rule().encode(x=alt.X("lo:Q", title=title), x2="hi:Q", y=y)
        point = (
            alt.Chart(part)
            .mark_point(filled=True)
            .encode(x="estimate:Q", y=y, tooltip=["name", "estimate", "lo", "hi", "shrinkage"])
        )
        zero = alt.Chart(pl.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[3, 3], color="#999").encode(x="x:Q")
        panels.append((rule + point + zero).properties(width=320, title=title))
    return alt.hconcat(*panels)


def space_law_html(summary: dict[str, Any]) -> str:
    """The section's HTML for a ``space_summary`` dict."""
    p = summary["law_params"]
    ref = ", ".join(f"{k}={v}" for k, v in summary["reference"].items())
    head = (
        f"{summary['n_runs']} runs at {summary['compute_sizes']} compute sizes; E = {p['E']['estimate']:.4g} "
        f"[{p['E']['lo']:.4g}, {p['E']['hi']:.4g}]; reference architecture ({ref}): alpha = "
        f"{p['alpha']['estimate']:.4g} [{p['alpha']['lo']:.4g}, {p['alpha']['hi']:.4g}]. Noise: {summary['noise']}."
    )
    effects = pl.DataFrame(summary["effects"])
    ranking = pl.DataFrame(summary["ranking"]).select(
        "rank", "arch", "predicted_loss", "lo", "hi", "p_best", "p_best_mc_se", "trained_runs", "trained_sizes"
    )
    parts = [note_paragraph(html.escape(NOTE)), f"<p>{html.escape(head)}</p>"]
    if effects.height and effects["estimated"].any():
        parts.append(figure(effects_chart(effects)))
    parts.append(html_table(effects.select("effect", "name", "estimate", "lo", "hi", "shrinkage", "meaning", "note")))
    parts.append(
        f"<h3>Predicted at {summary['target_compute']:.3g} FLOPs ({html.escape(summary['target_source'])}): "
        f"best {ranking.height} of {summary['space_size']} architectures</h3>"
    )
    parts.append(html_table(ranking))
    todo = summary["what_to_train"]
    if todo:
        parts.append("<h3>What to train next</h3><ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in todo) + "</ul>")
    return "\n".join(parts)
