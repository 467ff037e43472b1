"""archscale.analysis: turn results directories into knowledge.

Lazy polars loaders, scaling-law fits with bootstrap uncertainty, Pareto fronts, effects across
seeds, Altair charts and the offline HTML report. Reads only result files, so it works on results
copied off a cluster; importing it never imports torch, Ray or Triton, and the heavy modules
(polars, scipy, altair) load on first use of a name below.

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
    # loading
    "load": "loaders", "load_trials": "loaders", "load_curves": "loaders", "load_run": "loaders",
    "open_study": "loaders", "length_losses": "loaders",
    # fits
    "fit_power_law": "fits", "fit_chinchilla": "fits", "fit_isoflop": "fits", "FlopsModel": "fits",
    "PowerLawFit": "fits", "ChinchillaFit": "fits", "IsoFlopFit": "fits", "compute_budgets": "fits",
    "leave_largest_out": "fits", "fit_groups": "fits", "rank_architectures": "fits",
    "effective_compute_multiplier": "fits", "fit_results": "fit_table", "read_runs": "fit_table",
    # what the report shows, as library calls
    "completed": "runs", "series_column": "runs", "NoData": "runs",
    "scaling_analysis": "scaling", "ScalingAnalysis": "scaling", "frontier": "scaling", "scaling_fits": "scaling",
    "pareto_analysis": "pareto", "ParetoAnalysis": "pareto", "cost_objectives": "pareto", "hypervolumes": "pareto",
    # search analysis
    "pareto_mask": "pareto", "pareto_front": "pareto", "hypervolume": "pareto",
    "axis_effects": "effects", "best_architectures": "effects", "parameter_importance": "effects",
    "learning_curves": "effects", "best_curves": "effects", "with_budget_cells": "effects",
    # comparisons that respect sample size, pairing and selection; the verdicts built from them
    "rank_configurations": "comparisons", "compare_to_best": "comparisons", "lr_sensitivity": "comparisons",
    "at_equal_tokens": "comparisons", "comparable_trials": "comparisons", "holm": "comparisons",
    "seeds_needed": "comparisons", "verdicts": "verdict", "Verdicts": "verdict", "verdicts_text": "verdict",
    "verdict_lines": "verdict",
    # a ladder search's laws (the predicted-at-target search)
    "fit_ladders": "ladders", "LadderFit": "ladders", "crossings": "ladders", "load_predictions": "ladders",
    "ladder_chart": "ladders",
    # charts and report
    "build_chart": "charts", "save_chart": "charts", "chart_svg": "charts",
    "scaling_chart": "charts", "isoflop_chart": "charts", "pareto_chart": "charts", "curves_chart": "charts",
    "effects_chart": "charts", "importance_chart": "charts", "length_chart": "charts",
    "build_report": "report", "write_report": "report", "section_errors": "report",
    "serve_dashboard": "dashboard", "ray_dashboard_address": "dashboard",
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
    from .charts import *  # noqa: F403
    from .comparisons import *  # noqa: F403
    from .dashboard import *  # noqa: F403
    from .effects import *  # noqa: F403
    from .fit_table import *  # noqa: F403
    from .fits import *  # noqa: F403
    from .ladders import *  # noqa: F403
    from .loaders import *  # noqa: F403
    from .pareto import *  # noqa: F403
    from .report import *  # noqa: F403
    from .runs import *  # noqa: F403
    from .scaling import *  # noqa: F403
    from .verdict import *  # noqa: F403
