"""The pieces of the HTML report: its style, sections (and how a failed one is marked), notes, run.json shown."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from archscale.analysis.compare.lr import lr_sweep_summary
from archscale.analysis.data.loaders import redact_url
from archscale.analysis.data.runs import NoData
from archscale.spaces.record import REPEATED_DATA_EPOCHS

from .chart_base import chart_svg
from .html_tables import html_table

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
th { background: #f4f6f8; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
ul.warn { color: #8a6d3b; font-size: 13px; }
figure.chart { margin: 1rem 0; overflow-x: auto; } .nodata { color: #8a6d3b; background: #fcf8e3;
padding: .5rem .8rem; border-radius: 4px; }
pre { background: #f6f8fa; padding: .6rem; white-space: pre-wrap; word-break: break-word; font-size: 12px; }
.note { color: #555; font-size: 13px; }
.section-error { color: #a94442; background: #f2dede; padding: .5rem .8rem; border-radius: 4px; }
p.verdict { font-size: 15px; } ul.verdicts li { margin: .2rem 0; }
"""


def figure(chart: Any) -> str:
    return f'<figure class="chart">{chart_svg(chart)}</figure>'


def note_paragraph(text: str) -> str:
    """A grey note paragraph (``text`` is trusted HTML)."""
    return f'<p class="note">{text}</p>'


def comparison_caveats(trials: pl.DataFrame) -> str:
    """Notes for a comparison whose trials mix repeated and fresh data (`epochs`, spaces/record.py)
    or FLOP conventions (`flops_convention`); empty when they do not."""
    notes = []
    repeated = (trials["epochs"] >= REPEATED_DATA_EPOCHS).fill_null(False)  # spaces.record.repeats_data, vectorised
    if repeated.any() and not repeated.all():
        seen, fresh = trials["epochs"].filter(repeated), trials["epochs"].filter(~repeated).drop_nulls()
        low = f"{fresh.min():.2f}-{fresh.max():.2f} epochs" if fresh.len() else "unlimited data"
        notes.append(
            f"Mixed data repetition: {int(repeated.sum())} of {trials.height} trials read their training split "
            f">= {REPEATED_DATA_EPOCHS} times ({seen.min():.2f}-{seen.max():.2f} epochs), the others "
            f"{low}; a difference between the two groups may be repetition, not architecture."
        )
    conventions = trials["flops_convention"].drop_nulls().unique().sort().to_list()
    if len(conventions) > 1:
        notes.append(
            f"Mixed FLOP conventions ({', '.join(conventions)}): flops_per_token and compute are not comparable "
            "across them (spaces/counting.py); compare runs counted the same way."
        )
    return "".join(note_paragraph(html.escape(n)) for n in notes)


def nodata(reason: str) -> str:
    return f'<p class="nodata">No data: {html.escape(reason)}</p>'


def section(title: str, body: Callable[[], str]) -> str:
    """A section whose body may raise ``NoData`` (shown as such) or fail: shown as failed, with
    the error on the section's ``data-section-error`` attribute, never raised (one broken section
    must not take the report down)."""
    error = ""
    try:
        content = body()
    except NoData as exc:
        content = nodata(str(exc))
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        content = f'<p class="section-error">This section failed: {html.escape(error)}</p>'
    anchor = title.lower().replace(" ", "-")
    failed = f' data-section-error="{html.escape(error, quote=True)}"' if error else ""
    return f'<section id="{anchor}"{failed}><h2>{html.escape(title)}</h2>\n{content}\n</section>'


_FAILED_SECTION = re.compile(r'<section id="[^"]*" data-section-error="([^"]*)"><h2>(.*?)</h2>')


def section_errors(report: str | Path) -> dict[str, str]:
    """``{section title: error}`` for every section of a report that failed (empty: none did).
    ``report`` is the report's HTML or the path of a written report."""
    text = report.read_text(encoding="utf-8") if isinstance(report, Path) else report
    return {html.unescape(title): html.unescape(error) for error, title in _FAILED_SECTION.findall(text)}


def warnings_list(fits: dict[str, Any]) -> str:
    """The fits' warnings (parameters at the edge of the box, dropped budgets) as a list."""
    items = [f"<li>{html.escape(name)}: {html.escape(w)}</li>" for name, fit in fits.items() for w in fit.warnings]
    return f'<ul class="warn">{"".join(items)}</ul>' if items else ""


def refusals_list(refused: Mapping[str, str], law: str) -> str:
    """The one-line reasons ``law`` was not fitted or not identified for a family (``refused``:
    family -> why), shown instead of its table."""
    items = [f"<li>{html.escape(f'{law} {name}')}: {html.escape(why)}</li>" for name, why in refused.items()]
    return f'<ul class="nodata">{"".join(items)}</ul>' if items else ""


