"""What the data supports, and how strongly: the verdicts the report and the quickstart lead with.

(The module is ``verdict``, singular: a module named like its main function, ``verdicts``, would
replace that function on the lazily-loading ``archscale.analysis`` once imported.)

    >>> import archscale.analysis as an
    >>> v = an.verdicts(["results/search", "results/seeds", "results/scaling"])
    >>> v.best                 # the best architecture, its interval and n, LR sensitivity
    >>> v.differences          # each other architecture vs the best: paired/Welch, Holm, seeds needed
    >>> v.effects              # axis values vs their baseline, same columns
    >>> v.fits                 # which scaling fits are identified, and what they predict at the target
    >>> print(an.verdicts_text(v))

``verdicts`` only gathers what the library computes (``comparisons.rank_configurations``,
``compare_to_best``, ``lr_sensitivity``, ``at_equal_tokens``, ``effects.axis_effects``,
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
* **Fits** (from ``scaling_analysis``; its contract as relied on here): ``s.power`` and
  ``s.approach3.fits`` map a series to a fit with ``warnings`` (tuple of str), ``n_runs`` and, for
  a power law in compute, ``loss_at``; a fit may carry ``identified`` (bool) and ``reason`` (str):
  without ``identified``, a fit is taken as identified unless a warning says a parameter is at
  the edge of its box. ``s.design`` maps a series to the reasons Approach 3 was not fitted, and an
  optional ``s.refusals`` (series or law -> reason) is shown as not identified. Predictions at
  ``s.target`` come from ``rank_architectures`` (power laws) and ``s.approach3.ranking``, with
  their intervals when they have them (none without bootstrap refits); an unidentified fit gets no
  prediction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .comparisons import (
    ALPHA,
    comparable_trials,
    compare_to_best,
    holm,
    lr_sensitivity,
    rank_configurations,
    with_identity_columns,
)
from .effects import ARCH_AXES, axis_effects
from .loaders import PathLike, load_curves, load_run, load_trials, run_names
from .runs import NoData


@dataclass(frozen=True)
class Verdicts:
    """What the data supports (see module docstring). Every frame has an ``n`` column per estimate.

    ``best``: the headline cell's best architecture (``run, cell, name, n, mean, lo, hi,
    interval, lr_sensitivity, lrs``) or None without completed trials. ``ranking``: the headline
    cell's architectures by seed mean. ``differences``/``effects``: comparisons with ``p_holm`` and
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


FIT_SCHEMA = {"law": pl.String, "series": pl.String, "identified": pl.Boolean, "quantity": pl.String,
              "estimate": pl.Float64, "lo": pl.Float64, "hi": pl.Float64, "at": pl.Float64, "n_runs": pl.Int64,
              "reason": pl.String}  # fmt: skip


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


def _fit_rows(s: Any) -> pl.DataFrame:
    """One row per (law, series) of a ``ScalingAnalysis`` (see the module docstring's contract)."""
    from .fits import rank_architectures

    rows: list[dict[str, Any]] = []
    target = float(getattr(s, "target", math.nan))

    def status(fit: Any) -> tuple[bool, str | None]:
        warnings = [str(w) for w in getattr(fit, "warnings", ()) or ()]
        identified = getattr(fit, "identified", None)
        if identified is None:
            identified = not any("edge" in w for w in warnings)
        reason = getattr(fit, "reason", None) or ("; ".join(warnings) if warnings else None)
        return bool(identified), reason

    for name, fit in (getattr(s, "power", None) or {}).items():
        identified, reason = status(fit)
        row = {"law": "power law in compute", "series": str(name), "identified": identified, "at": target,
               "quantity": "loss at target", "n_runs": getattr(fit, "n_runs", None), "reason": reason}  # fmt: skip
        if identified and "compute" in tuple(getattr(fit, "inputs", ("compute",))):
            ranked = rank_architectures({name: fit}, at=target)
            if ranked.height:
                r = ranked.row(0, named=True)
                row.update(estimate=r["predicted_loss"], lo=r["lo"], hi=r["hi"])
            else:  # identified, but its prediction at the target is not bounded (fits.rankable says why)
                from .fits import rankable

                row.update(identified=False, reason=rankable({name: fit}, at=target).get(name, "not rankable"))
        rows.append(row)
    a3 = getattr(s, "approach3", None)
    ranking = getattr(a3, "ranking", None) if a3 is not None else None
    for name, fit in (getattr(a3, "fits", None) or {}).items():
        identified, reason = status(fit)
        row = {"law": "Chinchilla Approach 3", "series": str(name), "identified": identified, "at": target,
               "quantity": "loss at compute-optimal target", "n_runs": getattr(fit, "n_runs", None),
               "reason": reason}  # fmt: skip
        if identified and isinstance(ranking, pl.DataFrame) and {"name", "predicted_loss"} <= set(ranking.columns):
            mine = ranking.filter(pl.col("name") == str(name))
            if mine.height:
                r = mine.row(0, named=True)
                row.update(estimate=r["predicted_loss"], lo=r.get("lo"), hi=r.get("hi"))
        rows.append(row)
    for name, problems in (getattr(s, "design", None) or {}).items():
        if problems:
            rows.append({"law": "Chinchilla Approach 3", "series": str(name), "identified": False,
                         "quantity": "not fitted", "reason": "; ".join(map(str, problems))})  # fmt: skip
    for name, reason in (getattr(s, "refusals", None) or {}).items():
        rows.append({"law": "refused", "series": str(name), "identified": False, "quantity": "not fitted",
                     "reason": str(reason)})  # fmt: skip
    for row in rows:  # a zero-width interval comes from degenerate resamples: it is no interval
        lo, hi = row.get("lo"), row.get("hi")
        if lo is not None and hi is not None and math.isfinite(lo) and abs(hi - lo) <= 1e-9 * max(abs(hi), 1.0):
            row["lo"] = row["hi"] = None
            row["reason"] = "; ".join(filter(None, [row.get("reason"), "zero-width bootstrap interval: not shown"]))
    return pl.DataFrame(rows, schema=FIT_SCHEMA) if rows else pl.DataFrame(schema=FIT_SCHEMA)


