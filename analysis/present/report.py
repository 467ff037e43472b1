"""The self-contained HTML report.

``write_report(dirs, out)`` writes one page that works offline: every chart is rendered to an
inline SVG with vl-convert (no JavaScript at all, so nothing is fetched from a CDN and the page
opens from a file or an e-mail attachment; the price is that hover tooltips are only available in
``archscale plot --out x.html``). Sections: verdicts (what the data supports, and how strongly),
best architectures, the Pareto front, scaling fits (power laws, Chinchilla Approach 3 and 2,
leave-largest-out, ranking and effective compute multipliers), effects, parameter importance,
learning curves, length generalisation, and last what was run. "One law for the space" (the
space law's effects, ranking and what to train next) appears only when the runs identify that law
(2+ compute sizes).

The report computes nothing itself: each section calls the library function a notebook would
(``verdicts``, ``scaling_analysis``, ``pareto_analysis``, ``axis_effects``, ...) and renders what it returns. A
section with nothing to show says why ("No data: ..."); a section that raises is shown as failed
("This section failed: ...", on a ``<section data-section-error="...">``), and
``section_errors(report)`` lists those, so a test or a script can insist there are none.
"""

from __future__ import annotations

import datetime as _dt
import functools
import html
from collections.abc import Sequence
from pathlib import Path

import altair as alt
import polars as pl

from archscale.analysis.compare.best import best_architectures
from archscale.analysis.compare.effects import axis_effects
from archscale.analysis.compare.importance import parameter_importance
from archscale.analysis.compare.pareto import cost_objectives, pareto_analysis
from archscale.analysis.compare.scaling import ScalingAnalysis, parameter_table, scaling_analysis
from archscale.analysis.compare.shapes import rung_shapes, shape_rules
from archscale.analysis.compare.space_summary import space_summary
from archscale.analysis.compare.verdicts import verdicts
from archscale.analysis.data.cells import comparable_trials
from archscale.analysis.data.loaders import PathLike, load_curves, load_run, load_trials
from archscale.analysis.data.predictions import load_predictions
from archscale.analysis.data.runs import NoData

from . import charts as ch
from .html_tables import html_table
from .predictions import ladder_chart, prediction_tables
from .report_parts import (
    CSS,
    comparison_caveats,
    describe_run,
    figure,
    interval_notes,
    lr_sweep_html,
    nodata,
    note_paragraph,
    refusals_list,
    run_summary,
    section,
    warnings_list,
)
from .space_law import space_law_html
from .verdict_text import verdict_lines

PREDICTED_NOTE = (
    "Each architecture's law in compute, fitted on its ladder with E shared by all ladders (95% intervals from a "
    "parametric bootstrap), or, where the ladders show no flattening, a straight line in log-log (law 'no floor "
    "(E = 0)', t intervals; optimistic if the loss flattens before the target). The small-scale rank is the "
    "ranking plain search at the first rung would give."
)