def interval_notes(fits: Mapping[str, Any]) -> str:
    """How each fit's intervals were made (bootstrap of design units, likelihood-ratio, none and why)."""
    items = [
        f"{html.escape(name)}: {html.escape(fit.interval_note)}" for name, fit in fits.items() if fit.interval_note
    ]
    return f'<p class="note">Intervals: {"; ".join(items)}.</p>' if items else ""


#: run.json keys never shown: where the study lives (may hold a password) is not a result.
HIDDEN_RUN_KEYS = ("storage",)


def describe_run(run: Mapping[str, Any]) -> dict[str, Any]:
    """``run.json`` for display: ``storage`` keys dropped at any depth, passwords in any URL
    masked, null and empty entries dropped (recursively)."""

    def compact(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {
                k: compact(v)
                for k, v in value.items()
                if k not in HIDDEN_RUN_KEYS and v is not None and v != [] and v != {}
            }
        if isinstance(value, list):
            return [compact(v) for v in value]
        return redact_url(value) if isinstance(value, str) else value

    return compact(run)


def space_table(space: Mapping[str, Any]) -> list[dict[str, str]]:
    """Rows ``{axis, fixed, searched}`` for every axis spec in a resolved space (any nesting:
    an axis spec is a mapping with one of ``value``, ``choices``, ``low``/``high``)."""
    rows: list[dict[str, str]] = []

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, spec in node.items():
            if not isinstance(spec, Mapping):
                continue
            name = f"{prefix}{key}"
            if any(k in spec for k in ("value", "choices", "low", "high")):
                searched = ""
                if spec.get("choices") is not None:
                    searched = ", ".join(map(str, spec["choices"]))
                elif spec.get("low") is not None or spec.get("high") is not None:
                    searched = f"[{spec.get('low')}, {spec.get('high')}]" + (" log" if spec.get("log") else "")
                fixed = "" if spec.get("value") is None else str(spec["value"])
                when = f" (when {spec['when']})" if spec.get("when") else ""
                rows.append({"axis": name, "fixed": fixed, "searched": searched + when})
            else:
                walk(spec, f"{name}.")

    walk(space, "")
    return rows


def one_line(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def run_summary(run: dict[str, Any]) -> str:
    """``run.json`` for people: scalars and objectives in a table, the space as one row per axis,
    everything else as compact JSON inside a collapsed <details> (no JavaScript needed)."""
    objectives = run.get("objectives") or []
    summary = {k: v for k, v in run.items() if not isinstance(v, (dict, list))}
    if objectives:
        summary["objectives"] = ", ".join(
            f"{o.get('name')} ({str(o.get('direction', 'minimize'))[:3]})" if isinstance(o, dict) else str(o)
            for o in objectives
        )
    if isinstance(run.get("budget"), dict):
        summary["budget"] = ", ".join(f"{k}={one_line(v)}" for k, v in run["budget"].items())
    table = pl.DataFrame({"field": list(summary), "value": [one_line(v) for v in summary.values()]})
    out = [html_table(table)]
    space = run.get("space")
    if isinstance(space, dict):
        rows = space_table(space)
        if rows:
            out.append("<h4>Space</h4>" + html_table(pl.DataFrame(rows)))
    rest = {k: v for k, v in run.items() if isinstance(v, (dict, list)) and k not in ("objectives", "budget")}
    if rest:
        body = "\n".join(f"<b>{html.escape(k)}</b>: {html.escape(one_line(v))}" for k, v in rest.items())
        out.append(f"<details><summary>Everything else in run.json</summary><pre>{body}</pre></details>")
    return "\n".join(out)


def lr_sweep_html(done: pl.DataFrame) -> str:
    """A study's lr sweep over the completed runs `done`: whether its lr (factor 1) was the best at
    every size (empty without one)."""
    sweep = lr_sweep_summary(done)
    if sweep.height == 0:
        return ""
    beaten = [
        f"{r['group']} at {r['planned_size']:,.0f} (factor {r['best_factor']:g})"
        for r in sweep.iter_rows(named=True)
        if r["verdict"].endswith("(resolved)")
    ]
    if beaten:
        lead = (
            f"The study's lr was beaten by a resolved margin at {len(beaten)} of {sweep.height} sizes: "
            f"{', '.join(beaten)}; the laws above are fitted at factor 1, so there they understate that size."
        )
    else:
        lead = f"No size's lr was beaten by a resolved margin ({sweep.height} sizes swept)."
    optima = sweep["optimum_factor"].drop_nulls()
    if optima.len():
        lead += f" The fitted optimum lies at factors {optima.min():.3g}-{optima.max():.3g} of the study's lr."
    note = (
        "Every size was also trained at multiples of its lr (lr_sweep); the scaling fits above use factor 1 "
        "only. diff: the best factor's loss minus factor 1's, paired by seed, its interval Bonferroni-corrected "
        "for the factors it was picked from; optimum_factor: the parabola in log lr fitted to the size's runs "
        f"(null, with why, where they do not identify it). {lead}"
    )
    return "<h3>Learning rate at every size</h3>" + note_paragraph(note) + html_table(sweep.drop("run"))