def verdicts(
    source: PathLike | Sequence[PathLike] | pl.DataFrame,
    *,
    curves: pl.DataFrame | pl.LazyFrame | None = None,
    scaling: Any = None,
    bootstrap: int = 100,
    target: float | None = None,
    level: float = 0.95,
) -> Verdicts:
    """The verdicts for results directories (or a trials frame, with ``curves`` if it has any).

    ``scaling``: an already computed ``ScalingAnalysis`` (else ``scaling_analysis(source,
    bootstrap=bootstrap, target=target)`` is called; a search without a study has no fits)."""
    searched: dict[str, set[str]] = {}
    if isinstance(source, pl.DataFrame):
        trials, runs = source, list(dict.fromkeys(source["run"].to_list())) if "run" in source.columns else []
    else:
        dirs = [Path(source)] if isinstance(source, (str, Path)) else [Path(d) for d in source]
        trials = load_trials(dirs).collect()
        curves = load_curves(dirs) if curves is None else curves
        runs = list(dict.fromkeys(trials["run"].to_list()))
        searched = {name: axes for name, d in zip(run_names(dirs), dirs, strict=True) if (axes := searched_axes(d))}
    trials = with_identity_columns(trials)
    runs = runs or list(dict.fromkeys(trials["run"].to_list()))
    curves_lf = curves.lazy() if isinstance(curves, pl.DataFrame) else curves
    notes: list[str] = []
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

    # one family of comparisons: Holm over the differences and the effects together
    p = np.concatenate([differences["p"].fill_null(np.nan).to_numpy(), effects["p"].fill_null(np.nan).to_numpy()])
    adjusted = holm(p)
    k = differences.height
    comparisons = int(np.isfinite(p).sum())
    differences = _reverdict(differences, adjusted[:k], "diff", comparisons)
    effects = _reverdict(effects, adjusted[k:], "effect", comparisons)

    best = None
    if ranking.height:
        best = ranking.row(0, named=True)
        if best["interval"].startswith("pooled"):
            notes.append(
                f"{best['name']} has {best['n']} seed(s): its interval uses the seed spread pooled over every "
                "architecture with replicas in its run."
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
    from .comparisons import seeds_needed, verdict

    needed = seeds_needed(
        frame[effect].fill_null(np.nan).to_numpy(),
        frame["sd"].fill_null(np.nan).to_numpy(),
        paired=(frame["method"] == "paired").to_numpy(),
        alpha=ALPHA / max(comparisons, 1),
    )
    return frame.with_columns(
        p_holm=pl.Series(p_holm, dtype=pl.Float64).fill_nan(None), needed_in_family=pl.Series(needed)
    ).with_columns(verdict=verdict(pl.col("p_holm"), pl.col("lo").is_not_null()))


def _fits(source: Any, scaling: Any, bootstrap: int, target: float | None) -> tuple[pl.DataFrame, list[str]]:
    if scaling is None:
        from .scaling import scaling_analysis

        try:
            scaling = scaling_analysis(source, bootstrap=bootstrap, target=target)
        except NoData:
            return pl.DataFrame(schema=FIT_SCHEMA), []
        except Exception as exc:  # a broken fit must not hide the comparisons
            return pl.DataFrame(schema=FIT_SCHEMA), [f"Scaling fits failed: {type(exc).__name__}: {exc}"]
    return _fit_rows(scaling), []


# ------------------------------------------------------------------------------------------------
# Plain text (the quickstart's closing lines; the report renders the same sentences)
# ------------------------------------------------------------------------------------------------


def _num(x: Any, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _interval(lo: Any, hi: Any) -> str:
    return "no interval" if lo is None or hi is None else f"[{_num(lo)}, {_num(hi)}]"


def _next_step(row: dict[str, Any], needed: str, more: str, unit: str, comparisons: int) -> str:
    """What to run to resolve an unresolved comparison."""
    if row["verdict"] == "resolved":
        return "resolved"
    if row.get("sd") is None or row["verdict"] == "no interval":
        return f"no estimate of noise: run 2 or more {unit} of each to measure it"
    if not math.isfinite(row[needed]):
        return "within noise; the observed difference is too small to resolve at this spread"
    if row[more] == 0:  # enough for one test at 0.05, not after the adjustment for the family
        family = row.get("needed_in_family", math.inf)
        enough = f"about {int(family)} {unit} would resolve it" if math.isfinite(family) else "it cannot be resolved"
        return f"within noise after adjusting for {comparisons} comparisons (unadjusted p = {row['p']:.2g}); {enough}"
    return f"within noise; about {int(row[needed])} {unit} would resolve it ({int(row[more])} more)"


def verdict_lines(v: Verdicts) -> dict[str, list[str]]:
    """The verdicts as sentences, by part: ``best``, ``differences``, ``effects``, ``fits``, ``notes``."""
    out: dict[str, list[str]] = {"best": [], "differences": [], "effects": [], "fits": [], "notes": list(v.notes)}
    b = v.best
    if b is None:
        out["best"].append("No completed trials yet: nothing to rank.")
    else:
        sens = (
            f"LR sensitivity {_num(b['lr_sensitivity'])} over {b['lrs']} learning rates"
            if b.get("lr_sensitivity") is not None
            else "LR sensitivity unknown (1 learning rate tried)"
        )
        where = b["run"] if b["cell"] == "search" else f"{b['run']}, {b['cell']}"
        how = {"own seeds": f"t-interval over its {b['n']} seeds"}.get(b["interval"], b["interval"])
        noise = "one run: no interval" if b["interval"] == "none" else f"{_interval(b['lo'], b['hi'])}, {how}"
        out["best"].append(
            f"Best architecture ({where}): {b['name']}, eval loss {_num(b['mean'])} (n={b['n']}; {noise}); {sens}."
        )
    for row in v.differences.iter_rows(named=True):
        how = {"paired": f"paired over {row['n_pairs']} seeds", "welch": "Welch", "pooled": "pooled seed spread"}
        out["differences"].append(
            f"{row['name']} vs {row['best']}: {row['diff']:+.3f} {_interval(row['lo'], row['hi'])} "
            f"(n={row['n']} vs {row['n_best']}, {how.get(row['method'], 'no interval')}): "
            + _next_step(row, "seeds_needed", "more_seeds", "seeds", v.comparisons)
        )
    for row in v.effects.sort("p_holm", nulls_last=True).iter_rows(named=True):
        unit = (
            "pairs (seed x grid point)"
            if row["method"] == "paired"
            else "seeds per family"
            if row["axis"] == "group"
            else "architectures per value"
        )
        out["effects"].append(
            f"{row['axis']} = {row['value']} vs {row['baseline']} ({row['run']}): {row['effect']:+.3f} "
            f"{_interval(row['lo'], row['hi'])} (n={row['n']} vs {row['n_base']}, {row['method']}): "
            + _next_step(row, "n_needed", "more_needed", unit, v.comparisons)
        )
    for row in v.fits.iter_rows(named=True):
        head = f"{row['law']}, {row['series']}"
        if row["identified"] and row["estimate"] is not None:
            caveat = f" ({row['reason']})" if row["reason"] else ""
            out["fits"].append(
                f"{head}: identified; {row['quantity']} {_num(row['estimate'])} {_interval(row['lo'], row['hi'])} "
                f"at C = {row['at']:.3g} FLOPs (n={row['n_runs']} runs){caveat}."
            )
        elif row["identified"]:
            out["fits"].append(f"{head}: identified (n={row['n_runs']} runs).")
        else:
            out["fits"].append(f"{head}: not identified: {row['reason'] or 'no reason given'}.")
    return out


def verdicts_text(v: Verdicts, *, max_lines: int = 6) -> str:
    """The verdicts as plain text: at most ``max_lines`` comparisons per part (resolved first)."""
    parts = verdict_lines(v)
    lines = list(parts["best"])
    holm_note = f"{v.comparisons} comparison{'' if v.comparisons == 1 else 's'} in all, Holm-adjusted"
    titles = (("differences", f"Differences from the best ({holm_note})"), ("effects", "Effects at equal budget"))
    for key, title in titles:
        items = parts[key]
        if items:
            lines.append(f"{title}:")
            lines += [f"  - {item}" for item in items[:max_lines]]
            if len(items) > max_lines:
                lines.append(f"  ... and {len(items) - max_lines} more (see the report)")
    if parts["fits"]:
        lines.append("Scaling fits:")
        lines += [f"  - {item}" for item in parts["fits"]]
    lines += [f"Note: {n}" for n in parts["notes"]]
    return "\n".join(lines)


__all__ = ["ALPHA", "Verdicts", "verdict_lines", "verdicts", "verdicts_text"]
