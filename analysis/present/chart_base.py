"""What every chart shares: its base (size, theme), readable count axes, the row limit, and output.

Charts never embed more than ``MAX_ROWS`` rows per dataset: curves are downsampled per trial and
restricted to the best trials, dominated Pareto points are sampled; Altair's own 5,000-row limit is
raised to ``MAX_ROWS`` only inside ``save_chart``/``chart_svg`` (``rows_allowed``), never globally.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import polars as pl

from archscale.analysis.data.loaders import PathLike

MAX_ROWS = 20_000
WIDTH, HEIGHT = 560, 340


@contextlib.contextmanager
def rows_allowed(max_rows: int = MAX_ROWS) -> Iterator[None]:
    """Raise Altair's embedded-row limit to ``max_rows`` for the duration of the block."""
    with alt.data_transformers.enable("default", max_rows=max_rows):
        yield


def count_axis(column: str, values: Any = None) -> alt.Axis:
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


def base(data: pl.DataFrame, title: str = "") -> alt.Chart:
    return alt.Chart(data, title=title).properties(width=WIDTH, height=HEIGHT)


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
