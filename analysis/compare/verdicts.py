"""What the data supports, and how strongly: the verdicts the report and the quickstart lead with.

(The package ``archscale.analysis`` maps ``verdicts`` to this module's function lazily, so the module
name never shadows it; the sentences are ``present.verdict_text``.)

    >>> import archscale.analysis as an
    >>> v = an.verdicts(["results/search", "results/seeds", "results/scaling"])
    >>> v.best                 # the best architecture, its interval and n, LR sensitivity
    >>> v.differences          # each other architecture vs the best: paired/Welch, Holm, seeds needed
    >>> v.effects              # axis values vs their baseline, same columns
    >>> v.fits                 # which scaling fits are identified, and what they predict at the target
    >>> print(an.verdicts_text(v))

``verdicts`` only gathers what the library computes (``rankings.rank_configurations``,
``compare_to_best``, ``lr.lr_sensitivity``, ``data.cells.at_equal_tokens``, ``effects.axis_effects``,
``scaling.scaling_analysis``) and decides which comparison to lead with:

* **The headline cell.** Among every (run, budget cell) holding 2+ architectures, the one whose
  architectures have the most seeds (median), then the larger budget, then the later directory.
  A study of a search's finalists re-run with fresh seeds (``from_search``) wins over the search
  that selected them, so the best is ranked by seed-averaged loss of re-run finalists, not by the
  lucky draw that made it a finalist; when the ranking comes from the same trials that selected it,
  a note says its lead is optimistic.
* **Comparisons.** The best against every other architecture of the headline cell, and every axis
  value against its baseline (ASHA searches at equal tokens seen), all in one family of
  comparisons: p-values are Holm-adjusted over all of them together (``comparisons`` says how
  many), and each carries the seeds that would resolve it at the observed spread.
* **Fits** (``verdict_fits.fit_rows``, from the ``ScalingAnalysis``'s typed fields): every
  identified law with its prediction at the target, and every refused one with its reason.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from archscale.analysis.data.cells import comparable_trials, with_identity_columns
from archscale.analysis.data.loaders import ARCH_AXES, PathLike, load_curves, load_run, load_trials, run_names
from archscale.analysis.data.runs import NoData

from .effects import axis_effects
from .lr import lr_sensitivity
from .rankings import best_interval, compare_to_best, rank_configurations
from .scaling import ScalingAnalysis, scaling_analysis
from .stats import ALPHA, MIN_EFFECT, holm, seeds_needed, verdict
from .verdict_fits import FIT_SCHEMA, fit_rows


@dataclass(frozen=True)
class Verdicts:
    """What the data supports (see module docstring). Every frame has an ``n`` column per estimate.

    ``best``: the headline cell's best architecture (``run, cell, name, n, mean, lo, hi,
    interval, lr_sensitivity, lrs``, its ``p_best``, and the selection-corrected ``best_lo,
    best_hi, lead, lead_lo, lead_hi, optimism, candidates``: ``rankings.best_interval``) or None
    without completed trials: the lowest mean among architectures with a noise estimate.
    ``ranking``: the headline cell's architectures by seed mean, with ``p_best``.
    ``differences``/``effects``: comparisons with ``p_holm`` and
    ``verdict`` recomputed over both together, and ``seeds_needed``/``n_needed``. ``fits``: one row
    per (law, series): ``law, series, identified, quantity, estimate, lo, hi, at, n_runs, reason``.
    ``notes``: what to keep in mind (selection, early stopping, pooled intervals). ``comparisons``:
    how many p-values the Holm adjustment covered."""

    best: dict[str, Any] | None
    ranking: pl.DataFrame
    differences: pl.DataFrame
    effects: pl.DataFrame
    fits: pl.DataFrame
    comparisons: int
    notes: list[str] = field(default_factory=list)


def _headline_cell(ranking: pl.DataFrame, runs: list[str]) -> tuple[str, str] | None:
    """The (run, cell) to lead with: most seeds per architecture, then budget, then later run."""
    order = {name: i for i, name in enumerate(runs)}
    cells = (
        ranking.group_by("run", "cell")
        .agg(configs=pl.len(), seeds=pl.col("n").median(), budget=pl.col("budget").max().fill_null(0.0))
        .with_columns(multi=pl.col("configs") >= 2, order=pl.col("run").replace_strict(order, default=-1))
        .sort(["multi", "seeds", "budget", "order"], descending=True)
    )
    return (cells["run"][0], cells["cell"][0]) if cells.height else None


def searched_axes(dir: PathLike) -> set[str]:
    """The architecture axes a search in ``dir`` sampled (``run.json``'s space: an ``arch`` axis
    with ``choices``, or a mapping of axis to its values); empty when unknown or not a search."""
    space = load_run(dir).get("space")
    if not isinstance(space, dict):
        return set()
    arch = space.get("arch")
    if isinstance(arch, dict):
        return {k for k, v in arch.items() if isinstance(v, dict) and v.get("choices") and k in ARCH_AXES}
    return {k for k, v in space.items() if k in ARCH_AXES and isinstance(v, list) and len(v) > 1}


def design_note(run: str, dir: PathLike) -> str | None:
    """What kind of evidence a search's axis effects are, from its sampler (``run.json`` args)."""
    sampler = (load_run(dir).get("args") or {}).get("sampler")
    if not isinstance(sampler, str) or load_run(dir).get("kind") != "search":
        return None
    if sampler.lower() in ("random", "grid"):
        return (
            f"{run}: effects come from a {sampler.lower()} design: each value was assigned without looking at losses."
        )
    return (
        f"{run}: effects are observational: the {sampler} sampler chose later values after seeing earlier losses, "
        "so values it favoured also got later, better-tuned learning rates; confirm an effect with a random or "
        "grid design (or a study)."
    )


