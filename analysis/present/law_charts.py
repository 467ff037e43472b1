"""Charts of fitted laws: loss against size or compute with each family's law and its band; isoFLOP curves."""

from __future__ import annotations

from collections.abc import Mapping

import altair as alt
import numpy as np
import polars as pl

from archscale.analysis.laws.inputs import compute_budgets
from archscale.analysis.laws.isoflop import IsoFlopFit
from archscale.analysis.laws.record import LawFit

from .chart_base import base, count_axis


def fit_lines(
    fits: Mapping[str, LawFit], x_min: float, x_max: float, data_max: Mapping[str, float], n: int = 80
) -> pl.DataFrame:
    """Long-form fitted curves: one row per (series, x) with ``loss, lo, hi, extrapolated``."""
    grid = np.geomspace(x_min, x_max, n)
    frames = []
    for name, fit in fits.items():
        pred, lo, hi = fit.curve(grid)
        frames.append(
            pl.DataFrame(
                {"series": name, "x": grid, "loss": pred, "lo": lo, "hi": hi, "extrapolated": grid > data_max[name]}
            )
        )
    schema = {
        "series": pl.String,
        "x": pl.Float64,
        "loss": pl.Float64,
        "lo": pl.Float64,
        "hi": pl.Float64,
        "extrapolated": pl.Boolean,
    }
    return pl.concat(frames).with_columns(pl.col("lo", "hi").fill_nan(None)) if frames else pl.DataFrame(schema=schema)


def scaling_chart(
    points: pl.DataFrame,
    fits: Mapping[str, LawFit],
    *,
    x: str = "compute",
    loss: str = "eval_loss",
    series: str = "series",
    target: float | None = None,
) -> alt.LayerChart:
    """Loss against ``x`` on log-log axes: one point per run, fitted curves (dashed beyond the
    data) and the bootstrap band, extended to ``target`` when given."""
    pts = points.select(
        series=pl.col(series).cast(pl.String),
        x=pl.col(x).cast(pl.Float64),
        loss=pl.col(loss),
        label=pl.col("label") if "label" in points.columns else pl.lit(""),
    )
    x_min = float(pts["x"].min())
    x_max = max(float(pts["x"].max()), target or 0.0)
    data_max = dict(pts.group_by("series").agg(pl.col("x").max()).iter_rows())
    lines = fit_lines(fits, x_min, x_max, data_max)
    color = alt.Color("series:N", title=series)
    xs = alt.X("x:Q", title=x, scale=alt.Scale(type="log", nice=False), axis=count_axis(x, [x_min, x_max]))
    ys = alt.Y("loss:Q", title=f"{loss} (nats/token)", scale=alt.Scale(type="log", nice=False, zero=False))
    dots = (
        base(pts, f"{loss} vs {x}")
        .mark_circle(size=50, opacity=0.8)
        .encode(
            xs,
            ys,
            color,
            tooltip=["series:N", "label:N", alt.Tooltip("x:Q", format=".3g"), alt.Tooltip("loss:Q", format=".4f")],
        )
    )
    layers: list[alt.Chart] = [dots]
    if lines.height:
        band = (
            base(lines.drop_nulls(["lo", "hi"]))
            .mark_area(opacity=0.18)
            .encode(xs, alt.Y("lo:Q"), alt.Y2("hi:Q"), color)
        )
        line = (
            base(lines)
            .mark_line()
            .encode(xs, ys, color, strokeDash=alt.StrokeDash("extrapolated:N", title="extrapolated"), detail="series:N")
        )
        layers = [band, line, dots]
    if target:
        rule = (
            base(pl.DataFrame({"x": [float(target)]})).mark_rule(color="gray", strokeDash=[4, 4]).encode(alt.X("x:Q"))
        )
        layers.append(rule)
    return alt.layer(*layers)


# ---------------------------------------------------------------------------------------------
# isoFLOP
# ---------------------------------------------------------------------------------------------


def isoflop_chart(
    runs: pl.DataFrame,
    iso: IsoFlopFit | None,
    *,
    n: str = "params",
    loss: str = "eval_loss",
    title: str = "isoFLOP curves",
) -> alt.LayerChart:
    """Loss against N per compute budget, the fitted parabolas (in log N) and their minima."""
    budget = compute_budgets(runs["compute"].to_numpy()) if runs.height else np.array([], int)
    pts = (
        runs.select(n=pl.col(n).cast(pl.Float64), loss=pl.col(loss), compute=pl.col("compute"))
        .with_columns(budget_id=pl.Series(budget, dtype=pl.Int64))
        .with_columns(budget=pl.format("C≈10^{}", pl.col("compute").log10().mean().over("budget_id").round(2)))
    )
    color = alt.Color("budget:N", title="compute budget", sort=alt.SortField("compute"))
    xs = alt.X("n:Q", title=f"{n} (N)", scale=alt.Scale(type="log", nice=False), axis=count_axis(n, pts["n"]))
    ys = alt.Y("loss:Q", title=f"{loss} (nats/token)", scale=alt.Scale(zero=False))
    dots = (
        base(pts, title)
        .mark_circle(size=45)
        .encode(
            xs, ys, color, tooltip=["budget:N", alt.Tooltip("n:Q", format=".3g"), alt.Tooltip("loss:Q", format=".4f")]
        )
    )
    layers: list[alt.Chart] = [dots]
    if iso is not None:
        vert = (
            iso.budgets.with_row_index("budget_id")
            .drop_nulls("n_opt")
            .with_columns(budget=pl.format("C≈10^{}", pl.col("compute").log10().round(2)))
        )
        grid = pl.DataFrame({"t": np.linspace(0.0, 1.0, 40)})
        lo, hi = pl.col("window_lo").log(), pl.col("window_hi").log()
        parab = (  # each parabola over the sizes it was fitted to (its window), not the whole budget
            vert.join(grid, how="cross")
            .with_columns(log_n=lo + (hi - lo) * pl.col("t"))
            .select(
                "budget",
                "compute",
                n=pl.col("log_n").exp(),
                loss=pl.col("loss_opt") + pl.col("curvature") * (pl.col("log_n") - pl.col("n_opt").log()) ** 2,
            )
        )
        minima = vert.select("budget", "compute", n=pl.col("n_opt"), loss=pl.col("loss_opt"))
        layers = [
            base(parab).mark_line().encode(xs, ys, color),
            dots,
            base(minima)
            .mark_point(shape="diamond", size=140, filled=True, color="black")
            .encode(
                xs,
                ys,
                tooltip=[
                    "budget:N",
                    alt.Tooltip("n:Q", title="N_opt", format=".3g"),
                    alt.Tooltip("loss:Q", format=".4f"),
                ],
            ),
        ]
    return alt.layer(*layers)
