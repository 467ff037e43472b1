"""Altair charts built from long-form polars frames.

Every chart starts from ``_base`` (shared size and theme) and is a layer of simple marks, so
``chart.to_dict()`` has a predictable structure that tests check. Charts never embed more than
``MAX_ROWS`` rows per dataset: curves are downsampled per trial and restricted to the best trials,
dominated Pareto points are sampled; Altair's own 5,000-row limit is raised to ``MAX_ROWS`` only
inside ``save_chart``/``chart_svg`` (``rows_allowed``), never globally.

Charts only draw: fits and frames come prepared (``scaling``, ``pareto``, ``effects``).
``build_chart(dirs, kind)`` loads results directories, asks those modules for the kind's data and
draws it; it is what ``archscale plot`` and the report call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import polars as pl

from . import effects as fx
from .fits import ChinchillaFit, IsoFlopFit, LawFit, compute_budgets
from .loaders import PathLike, length_losses, load_curves, load_trials
from .pareto import pareto_front
from .runs import NoData, completed, series_column
from .scaling import isoflop_fit, scaling_fits

__all__ = [
    "KINDS",
    "MAX_ROWS",
    "NoData",
    "build_chart",
    "chart_spec",
    "chart_svg",
    "curves_chart",
    "effects_chart",
    "fit_lines",
    "importance_chart",
    "isoflop_chart",
    "length_chart",
    "pareto_chart",
    "rows_allowed",
    "save_chart",
    "scaling_chart",
]

KINDS: tuple[str, ...] = ("scaling", "isoflop", "pareto", "curves", "effects", "importance", "length")
MAX_ROWS = 20_000
WIDTH, HEIGHT = 560, 340


@contextlib.contextmanager
def rows_allowed(max_rows: int = MAX_ROWS) -> Iterator[None]:
    """Raise Altair's embedded-row limit to ``max_rows`` for the duration of the block."""
    with alt.data_transformers.enable("default", max_rows=max_rows):
        yield


def _count_axis(column: str, values: Any = None) -> alt.Axis:
    """Readable log-axis labels: FLOPs in scientific notation (3e+18), counts with SI prefixes
    (120k, 35M, 2G). Over 2+ decades of ``values``, one labelled tick per decade."""
    fmt = ".0e" if column in ("compute", "flops_per_token") else "~s"
    ticks = None
    if values is not None:
        v = np.asarray(values, float)
        v = v[np.isfinite(v) & (v > 0)]
        if v.size and np.log10(v.max() / v.min()) >= 2:
            ticks = [
                float(10.0**k) for k in range(int(np.ceil(np.log10(v.min()))), int(np.floor(np.log10(v.max()))) + 1)
            ]
    return (
        alt.Axis(format=fmt, labelOverlap="greedy", values=ticks)
        if ticks
        else alt.Axis(format=fmt, labelOverlap="greedy")
    )


def _base(data: pl.DataFrame, title: str = "") -> alt.Chart:
    return alt.Chart(data, title=title).properties(width=WIDTH, height=HEIGHT)


# ---------------------------------------------------------------------------------------------
# scaling
# ---------------------------------------------------------------------------------------------