def _with_lr_sensitivity(ranking: pl.DataFrame, sens: pl.DataFrame) -> pl.DataFrame:
    """LR sensitivity beside each configuration: by ``arch_id`` (any run), else by label."""
    best_of = sens.sort("lrs", descending=True)
    by_id = best_of.unique("arch_id", keep="first").select("arch_id", s_id="lr_sensitivity", l_id="lrs")
    by_label = best_of.unique("label", keep="first").select(_label="label", s_lab="lr_sensitivity", l_lab="lrs")
    return (
        ranking.join(by_id, on="arch_id", how="left")
        .with_columns(_label=pl.col("name").str.replace(r" \[.*\]$", ""))
        .join(by_label, on="_label", how="left")
        .with_columns(
            lr_sensitivity=pl.coalesce("s_id", "s_lab"),
            lrs=pl.coalesce("l_id", "l_lab").fill_null(1).cast(pl.UInt32),
        )
        .drop("s_id", "l_id", "s_lab", "l_lab", "_label")
    )


def verdicts(
    source: PathLike | Sequence[PathLike] | pl.DataFrame,
    *,
    curves: pl.DataFrame | pl.LazyFrame | None = None,
    scaling: ScalingAnalysis | None = None,
    bootstrap: int = 100,
    target: float | None = None,
    level: float = 0.95,
) -> Verdicts:
    """The verdicts for results directories (or a trials frame, with ``curves`` if it has any).

    ``scaling``: an already computed ``ScalingAnalysis`` (else ``scaling_analysis(source,
    bootstrap=bootstrap, target=target)`` is called; a search without a study has no fits)."""
    searched: dict[str, set[str]] = {}
    notes: list[str] = []
    if isinstance(source, pl.DataFrame):
        trials, runs = source, list(dict.fromkeys(source["run"].to_list())) if "run" in source.columns else []
    else:
        dirs = [Path(source)] if isinstance(source, (str, Path)) else [Path(d) for d in source]
        trials = load_trials(dirs).collect()
        curves = load_curves(dirs) if curves is None else curves
        runs = list(dict.fromkeys(trials["run"].to_list()))
        searched = {name: axes for name, d in zip(run_names(dirs), dirs, strict=True) if (axes := searched_axes(d))}
        notes += [note for name, d in zip(run_names(dirs), dirs, strict=True) if (note := design_note(name, d))]
    trials = with_identity_columns(trials)
    runs = runs or list(dict.fromkeys(trials["run"].to_list()))
    curves_lf = curves.lazy() if isinstance(curves, pl.DataFrame) else curves
    comparable, asha_notes = comparable_trials(trials, curves_lf)
    notes += asha_notes

    every = _with_lr_sensitivity(rank_configurations(trials, level=level), _sensitivity(comparable))
    cell = _headline_cell(every, runs)
    ranking, differences = every, compare_to_best(trials, level=level)
    if cell is not None:
        in_cell = (pl.col("run") == cell[0]) & (pl.col("cell") == cell[1])
        ranking, differences = every.filter(in_cell), differences.filter(in_cell)
    axes = [*ARCH_AXES, "group"]
    effects = axis_effects(comparable, axes=axes, baselines={"group": "baseline"}, level=level)
    # in a study the families differ in several axes at once: compare the families, not the axes
    studies = trials.filter(pl.col("group").is_not_null())["run"].unique().implode()
    in_study = pl.col("run").is_in(studies)
    effects = effects.filter((pl.col("method") != "baseline") & (in_study == (pl.col("axis") == "group")))
    # in a search, the axes it was asked about (not the dimensions its budget solved for)
    asked = pl.DataFrame(
        [(run, axis) for run, axes in searched.items() for axis in axes],
        schema={"run": pl.String, "axis": pl.String},
        orient="row",
    ).with_columns(asked=pl.lit(True))
    effects = (
        effects.join(asked, on=["run", "axis"], how="left")
        .filter(
            in_study
            | pl.col("asked").fill_null(~pl.col("run").is_in(pl.Series(list(searched), dtype=pl.String).implode()))
        )
        .drop("asked")
    )
    if cell is not None and every.filter(pl.col("run") == cell[0])["cell"].n_unique() == 1:
        # a one-cell study's family effects are the differences from the best, already compared
        effects = effects.filter(~((pl.col("run") == cell[0]) & (pl.col("axis") == "group")))

    # one family of comparisons: Holm over the differences and the effects together; the best is
    # selected, so the differences count as every pair of the headline cell's architectures
    p_diff, p_eff = differences["p"].fill_null(np.nan).to_numpy(), effects["p"].fill_null(np.nan).to_numpy()
    pairs = ranking.height * (ranking.height - 1) // 2 if cell is not None else int(np.isfinite(p_diff).sum())
    p = np.concatenate([p_diff, p_eff])
    comparisons = max(pairs, int(np.isfinite(p_diff).sum())) + int(np.isfinite(p_eff).sum())
    adjusted = holm(p, family=comparisons)
    k = differences.height
    differences = _reverdict(differences, adjusted[:k], "diff", comparisons)
    effects = _reverdict(effects, adjusted[k:], "effect", comparisons)

    best = None
    if ranking.height:
        judged = ranking.sort(pl.col("var").is_null(), "mean")
        best = judged.row(0, named=True)
        selected = best_interval(ranking, level=level).row(0, named=True)
        best |= {k: v for k, v in selected.items() if k not in ("run", "cell", "name")}
        if best["interval"].startswith("noise model"):
            notes.append(
                f"{best['name']} has {best['n']} seed(s): its interval uses the variance the run's noise model "
                "(fitted on the architectures with replicas) lends it."
            )
        lower = ranking.filter(pl.col("var").is_null() & (pl.col("mean") < best["mean"]))
        if lower.height:
            names = ", ".join(f"{r['name']} ({r['mean']:.3f})" for r in lower.iter_rows(named=True))
            notes.append(
                f"Lower means from one run each, with no noise estimate, are not ranked as best: {names}; "
                "run 2 more seeds of each to judge them."
            )
        if cell is not None and trials.filter(pl.col("run") == cell[0])["group"].is_null().all():
            notes.append(
                "The best was chosen from the same trials that rank it, so its lead is optimistic: re-run the "
                "finalists with fresh seeds (a study with from_search) to confirm it."
            )
    fits, fit_notes = _fits(trials if isinstance(source, pl.DataFrame) else source, scaling, bootstrap, target)
    return Verdicts(best, ranking, differences, effects, fits, comparisons, notes + fit_notes)


