"""Scaling studies: everything the report's "Scaling fits" section shows, as one call.

    >>> import archscale.analysis as an
    >>> s = an.scaling_analysis("results/my-study", bootstrap=200)
    >>> s.power["baseline"].params            # power law in compute, lower envelope, per family
    >>> s.approach3.ranking                   # families by predicted loss at s.target
    >>> s.approach3.multipliers               # effective-compute multipliers vs the baseline
    >>> s.approach2.exponents                 # isoFLOP exponents a, b with intervals
    >>> s.warnings                            # what to distrust, one line each

The pieces are public too: ``frontier`` and ``scaling_fits`` (power laws on the lower envelope),
``isoflop_fit``, ``approach3`` (Chinchilla Approach 3 per family with the compute-optimal
allocation, ranking, multipliers and the leave-largest-out check) and ``parameter_table``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import polars as pl

from .fits import (
    ChinchillaFit,
    FlopsModel,
    IsoFlopFit,
    LawFit,
    PowerLawFit,
    compute_budgets,
    effective_compute_multiplier,
    fit_groups,
    fit_isoflop,
    fit_power_law,
    leave_largest_out,
    rank_architectures,
)
from .fits_chinchilla import design_problems
from .runs import NoData, Source, completed, series_column

#: The family every other is compared with, when a study has one of that name.
BASELINE = "baseline"


def frontier(runs: pl.DataFrame, *, x: str, by: str = "series", loss: str = "eval_loss") -> pl.DataFrame:
    """The lower envelope: per ``by`` and per level of ``x`` (levels found by ``compute_budgets``,
    values within ~5% are one level), the run with the lowest loss."""
    runs = runs.drop_nulls([x, loss]).filter(pl.col(x) > 0)
    level = compute_budgets(runs[x].to_numpy()) if runs.height else np.array([], np.int64)
    return (
        runs.with_columns(_level=pl.Series(level, dtype=pl.Int64))
        .sort(loss)
        .group_by(by, "_level", maintain_order=True)
        .first()
        .drop("_level")
        .sort(by, x)
    )


def scaling_fits(
    runs: pl.DataFrame, *, x: str, series: str, bootstrap: int = 100, loss: str = "eval_loss"
) -> dict[str, PowerLawFit]:
    """Power-law fits of ``loss`` on ``x`` per ``series`` value, on the lower envelope
    (``frontier``: the best run at each level of ``x``); series with <3 levels are skipped."""
    fits: dict[str, PowerLawFit] = {}
    for (name,), part in frontier(runs, x=x, by=series, loss=loss).group_by(series, maintain_order=True):
        if part.height >= 3:
            fits[str(name)] = fit_power_law(part[x].to_numpy(), part[loss].to_numpy(), x_name=x, bootstrap=bootstrap)
    return fits


def isoflop_fit(runs: pl.DataFrame, *, bootstrap: int = 0) -> IsoFlopFit | None:
    """Approach 2 on ``runs`` (params, eval_loss, compute), or None when it cannot be fitted."""
    try:
        return fit_isoflop(
            runs["params"].to_numpy(), runs["eval_loss"].to_numpy(), runs["compute"].to_numpy(), bootstrap=bootstrap
        )
    except ValueError:
        return None


def parameter_table(fits: dict[str, LawFit]) -> pl.DataFrame:
    """Long table: one row per (series, parameter) with ``estimate, lo, hi, runs``."""
    frames = [
        pl.DataFrame(
            {
                "series": name,
                "parameter": list(fit.params),
                "estimate": list(fit.params.values()),
                "lo": [fit.ci().get(k, [math.nan, math.nan])[0] for k in fit.params],
                "hi": [fit.ci().get(k, [math.nan, math.nan])[1] for k in fit.params],
                "runs": fit.n_runs,
            }
        )
        for name, fit in fits.items()
    ]
    return pl.concat(frames) if frames else pl.DataFrame()


def flops_model(runs: pl.DataFrame) -> FlopsModel:
    """``FlopsModel`` fitted to the runs' counted ``flops_per_token`` (``6N`` when none is recorded)."""
    if runs["flops_per_token"].drop_nulls().len() == 0:
        return FlopsModel()
    return FlopsModel.fit(runs["params"].to_numpy(), runs["flops_per_token"].to_numpy())


@dataclass(frozen=True)
class Approach3:
    """Chinchilla Approach 3 per family, and what the report derives from it at ``target``.

    ``allocation``: per series the compute-optimal ``n_opt, d_opt, loss`` (and ``*_lo/*_hi``).
    ``ranking``: ``rank_architectures`` at ``target``. ``multipliers``: one row per family other
    than ``baseline`` (``effective_compute_multiplier``; empty with one family). ``holdout``: the
    leave-largest-out check per series (empty when no series has runs below its largest budget).
    ``flops``: the FLOP model for ``C = c N^gamma D``, fitted to all the study's runs.
    """

    fits: dict[str, ChinchillaFit]
    flops: FlopsModel
    target: float
    allocation: pl.DataFrame
    ranking: pl.DataFrame
    baseline: str
    multipliers: pl.DataFrame
    holdout: pl.DataFrame


def approach3_design(runs: pl.DataFrame, *, series: str = "series") -> dict[str, list[str]]:
    """Per series, why its runs cannot identify Approach 3 (``design_problems``; empty list: they can)."""
    return {
        str(name): design_problems(part["params"].to_numpy(), part["tokens"].to_numpy())
        for (name,), part in runs.group_by(series, maintain_order=True)
    }


