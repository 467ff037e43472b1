"""The chart kinds: one ``CHARTS`` table from a kind's name to the function that draws it from results.

Every chart starts from ``chart_base.base`` (shared size and theme) and is a layer of simple marks,
so ``chart.to_dict()`` has a predictable structure that tests check. Charts only draw: fits and
frames come prepared (``compare.scaling``, ``compare.pareto``, ``compare.effects``).
``build_chart(dirs, kind)`` looks ``kind`` up in ``CHARTS``, whose entry loads the directories,
asks those modules for the kind's data and draws it; it is what ``archscale plot --kind`` and the
report call. A new kind is one function ``(dirs, request) -> chart`` and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import polars as pl

from archscale.analysis.compare.best import best_curves
from archscale.analysis.compare.effects import axis_effects
from archscale.analysis.compare.importance import parameter_importance
from archscale.analysis.compare.scaling import isoflop_fit, scaling_fits
from archscale.analysis.data.cells import comparable_trials
from archscale.analysis.data.loaders import PathLike, length_losses, load_curves, load_trials
from archscale.analysis.data.runs import NoData, completed, series_column

from .chart_base import MAX_ROWS, chart_spec, chart_svg, rows_allowed, save_chart
from .law_charts import fit_lines, isoflop_chart, scaling_chart
from .run_charts import curves_chart, effects_chart, importance_chart, length_chart, pareto_chart

__all__ = [
    "CHARTS",
    "KINDS",
    "MAX_ROWS",
    "ChartRequest",
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

Dirs = PathLike | Sequence[PathLike]


@dataclass(frozen=True)
class ChartRequest:
    """What ``archscale plot`` asks of a chart: its axes, the target compute, the bootstrap size
    for the fits it draws and how many trials' curves it shows (a kind reads what it needs)."""

    x: str = "compute"
    y: str = "eval_loss"
    target: float | None = None
    bootstrap: int = 100
    max_trials: int = 30


def _completed_runs(dirs: Dirs, request: ChartRequest, *, needs_x: bool) -> pl.DataFrame:
    """The completed runs, with ``--y`` (and ``--x`` where the kind plots it) checked to be columns."""
    runs = completed(dirs)
    if runs.height == 0:
        raise NoData("no completed trials with an eval_loss yet")
    for flag, column, needed in (("--y", request.y, True), ("--x", request.x, needs_x)):
        if needed and column not in runs.columns:
            numeric = ", ".join(c for c, t in runs.schema.items() if t.is_numeric())
            raise NoData(f"{flag} {column!r} is not a column of trials.parquet (numeric columns: {numeric})")
    return runs


def _scaling(dirs: Dirs, request: ChartRequest) -> alt.TopLevelMixin:
    runs = series_column(_completed_runs(dirs, request, needs_x=True))
    fits = scaling_fits(runs, x=request.x, series="series", bootstrap=request.bootstrap)
    return scaling_chart(runs, fits, x=request.x, target=request.target)


def _isoflop(dirs: Dirs, request: ChartRequest) -> alt.TopLevelMixin:
    """One panel per series (a scaling-study family), since optima differ between families."""
    runs = _completed_runs(dirs, request, needs_x=False)
    panels = [
        isoflop_chart(part, isoflop_fit(part), title=f"isoFLOP curves: {name}")
        for (name,), part in series_column(runs).group_by("series", maintain_order=True)
    ]
    return panels[0] if len(panels) == 1 else alt.hconcat(*panels)


def _pareto(dirs: Dirs, request: ChartRequest) -> alt.TopLevelMixin:
    runs = _completed_runs(dirs, request, needs_x=True)
    other = "params" if request.x == "compute" else request.x
    return pareto_chart(runs, x=other, y=request.y, x_dir="max" if other == "tokens_per_s" else "min")


def _curves(dirs: Dirs, request: ChartRequest) -> alt.TopLevelMixin:
    return curves_chart(best_curves(dirs, y=request.y, max_trials=request.max_trials), y=request.y)


def _effects(dirs: Dirs, request: ChartRequest) -> alt.TopLevelMixin:
    """Axis effects; an ASHA search at equal tokens seen, as the report compares it."""
    _completed_runs(dirs, request, needs_x=False)
    trials = comparable_trials(load_trials(dirs).collect(), load_curves(dirs), metric=request.y)[0]
    eff = axis_effects(trials, metric=request.y)
    if eff.height == 0:
        raise NoData("no architecture axis takes more than one value among completed trials")
    return effects_chart(eff)


def _importance(dirs: Dirs, request: ChartRequest) -> alt.TopLevelMixin:
    first = dirs if isinstance(dirs, (str, Path)) else list(dirs)[0]
    imp = parameter_importance(first, metric=request.y)
    if imp.height == 0:
        raise NoData("no completed trials with varying parameters: nothing to rank")
    return importance_chart(imp)


def _length(dirs: Dirs, request: ChartRequest) -> alt.TopLevelMixin:
    lengths = length_losses(load_trials(dirs, status="completed")).drop_nulls("eval_loss").collect()
    if lengths.height == 0:
        raise NoData("no eval_loss_by_length values")
    return length_chart(lengths)


#: Every chart kind, by the name ``archscale plot --kind`` and the report use.
CHARTS: dict[str, Callable[[Dirs, ChartRequest], alt.TopLevelMixin]] = {
    "scaling": _scaling,
    "isoflop": _isoflop,
    "pareto": _pareto,
    "curves": _curves,
    "effects": _effects,
    "importance": _importance,
    "length": _length,
}
KINDS: tuple[str, ...] = tuple(CHARTS)


def build_chart(
    dirs: Dirs,
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
    if kind not in CHARTS:
        raise ValueError(f"unknown chart kind {kind!r}; allowed: {', '.join(KINDS)}")
    request = ChartRequest(x=x, y=y, target=target, bootstrap=bootstrap, max_trials=max_trials)
    return CHARTS[kind](dirs, request)