class _Report:
    def __init__(self, dirs: Sequence[PathLike], *, bootstrap: int, target: float | None) -> None:
        self.dirs = [Path(d) for d in dirs]
        self.bootstrap = bootstrap
        self.trials = load_trials(self.dirs).collect()
        self.done = self.trials.filter((pl.col("status") == "completed") & pl.col("eval_loss").is_finite())
        self.target = target

    @functools.cached_property
    def _scaling(self) -> ScalingAnalysis | Exception:
        """``scaling_analysis`` of the completed runs (or what it raised), computed once: the
        verdicts and the scaling section both show it, and it refits every family."""
        try:
            return scaling_analysis(self.done, bootstrap=self.bootstrap, target=self.target)
        except Exception as exc:  # raised again by the section that shows it
            return exc

    # -- sections ------------------------------------------------------------------------------
    def what_was_run(self) -> str:
        parts = []
        for d in self.dirs:
            parts.append(f"<h3>{html.escape(d.resolve().name)}</h3>")
            run = describe_run(load_run(d))
            if not run:
                parts.append(nodata(f"{d / 'run.json'} is missing"))
                continue
            parts.append(run_summary(run))
        if self.trials.height == 0:
            return "\n".join(parts) + nodata("no trials yet (trials.parquet missing or empty)")
        counts = self.trials.group_by("run", "status").len().sort("run", "status")
        pivot = counts.pivot(on="status", index="run", values="len").fill_null(0)
        return "\n".join(parts) + "<h3>Trials by status</h3>" + html_table(pivot)

    def best(self) -> str:
        if self.done.height == 0:
            raise NoData("no completed trials with an eval_loss yet")
        best = best_architectures(self.done, top=10)
        note = (
            "Per run, the 10 best architectures by mean final eval loss (nats/token) over seed replicas; "
            "std across seeds."
        )
        return f'<p class="note">{note}</p>' + comparison_caveats(self.done) + html_table(best, max_rows=200)

    def pareto(self) -> str:
        p = pareto_analysis(self.done, costs=cost_objectives(self.done, [load_run(d) for d in self.dirs]))
        out = [
            figure(ch.pareto_chart(p.trials, x=name, y="eval_loss", x_dir=direction))
            for name, direction in p.costs.items()
        ]
        name = next(iter(p.costs))
        out.append(f"<h3>Front ({name}, eval_loss), per run</h3>" + html_table(p.fronts[name]))
        if p.hypervolumes.height:
            out.append(
                "<h3>Hypervolume</h3>"
                + note_paragraph(
                    "Area dominated by each run's front, bounded by the worst value of each objective over all runs "
                    "(larger is better; comparable across runs of this report only)."
                )
                + html_table(p.hypervolumes)
            )
        return "\n".join(out)

    def scaling(self) -> str:
        s = self._scaling
        if isinstance(s, Exception):
            raise s
        return "\n".join([self._power_laws(s), self._approach3(s), self._approach2(s), lr_sweep_html(self.done)])

    def _power_laws(self, s: ScalingAnalysis) -> str:
        note = (
            "Power laws L = E + A·x<sup>−α</sup> in compute, per family on all its runs (seeds of a grid point are "
            f"one design unit); band: 95% interval ({s.bootstrap} resamples asked for; see the interval column); "
            f"dashed: extrapolation to C = {s.target:.3g} FLOPs. A parameter the runs do not bound has no estimate."
        )
        out = [f'<p class="note">{note}</p>', figure(ch.scaling_chart(s.runs, s.power, x="compute", target=s.target))]
        if s.power:
            out.append(
                "<h3>Power law in compute</h3>"
                + html_table(parameter_table(s.power))
                + interval_notes(s.power)
                + warnings_list(s.power)
            )
        out.append(refusals_list(s.power_refused, "power law"))
        return "\n".join(out)

    def _approach3(self, s: ScalingAnalysis) -> str:
        a3 = s.approach3
        refused = refusals_list(s.approach3_refused, "Approach 3")
        if a3 is None or not a3.fits:
            return "<h3>Chinchilla Approach 3</h3>" + (
                refused or note_paragraph("Approach 3 not shown: no family to fit.")
            )
        law = "L(N, D) = E + A/N<sup>α</sup> + B/D<sup>β</sup>"
        out = [
            f"<h3>Chinchilla Approach 3: {law}</h3>"
            + html_table(parameter_table(a3.fits))
            + interval_notes(a3.fits)
            + warnings_list(a3.fits)
            + refused
        ]
        flops = f"FLOPs/token ≈ {a3.flops.c:.3g}·N<sup>{a3.flops.gamma:.3f}</sup>"
        out.append(
            f'<p class="note">Compute-optimal allocation at C = {a3.target:.3g}, {flops} '
            "(fitted to the runs' counted flops_per_token; empty cells: not bounded by the runs):</p>"
            + html_table(a3.allocation)
        )
        if a3.ranking.height:
            out.append(f"<h3>Ranking by predicted loss at C = {a3.target:.3g}</h3>" + html_table(a3.ranking))
        if a3.multipliers.height:
            out.append(
                '<h3>Effective-compute multiplier vs baseline</h3><p class="note">How much more compute the baseline '
                "needs to reach the variant's loss (&gt;1: the variant is better).</p>" + html_table(a3.multipliers)
            )
        if a3.holdout.height:
            out.append("<h3>Leave-largest-out check (Approach 3)</h3>" + html_table(a3.holdout))
        return "\n".join(out)

    def _approach2(self, s: ScalingAnalysis) -> str:
        a2 = s.approach2
        if a2 is None:
            return note_paragraph(
                "Approach 2 (isoFLOP) not shown: it needs 2 or more compute budgets, each with 3+ sizes on both "
                "sides of its best size."
            )
        panels = [
            ch.isoflop_chart(s.runs.filter(pl.col("series") == name), iso, title=f"isoFLOP curves: {name}")
            for name, iso in a2.fits.items()
        ]
        chart = figure(panels[0] if len(panels) == 1 else alt.hconcat(*panels))
        notes = "".join(
            f'<p class="note">{html.escape(name)}: {html.escape(iso.interval_note)}</p>'
            for name, iso in a2.fits.items()
            if iso.interval_note
        )
        return (
            chart
            + "<h3>Chinchilla Approach 2 (isoFLOP)</h3>"
            + html_table(a2.exponents)
            + notes
            + warnings_list(a2.fits)
        )

    def effects(self) -> str:
        frame, notes = comparable_trials(self.trials, load_curves(self.dirs))
        eff = axis_effects(frame)
        if eff.height == 0:
            raise NoData("no architecture axis takes more than one value among completed trials")
        comparisons = int(eff["comparisons"].max() or 0)
        note = (
            "Difference in final eval loss from each axis's baseline value at equal budget (within a search, or "
            "within a planned grid point of a study): in a search, two levels (each architecture's seed noise, and "
            "the spread tau between architectures of one value, pooled over the axis), paired by seed where each "
            "side has one run per seed; a value resting on one architecture takes tau too, or gets no interval "
            "when no value of the axis has two architectures. A study's families: paired by seed, else Welch over "
            f"seeds. 95% intervals; verdicts Holm-adjusted over the {comparisons} comparisons. "
            "n counts architectures (seeds for a single one); n needed: to resolve the effect at the observed spread."
        )
        table = eff.filter(pl.col("method") != "baseline").select(
            *[c for c in ("run",) if c in eff.columns], "axis", "value", "baseline", "n", "n_base", "effect", "lo",
            "hi", "method", "p_holm", "verdict", "n_needed",
        )  # fmt: skip
        extra = "".join(note_paragraph(html.escape(n)) for n in notes) + comparison_caveats(self.done)
        return (
            note_paragraph(html.escape(note)) + extra + figure(ch.effects_chart(eff)) + html_table(table, max_rows=200)
        )

    def verdicts(self) -> str:
        s = None if isinstance(self._scaling, Exception) else self._scaling  # None: verdicts say why
        v = verdicts(self.dirs, scaling=s, bootstrap=self.bootstrap, target=self.target)
        if v.best is None:
            raise NoData("no completed trials with an eval_loss yet")
        lines = verdict_lines(v)

        def bullets(items: list[str], limit: int = 12) -> str:
            more = f"<li>... and {len(items) - limit} more in the table below</li>" if len(items) > limit else ""
            body = "".join(f"<li>{html.escape(i)}</li>" for i in items[:limit])
            return f'<ul class="verdicts">{body}{more}</ul>'

        ranking = v.ranking.select(
            "rank", "name", "n", "mean", "lo", "hi", "interval", "p_best", "p_best_mc_se", "lr_sensitivity", "lrs"
        )  # fmt: skip
        out = [f'<p class="verdict">{html.escape(line)}</p>' for line in lines["best"]]
        out += [comparison_caveats(self.done), html_table(ranking)]
        if lines["differences"]:
            plural = "" if v.comparisons == 1 else "s"
            out.append(f"<h3>Differences from the best ({v.comparisons} comparison{plural} in all, Holm-adjusted)</h3>")
            out.append(bullets(lines["differences"]))
            cols = ["name", "n", "n_best", "n_pairs", "method", "diff", "lo", "hi", "p_holm", "verdict", "seeds_needed",
                    "seeds_needed_lo", "seeds_needed_hi"]  # fmt: skip
            out.append(html_table(v.differences.select(cols)))
        if lines["effects"]:
            out.append("<h3>Effects at equal budget</h3>" + bullets(lines["effects"]))
        if lines["fits"]:
            out.append("<h3>Scaling fits</h3>" + bullets(lines["fits"]))
        if lines["notes"]:
            out.append("".join(note_paragraph(html.escape(n)) for n in lines["notes"]))
        return "\n".join(out)

    def importance(self) -> str:
        """One chart per search directory (each has its own study), from its Optuna study or, when
        that is missing or too small, from the variance each axis explains in its trials."""
        charts = []
        for d in self.dirs:
            imp = parameter_importance(d)
            if imp.height:
                charts.append(ch.importance_chart(imp, title=d.resolve().name))
        if not charts:
            raise NoData("no completed trials with varying parameters: nothing to rank")
        return "\n".join(figure(c) for c in charts)

    def predicted(self) -> str:
        """A ladder search: the ranking predicted at the target beside the small-scale ranking."""
        pred = load_predictions(self.dirs)
        if pred is None:
            raise NoData("no ladder search among these results (run `archscale search run ... --target-compute C`)")
        table, crossings, missing = prediction_tables(pred)
        parts = [note_paragraph(PREDICTED_NOTE)]
        if table.height:
            parts += [html_table(table), figure(ladder_chart(pred, self.trials))]
        parts += ["<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in crossings) + "</ul>"] if crossings else []
        parts += ["<h3>No prediction</h3>" + html_table(missing)] if missing.height else []
        return "\n".join(parts + [self._rung_shapes()])

    def _rung_shapes(self) -> str:
        """Each rung's achieved shape, and the rungs that stray from the search's shape rule."""
        rules = shape_rules(self.dirs)
        shapes, flags = rung_shapes(self.trials, rules)
        if not shapes.height:
            return ""
        given = [f"{run}: {rule.describe()}" for run, (rule, _) in rules.items() if rule is not None]
        note = (
            f"Shape rule {'; '.join(given)}. off_rule lists each dimension more than 5% from the rule "
            "(achieved vs the rule's value; a gated FFN's ffn_ratio target is 2/3 of the rule's)."
            if given
            else "No shape rule: each rung's shape was solved afresh for its budget (add shape: to the space "
            "file to hold head_dim, the FFN ratio and the aspect ratio across rungs; docs/spaces.md)."
        )
        out = "<h3>Rung shapes</h3>" + note_paragraph(
            note + " ffn_ratio = d_ff / d_model; aspect_ratio = d_model / n_layers."
        )
        out += html_table(shapes.drop("off_rule") if not given else shapes, max_rows=200)
        if flags:
            out += '<ul class="shape-flags">' + "".join(f"<li>{html.escape(x)}</li>" for x in flags) + "</ul>"
        return out

    @functools.cached_property
    def _space(self) -> dict | Exception | None:
        """``space_summary`` of the results (or what it raised), None when they do not identify the
        space law (fewer than 2 compute sizes): then the report has no such section."""
        try:
            return space_summary(self.dirs, target_compute=self.target)
        except NoData:
            return None
        except Exception as exc:  # raised again by the section that shows it
            return exc

    def space_law(self) -> str:
        if isinstance(self._space, Exception):
            raise self._space
        assert self._space is not None
        return space_law_html(self._space)

    def curves(self) -> str:
        note = '<p class="note">Best 30 trials by final eval loss, downsampled to ≤100 evaluations each.</p>'
        return note + figure(ch.build_chart(self.dirs, "curves"))

    def lengths(self) -> str:
        return figure(ch.build_chart(self.dirs, "length"))

    def render(self) -> str:
        sections = [
            ("Verdicts", self.verdicts),  # what the data supports first; metadata last
            ("Predicted at the target", self.predicted),
            *([("One law for the space", self.space_law)] if self._space is not None else []),
            ("Best architectures", self.best),
            ("Pareto front", self.pareto),
            ("Scaling fits", self.scaling),
            ("Effects", self.effects),
            ("Parameter importance", self.importance),
            ("Learning curves", self.curves),
            ("Length generalisation", self.lengths),
            ("What was run", self.what_was_run),
        ]
        with ch.rows_allowed():
            body = "\n".join(section(title, fn) for title, fn in sections)
        names = ", ".join(html.escape(d.resolve().name) for d in self.dirs)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return (
            f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>archscale report: {names}</title>'
            f"<style>{CSS}</style></head><body>\n<h1>archscale report: {names}</h1>"
            + note_paragraph(f"Generated {stamp}. Losses are in nats/token; compute in training FLOPs.")
            + f"\n{body}\n</body></html>\n"
        )


def build_report(dirs: PathLike | Sequence[PathLike], *, bootstrap: int = 100, target: float | None = None) -> str:
    """The report's HTML for one or more results directories (see module docstring)."""
    dirs = [dirs] if isinstance(dirs, (str, Path)) else list(dirs)
    return _Report(dirs, bootstrap=bootstrap, target=target).render()


def write_report(
    dirs: PathLike | Sequence[PathLike], out: PathLike, *, bootstrap: int = 100, target: float | None = None
) -> Path:
    """Write ``build_report`` to ``out`` (temp file + rename) and return its path."""
    out = Path(out)
    text = build_report(dirs, bootstrap=bootstrap, target=target)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out