def approach3(runs: pl.DataFrame, *, target: float, bootstrap: int = 100, series: str = "series") -> Approach3 | None:
    """Approach 3 on every series whose design identifies it (see ``approach3_design``), with the
    compute-optimal allocation, ranking, multipliers vs ``BASELINE`` (else the first family) and
    the leave-largest-out check at ``target``; None when no series qualifies."""
    design = approach3_design(runs, series=series)
    identifiable = runs.filter(pl.col(series).cast(pl.String).is_in([k for k, v in design.items() if not v]))
    fits = cast(dict[str, ChinchillaFit], fit_groups(identifiable, by=series, law="chinchilla", bootstrap=bootstrap))
    if not fits:
        return None
    flops = flops_model(runs)
    allocation = pl.concat(
        [
            pl.DataFrame(fit.optimal_allocation([target], flops)).select(pl.lit(name).alias("series"), pl.all())
            for name, fit in fits.items()
        ],
        how="diagonal_relaxed",
    )
    base = BASELINE if BASELINE in fits else next(iter(fits))
    multipliers = [
        {"variant": name, "baseline": base, **effective_compute_multiplier(fits[base], fit, at=target, flops=flops)}
        for name, fit in fits.items()
        if name != base
    ]
    checks = []
    for (name,), part in identifiable.group_by(series, maintain_order=True):
        inputs = (part["params"].to_numpy(), part["tokens"].to_numpy())
        try:
            check = leave_largest_out("chinchilla", inputs, part["eval_loss"].to_numpy(), part["compute"].to_numpy())
        except ValueError:  # too few runs below the largest budget
            continue
        checks.append({"series": str(name), **{k: v for k, v in check.items() if k != "params"}})
    return Approach3(
        fits=fits,
        flops=flops,
        target=target,
        allocation=allocation,
        ranking=rank_architectures(fits, at=target, flops=flops),
        baseline=base,
        multipliers=pl.DataFrame(multipliers),
        holdout=pl.DataFrame(checks),
    )


@dataclass(frozen=True)
class Approach2:
    """Chinchilla Approach 2 (isoFLOP) per series: the fits, and ``exponents`` (one row per
    series: ``a`` of ``N_opt ∝ C^a`` and ``b`` of ``D_opt ∝ C^b`` with intervals, budgets used)."""

    fits: dict[str, IsoFlopFit]
    exponents: pl.DataFrame


def approach2(runs: pl.DataFrame, *, bootstrap: int = 100, series: str = "series") -> Approach2 | None:
    """Approach 2 on each series that has 2+ compute budgets with 3+ sizes; None when none has."""
    fits, rows = {}, []
    for (name,), part in runs.group_by(series, maintain_order=True):
        iso = isoflop_fit(part, bootstrap=bootstrap)
        if iso is None:
            continue
        fits[str(name)] = iso
        ci = iso.ci()
        a_lo, a_hi = ci.get("a", [None, None])
        b_lo, b_hi = ci.get("b", [None, None])
        a = {"a (N_opt ∝ C^a)": iso.params["a"], "a lo": a_lo, "a hi": a_hi}
        b = {"b (D_opt ∝ C^b)": iso.params["b"], "b lo": b_lo, "b hi": b_hi}
        rows.append({"series": str(name), **a, **b, "budgets": iso.budgets.height})
    return Approach2(fits=fits, exponents=pl.DataFrame(rows)) if fits else None


@dataclass(frozen=True)
class ScalingAnalysis:
    """What a scaling study shows (see module docstring). ``runs``: its completed runs with a
    ``series`` column (the family); ``target``: the compute everything is extrapolated and
    ranked at; ``approach3``/``approach2`` are None when the design cannot support them."""

    runs: pl.DataFrame
    target: float
    bootstrap: int
    power: dict[str, PowerLawFit]
    approach3: Approach3 | None
    approach2: Approach2 | None
    design: dict[str, list[str]] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """Every fit's warnings as ``"<law> <series>: <message>"``, and why Approach 3 skipped a series."""
        out = [f"power law {name}: {w}" for name, fit in self.power.items() for w in fit.warnings]
        for name, problems in self.design.items():
            if problems:
                out.append(f"Approach 3 {name}: not fitted: " + ", ".join(problems))
        for label, part in (("Approach 3", self.approach3), ("Approach 2", self.approach2)):
            fits: dict[str, Any] = part.fits if part is not None else {}
            out += [f"{label} {name}: {w}" for name, fit in fits.items() for w in fit.warnings]
        return out


def scaling_analysis(source: Source, *, bootstrap: int = 100, target: float | None = None) -> ScalingAnalysis:
    """Power laws, Approach 3 and Approach 2 per family of a scaling study, at ``target`` compute
    (default: 10x the largest run's). ``source``: results directories or a trials frame; only
    completed runs with a ``group`` (a scaling study's family) count. Raises ``NoData`` without any."""
    runs = completed(source).filter(pl.col("group").is_not_null())
    if runs.height == 0:
        raise NoData("no scaling-study runs (trials with a 'group'); searches are summarised by the Pareto front")
    runs = series_column(runs)
    target = target or float(runs["compute"].max()) * 10.0
    return ScalingAnalysis(
        runs=runs,
        target=target,
        bootstrap=bootstrap,
        power=scaling_fits(runs, x="compute", series="series", bootstrap=bootstrap),
        approach3=approach3(runs, target=target, bootstrap=bootstrap),
        approach2=approach2(runs, bootstrap=bootstrap),
        design=approach3_design(runs),
    )
