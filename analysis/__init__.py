"""archscale.analysis: turn results directories into knowledge.

Four layers, imports pointing down: ``present`` (charts, tables, the report) -> ``compare``
(statistics, rankings, effects, verdicts) -> ``laws`` (every scaling law behind one registry,
``LAWS``) -> ``data`` (results directories, comparison cells, synthetic runs). Reads only result
files, so it works on results copied off a cluster; importing it never imports torch, Ray or
Triton, and the heavy modules (polars, scipy, altair) load on first use of a name below.

    >>> import archscale.analysis as an
    >>> trials = an.load_trials("results/my-search", status="completed").collect()
    >>> fit = an.fit_chinchilla(trials["params"], trials["tokens"], trials["eval_loss"], bootstrap=200)
    >>> study = an.scaling_analysis("results/my-study")   # everything the report's scaling section shows
    >>> print(an.verdicts_text(an.verdicts(["results/my-search", "results/my-study"])))  # what the data supports
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # data: loading results, the cells comparisons are made in
    "load": "data.loaders", "load_trials": "data.loaders", "load_curves": "data.loaders", "load_run": "data.loaders",
    "open_study": "data.loaders", "length_losses": "data.loaders", "load_predictions": "data.predictions",
    "completed": "data.runs", "series_column": "data.runs", "NoData": "data.runs", "at_transferred_lr": "data.runs",
    "with_budget_cells": "data.cells", "at_equal_tokens": "data.cells", "comparable_trials": "data.cells",
    # laws: every law behind one registry, one fitted-law record
    "LAWS": "laws.registry", "Law": "laws.registry", "FittedLaw": "laws.fitted",
    "fit_power_law": "laws.power", "fit_chinchilla": "laws.chinchilla", "fit_isoflop": "laws.isoflop",
    "FlopsModel": "laws.inputs", "compute_budgets": "laws.inputs", "LawFit": "laws.record",
    "PowerLawFit": "laws.power", "ChinchillaFit": "laws.chinchilla", "IsoFlopFit": "laws.isoflop",
    "leave_largest_out": "laws.groups", "fit_groups": "laws.groups",
    "fit_results": "laws.table", "read_runs": "laws.table",
    "fit_space_law": "laws.space_law", "SpaceLaw": "laws.space_law", "space_record": "laws.space_record",
    "fit_ladders": "laws.ladder", "LadderFit": "laws.ladder_record", "crossings": "laws.ladder_record",
    "crossings_by_ladder": "laws.ladder_record",
    # compare: statistics, rankings, effects, what the report shows, verdicts
    "rank_architectures": "compare.law_ranking", "effective_compute_multiplier": "compare.law_ranking",
    "scaling_analysis": "compare.scaling", "ScalingAnalysis": "compare.scaling", "frontier": "compare.scaling",
    "scaling_fits": "compare.scaling",
    "pareto_analysis": "compare.pareto", "ParetoAnalysis": "compare.pareto", "cost_objectives": "compare.pareto",
    "hypervolumes": "compare.pareto", "pareto_mask": "compare.pareto", "pareto_front": "compare.pareto",
    "hypervolume": "compare.pareto",
    "axis_effects": "compare.effects", "parameter_importance": "compare.importance",
    "best_architectures": "compare.best", "learning_curves": "compare.best", "best_curves": "compare.best",
    "rank_configurations": "compare.rankings", "compare_to_best": "compare.rankings", "lr_sensitivity": "compare.lr",
    "fit_lr_optimum": "compare.lr", "LrOptimum": "compare.lr", "lr_sweep_summary": "compare.lr",
    "holm": "compare.stats", "seeds_needed": "compare.stats", "seeds_needed_range": "compare.stats",
    "best_interval": "compare.rankings", "p_best": "compare.selection", "noise_model": "compare.noise",
    "ladder_p_best": "compare.ladder_verdicts", "ladder_differences": "compare.ladder_verdicts",
    "verdicts": "compare.verdicts", "Verdicts": "compare.verdicts",
    "rung_shapes": "compare.shapes", "shape_rules": "compare.shapes", "shape_rule_of": "compare.shapes",
    # what search/ shows, computed here: a ladder search's status, its held-out check, the quickstart's findings
    "ladder_summary": "compare.ladder_summary", "one_run_interval": "compare.validation",
    "summarize_validation": "compare.validation", "quickstart_findings": "compare.findings",
    "ladder_story": "compare.story", "winner_verdict": "compare.validation",
    # present: charts, report, dashboards
    "verdicts_text": "present.verdict_text", "verdict_lines": "present.verdict_text",
    "best_probabilities": "present.verdict_text",
    "ladder_chart": "present.predictions", "CHARTS": "present.charts",
    "build_chart": "present.charts", "save_chart": "present.charts", "chart_svg": "present.charts",
    "scaling_chart": "present.charts", "isoflop_chart": "present.charts", "pareto_chart": "present.charts",
    "curves_chart": "present.charts", "effects_chart": "present.charts", "importance_chart": "present.charts",
    "length_chart": "present.charts",
    "build_report": "present.report", "write_report": "present.report", "section_errors": "present.report_parts",
    "serve_dashboard": "present.dashboard", "ray_dashboard_address": "present.dashboard",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'archscale.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load lazily
    from .compare.best import *  # noqa: F403
    from .compare.effects import *  # noqa: F403
    from .compare.findings import *  # noqa: F403
    from .compare.importance import *  # noqa: F403
    from .compare.ladder_summary import *  # noqa: F403
    from .compare.law_ranking import *  # noqa: F403
    from .compare.lr import *  # noqa: F403
    from .compare.pareto import *  # noqa: F403
    from .compare.rankings import *  # noqa: F403
    from .compare.scaling import *  # noqa: F403
    from .compare.shapes import *  # noqa: F403
    from .compare.stats import *  # noqa: F403
    from .compare.validation import *  # noqa: F403
    from .compare.verdicts import *  # noqa: F403
    from .data.cells import *  # noqa: F403
    from .data.loaders import *  # noqa: F403
    from .data.predictions import *  # noqa: F403
    from .data.runs import *  # noqa: F403
    from .laws.chinchilla import *  # noqa: F403
    from .laws.fitted import *  # noqa: F403
    from .laws.groups import *  # noqa: F403
    from .laws.inputs import *  # noqa: F403
    from .laws.isoflop import *  # noqa: F403
    from .laws.ladder import *  # noqa: F403
    from .laws.ladder_record import *  # noqa: F403
    from .laws.power import *  # noqa: F403
    from .laws.record import *  # noqa: F403
    from .laws.registry import *  # noqa: F403
    from .laws.space_law import *  # noqa: F403
    from .laws.space_record import *  # noqa: F403
    from .laws.table import *  # noqa: F403
    from .present.charts import *  # noqa: F403
    from .present.dashboard import *  # noqa: F403
    from .present.predictions import *  # noqa: F403
    from .present.report import *  # noqa: F403
    from .present.report_parts import *  # noqa: F403
    from .present.verdict_text import *  # noqa: F403
