"""Charts of a search's runs: the Pareto front, learning curves, axis effects, importance, length."""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

from archscale.analysis.compare.pareto import pareto_front

from .chart_base import WIDTH, base, count_axis


def pareto_chart(
    frame: pl.DataFrame, *, x: str, y: str, x_dir: str = "min", y_dir: str = "min", max_points: int = 5_000
) -> alt.LayerChart:
    """Scatter of ``x`` against ``y`` with the non-dominated front drawn as a step line; hover for
    the trial. At most ``max_points`` dominated points are drawn (a fixed-seed sample)."""
    df = pareto_front(frame.drop_nulls([x, y]), {x: x_dir, y: y_dir})  # type: ignore[dict-item]
    front, rest = df.filter(pl.col("on_front")), df.filter(~pl.col("on_front"))
    if rest.height > max_points:
        rest = rest.sample(n=max_points, seed=0)
    keep = [c for c in ("run", "trial_id", "label", "params", "eval_loss", "tokens_per_s", x, y) if c in df.columns]
    pts = pl.concat([front, rest]).select(*dict.fromkeys(keep), "on_front")
    tooltip = [alt.Tooltip(f"{c}:{'N' if pts[c].dtype == pl.String else 'Q'}") for c in dict.fromkeys(keep)]
    log_x = x in ("params", "non_embedding_params", "compute", "flops_per_token", "kv_cache_bytes_per_token")
    xs = alt.X(
        f"{x}:Q",
        title=x,
        scale=alt.Scale(zero=False, type="log" if log_x else "linear"),
        axis=count_axis(x, pts[x] if log_x else None),
    )
    ys = alt.Y(f"{y}:Q", title=y, scale=alt.Scale(zero=False))
    encoding: dict[str, Any] = {
        "color": alt.Color(
            "on_front:N", title="on front", scale=alt.Scale(domain=[True, False], range=["#d62728", "#9aa7b1"])
        ),
        "tooltip": tooltip,
    }
    if "run" in pts.columns and pts["run"].n_unique() > 1:
        encoding["shape"] = alt.Shape("run:N", title="run")
    dots = (
        base(pts, f"Pareto front: {y} ({y_dir}) vs {x} ({x_dir})")
        .mark_point(size=40, filled=True)
        .encode(xs, ys, **encoding)
    )
    step = "step-after" if x_dir == "min" else "step-before"  # the front's attainable boundary
    line = base(front.sort(x).select(x, y)).mark_line(interpolate=step, color="#d62728").encode(xs, ys)
    return alt.layer(line, dots)


def curves_chart(curves: pl.DataFrame, *, y: str = "eval_loss", color: str = "label") -> alt.LayerChart:
    """Learning curves: ``y`` against tokens, one line per trial, coloured by ``color``."""
    data = curves.select("run", "trial_id", "tokens", y, color=pl.col(color).cast(pl.String)).drop_nulls([y])
    enc = {
        "x": alt.X(
            "tokens:Q",
            title="tokens",
            scale=alt.Scale(type="log", nice=False),
            axis=count_axis("tokens", data["tokens"]),
        ),
        "y": alt.Y(f"{y}:Q", title=f"{y} (nats/token)", scale=alt.Scale(zero=False, type="log", nice=False)),
        "color": alt.Color("color:N", title=color),
        "detail": alt.Detail(["run:N", "trial_id:Q"]),
        "tooltip": ["run:N", "trial_id:Q", "color:N", "tokens:Q", alt.Tooltip(f"{y}:Q", format=".4f")],
    }
    return alt.layer(base(data, f"learning curves ({y})").mark_line(opacity=0.7).encode(**enc))


#: How an effect reads, and its colour: only a resolved difference is coloured as better or worse.
EFFECT_READINGS = {
    "better (resolved)": "#2ca02c",
    "worse (resolved)": "#d62728",
    "within noise": "#9e9e9e",
    "no interval": "#d0d0d0",
    "baseline": "#607d8b",
}


def effects_chart(effects: pl.DataFrame) -> alt.FacetChart:
    """Effect of each axis value against the axis's baseline, with intervals (one panel per axis),
    coloured by what it supports (``verdict`` from ``axis_effects``: grey when within noise)."""
    several_runs = "run" in effects.columns and effects["run"].n_unique() > 1
    label = (
        pl.format("{} (n={}) · {}", pl.col("value"), pl.col("n"), pl.col("run"))
        if several_runs
        else pl.format("{} (n={})", pl.col("value"), pl.col("n"))
    )
    verdict = pl.col("verdict") if "verdict" in effects.columns else pl.lit("within noise")
    reading = (
        pl.when(verdict == "resolved")
        .then(pl.when(pl.col("effect") < 0).then(pl.lit("better (resolved)")).otherwise(pl.lit("worse (resolved)")))
        .otherwise(verdict)
    )
    data = effects.with_columns(label=label, reading=reading)
    base = alt.Chart().properties(width=WIDTH - 120, height=alt.Step(18))
    tooltip = ["axis:N", "value:N", "baseline:N", "n:Q", "reading:N"]
    tooltip += [f"{c}:N" for c in ("method",) if c in effects.columns]
    tooltip += [alt.Tooltip(f"{c}:Q", format=".4f") for c in ("effect", "lo", "hi", "p_holm") if c in effects.columns]
    bars = base.mark_bar().encode(
        x=alt.X("effect:Q", title="Δ loss vs baseline (negative = better)"),
        y=alt.Y("label:N", title=None, sort="x"),
        color=alt.Color(
            "reading:N",
            title="reading",
            scale=alt.Scale(domain=list(EFFECT_READINGS), range=list(EFFECT_READINGS.values())),
        ),
        tooltip=tooltip,
    )
    rules = base.mark_rule().encode(x="lo:Q", x2="hi:Q", y=alt.Y("label:N", sort="x"))
    return alt.layer(bars, rules, data=data).facet(row=alt.Row("axis:N", title=None)).resolve_scale(y="independent")


def importance_chart(importance: pl.DataFrame, *, title: str = "") -> alt.LayerChart:
    """Horizontal bars of parameter importance (the method is in the title)."""
    method = importance["method"][0] if importance.height else ""
    bars = (
        base(importance, f"{title + ': ' if title else ''}parameter importance ({method})")
        .mark_bar()
        .encode(
            x=alt.X("importance:Q"),
            y=alt.Y("param:N", sort="-x", title=None),
            tooltip=["param:N", alt.Tooltip("importance:Q", format=".3f")],
        )
        .properties(height=alt.Step(20))
    )
    return alt.layer(bars)


def length_chart(lengths: pl.DataFrame) -> alt.LayerChart:
    """Length generalisation: mean eval loss by context length, one line per label (over seeds)."""
    data = (
        lengths.group_by("label", "context_length")
        .agg(eval_loss=pl.col("eval_loss").mean(), n=pl.len())
        .sort("context_length")
    )
    enc = dict(
        x=alt.X("context_length:Q", title="context length (tokens)", scale=alt.Scale(type="log", base=2, nice=False)),
        y=alt.Y("eval_loss:Q", title="eval loss (nats/token)", scale=alt.Scale(zero=False)),
        color=alt.Color("label:N"),
        tooltip=["label:N", "context_length:Q", alt.Tooltip("eval_loss:Q", format=".4f"), "n:Q"],
    )
    chart = base(data, "length generalisation")
    return alt.layer(chart.mark_line().encode(**enc), chart.mark_point().encode(**enc))