def _fit_curve(fit: LawFit, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted loss along ``grid`` (x for a power law, compute for Chinchilla) and its interval."""
    if isinstance(fit, ChinchillaFit):
        alloc = fit.optimal_allocation(grid)
        nan = np.full(grid.shape, np.nan)
        return alloc["loss"], alloc.get("loss_lo", nan), alloc.get("loss_hi", nan)
    lo, hi = fit.predict_interval(grid)
    return fit.predict(grid), lo, hi


def fit_lines(
    fits: Mapping[str, LawFit], x_min: float, x_max: float, data_max: Mapping[str, float], n: int = 80
) -> pl.DataFrame:
    """Long-form fitted curves: one row per (series, x) with ``loss, lo, hi, extrapolated``."""
    grid = np.geomspace(x_min, x_max, n)
    frames = []
    for name, fit in fits.items():
        pred, lo, hi = _fit_curve(fit, grid)
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
    xs = alt.X("x:Q", title=x, scale=alt.Scale(type="log", nice=False), axis=_count_axis(x, [x_min, x_max]))
    ys = alt.Y("loss:Q", title=f"{loss} (nats/token)", scale=alt.Scale(type="log", nice=False, zero=False))
    dots = (
        _base(pts, f"{loss} vs {x}")
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
            _base(lines.drop_nulls(["lo", "hi"]))
            .mark_area(opacity=0.18)
            .encode(xs, alt.Y("lo:Q"), alt.Y2("hi:Q"), color)
        )
        line = (
            _base(lines)
            .mark_line()
            .encode(xs, ys, color, strokeDash=alt.StrokeDash("extrapolated:N", title="extrapolated"), detail="series:N")
        )
        layers = [band, line, dots]
    if target:
        rule = (
            _base(pl.DataFrame({"x": [float(target)]})).mark_rule(color="gray", strokeDash=[4, 4]).encode(alt.X("x:Q"))
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
    xs = alt.X("n:Q", title=f"{n} (N)", scale=alt.Scale(type="log", nice=False), axis=_count_axis(n, pts["n"]))
    ys = alt.Y("loss:Q", title=f"{loss} (nats/token)", scale=alt.Scale(zero=False))
    dots = (
        _base(pts, title)
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
            _base(parab).mark_line().encode(xs, ys, color),
            dots,
            _base(minima)
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


# ---------------------------------------------------------------------------------------------
# Pareto, curves, effects, importance, length generalisation
# ---------------------------------------------------------------------------------------------


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
        axis=_count_axis(x, pts[x] if log_x else None),
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
        _base(pts, f"Pareto front: {y} ({y_dir}) vs {x} ({x_dir})")
        .mark_point(size=40, filled=True)
        .encode(xs, ys, **encoding)
    )
    step = "step-after" if x_dir == "min" else "step-before"  # the front's attainable boundary
    line = _base(front.sort(x).select(x, y)).mark_line(interpolate=step, color="#d62728").encode(xs, ys)
    return alt.layer(line, dots)


def curves_chart(curves: pl.DataFrame, *, y: str = "eval_loss", color: str = "label") -> alt.LayerChart:
    """Learning curves: ``y`` against tokens, one line per trial, coloured by ``color``."""
    data = curves.select("run", "trial_id", "tokens", y, color=pl.col(color).cast(pl.String)).drop_nulls([y])
    enc = {
        "x": alt.X(
            "tokens:Q",
            title="tokens",
            scale=alt.Scale(type="log", nice=False),
            axis=_count_axis("tokens", data["tokens"]),
        ),
        "y": alt.Y(f"{y}:Q", title=f"{y} (nats/token)", scale=alt.Scale(zero=False, type="log", nice=False)),
        "color": alt.Color("color:N", title=color),
        "detail": alt.Detail(["run:N", "trial_id:Q"]),
        "tooltip": ["run:N", "trial_id:Q", "color:N", "tokens:Q", alt.Tooltip(f"{y}:Q", format=".4f")],
    }
    return alt.layer(_base(data, f"learning curves ({y})").mark_line(opacity=0.7).encode(**enc))


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
        _base(importance, f"{title + ': ' if title else ''}parameter importance ({method})")
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
    base = _base(data, "length generalisation")
    return alt.layer(base.mark_line().encode(**enc), base.mark_point().encode(**enc))


# ---------------------------------------------------------------------------------------------
# From results directories
# ---------------------------------------------------------------------------------------------


def build_chart(
    dirs: PathLike | Sequence[PathLike],
    kind: str,
    *,
    x: str = "compute",
    y: str = "eval_loss",
    target: float | None = None,
    bootstrap: int = 100,
    max_trials: int = 30,
) -> alt.TopLevelMixin:
    """The chart of ``kind`` (one of ``KINDS``) for one or more results directories.

    Raises ``NoData`` (with the reason) when the directories hold nothing to draw for it.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown chart kind {kind!r}; allowed: {', '.join(KINDS)}")
    if kind == "importance":
        first = dirs if isinstance(dirs, (str, Path)) else list(dirs)[0]
        imp = fx.parameter_importance(first, metric=y)
        if imp.height == 0:
            raise NoData("no completed trials with varying parameters: nothing to rank")
        return importance_chart(imp)
    if kind == "curves":
        return curves_chart(fx.best_curves(dirs, y=y, max_trials=max_trials), y=y)
    if kind == "length":
        lengths = length_losses(load_trials(dirs, status="completed")).drop_nulls("eval_loss").collect()
        if lengths.height == 0:
            raise NoData("no eval_loss_by_length values")
        return length_chart(lengths)
    runs = completed(dirs)
    if runs.height == 0:
        raise NoData("no completed trials with an eval_loss yet")
    for flag, column in (("--y", y), ("--x", x)):
        if column not in runs.columns and (flag == "--y" or kind in ("scaling", "pareto")):
            numeric = ", ".join(c for c, t in runs.schema.items() if t.is_numeric())
            raise NoData(f"{flag} {column!r} is not a column of trials.parquet (numeric columns: {numeric})")
    if kind == "effects":  # an ASHA search at equal tokens seen, as the report compares it
        from .comparisons import comparable_trials

        eff = fx.axis_effects(comparable_trials(load_trials(dirs).collect(), load_curves(dirs), metric=y)[0], metric=y)
        if eff.height == 0:
            raise NoData("no architecture axis takes more than one value among completed trials")
        return effects_chart(eff)
    if kind == "pareto":
        other = "params" if x == "compute" else x
        return pareto_chart(runs, x=other, y=y, x_dir="max" if other == "tokens_per_s" else "min")
    if kind == "scaling":
        runs = series_column(runs)
        return scaling_chart(runs, scaling_fits(runs, x=x, series="series", bootstrap=bootstrap), x=x, target=target)
    # isoflop: one panel per series (a scaling-study family), since optima differ between families
    panels = []
    for (name,), part in series_column(runs).group_by("series", maintain_order=True):
        panels.append(isoflop_chart(part, isoflop_fit(part), title=f"isoFLOP curves: {name}"))
    return panels[0] if len(panels) == 1 else alt.hconcat(*panels)


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def chart_spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    with rows_allowed():
        return chart.to_dict()


def chart_svg(chart: alt.TopLevelMixin) -> str:
    """Render to a standalone SVG string with vl-convert (offline, no browser)."""
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart_spec(chart), vl_version=alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0])


def save_chart(chart: alt.TopLevelMixin, out: PathLike) -> Path:
    """Write ``chart`` to ``out``; the format follows the suffix: ``.html`` (self-contained, the
    Vega JavaScript inlined, works offline), ``.png``/``.svg`` (vl-convert), ``.json`` (spec)."""
    import json

    import vl_convert as vlc

    out = Path(out)
    suffix = out.suffix.lower()
    vl_version = alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]
    spec = chart_spec(chart)
    if suffix == ".json":
        out.write_text(json.dumps(spec, indent=1))
    elif suffix == ".svg":
        out.write_text(vlc.vegalite_to_svg(spec, vl_version=vl_version))
    elif suffix == ".png":
        out.write_bytes(vlc.vegalite_to_png(spec, vl_version=vl_version, scale=2))
    elif suffix == ".html":
        out.write_text(vlc.vegalite_to_html(spec, vl_version=vl_version, bundle=True))
    else:
        raise ValueError(f"{out}: unsupported output format {suffix!r}; allowed: .html, .png, .svg, .json")
    return out