def _sensitivity(comparable: pl.DataFrame) -> pl.DataFrame:
    sens = lr_sensitivity(comparable)
    labels = comparable.select("run", "arch_id", "label").unique(["run", "arch_id"], keep="first")
    return sens.join(labels, on=["run", "arch_id"], how="left")


def _reverdict(frame: pl.DataFrame, p_holm: np.ndarray, effect: str, comparisons: int) -> pl.DataFrame:
    """Holm-adjusted p and verdict over the whole family, and ``needed_in_family``: the seeds
    (pairs, or per side) that resolve the difference at Bonferroni's ``0.05 / comparisons``, an
    upper bound on what Holm's step-down needs (it tests the smallest p at that level)."""
    planned = frame[effect].fill_null(np.nan).to_numpy()
    if "min_effect" in frame.columns:  # differences plan for the smallest effect of interest
        planned = frame["min_effect"].fill_null(MIN_EFFECT).to_numpy()
    needed = seeds_needed(
        planned,
        frame["sd"].fill_null(np.nan).to_numpy(),
        paired=(frame["method"] == "paired").to_numpy(),
        alpha=ALPHA / max(comparisons, 1),
    )
    one_run = pl.col("verdict") == "one run"
    return frame.with_columns(
        p_holm=pl.Series(p_holm, dtype=pl.Float64).fill_nan(None), needed_in_family=pl.Series(needed)
    ).with_columns(verdict=verdict(pl.col("p_holm"), pl.col("lo").is_not_null(), one_run=one_run))


def _fits(
    source: Any, scaling: ScalingAnalysis | None, bootstrap: int, target: float | None
) -> tuple[pl.DataFrame, list[str]]:
    if scaling is None:
        try:
            scaling = scaling_analysis(source, bootstrap=bootstrap, target=target)
        except NoData:
            return pl.DataFrame(schema=FIT_SCHEMA), []
        except Exception as exc:  # a broken fit must not hide the comparisons
            return pl.DataFrame(schema=FIT_SCHEMA), [f"Scaling fits failed: {type(exc).__name__}: {exc}"]
    return fit_rows(scaling), []
