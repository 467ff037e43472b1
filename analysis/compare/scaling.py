"""Scaling studies: everything the report's "Scaling fits" section shows, as one call.

    >>> import archscale.analysis as an
    >>> s = an.scaling_analysis("results/my-study", bootstrap=200)
    >>> s.power["baseline"].params            # power law in compute, lower envelope, per family
    >>> s.approach3.ranking                   # families by predicted loss at s.target
    >>> s.approach3.multipliers               # effective-compute multipliers vs the baseline
    >>> s.approach2.exponents                 # isoFLOP exponents a, b with intervals
    >>> s.refused                             # {"<law> <family>": why it was not fitted / not identified}
    >>> s.warnings                            # what to distrust, one line each

The pieces are public too: ``frontier`` and ``scaling_fits`` (power laws per series: on every
run of a study family, seeds grouped by grid point; on the lower envelope of a search),
``isoflop_fit``, ``approach3`` (Chinchilla Approach 3 per family with the compute-optimal
allocation, ranking, multipliers and the leave-largest-out check) and ``parameter_table``.

Nothing is derived from a fit the runs do not identify: such a family is listed in ``refused``
with the reason and what to run, and left out of charts, allocations, rankings and multipliers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import polars as pl

from archscale.analysis.data.runs import NoData, Source, at_transferred_lr, completed, series_column
from archscale.analysis.laws.chinchilla import REMEDY, ChinchillaFit, design_problems
from archscale.analysis.laws.groups import fit_groups, leave_largest_out, unit_keys
from archscale.analysis.laws.inputs import FlopsModel, compute_budgets
from archscale.analysis.laws.isoflop import IsoFlopFit, fit_isoflop
from archscale.analysis.laws.objective import NotIdentified
from archscale.analysis.laws.power import PowerLawFit
from archscale.analysis.laws.power_nofloor import fit_power_law_or_no_floor
from archscale.analysis.laws.record import LawFit

from .law_ranking import effective_compute_multiplier, rank_architectures, rankable

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


def power_fits(
    runs: pl.DataFrame, *, x: str, series: str, bootstrap: int = 100, loss: str = "eval_loss"
) -> tuple[dict[str, PowerLawFit], dict[str, str]]:
    """Power laws of ``loss`` on ``x`` per ``series``, and ``{series: why}`` for those not fitted, not
    identified, or whose intervals were asked for and cannot be made. A study family (runs with a
    ``group``) is fitted on all its runs, seeds grouped into design units by grid point
    (``unit_keys``); other series on the lower envelope (``frontier``, the best run at each level
    of ``x``)."""
    fits: dict[str, PowerLawFit] = {}
    refused: dict[str, str] = {}
    study = runs.filter(pl.col("group").is_not_null()) if "group" in runs.columns else runs.clear()
    envelope = frontier(runs.filter(~pl.col(series).is_in(study[series].unique().implode())), x=x, by=series, loss=loss)
    parts = list(study.drop_nulls([x, loss]).filter(pl.col(x) > 0).group_by(series, maintain_order=True))
    parts += list(envelope.group_by(series, maintain_order=True))
    for (name,), part in parts:
        try:
            fit = fit_power_law_or_no_floor(
                part[x].to_numpy(), part[loss].to_numpy(), x_name=x, bootstrap=bootstrap, units=unit_keys(part, [x])
            )
        except (NotIdentified, ValueError) as exc:
            refused[str(name)] = str(exc)
            continue
        if not fit.identified:
            refused[str(name)] = fit.not_identified
        elif fit.interval == "unavailable":  # intervals asked for and impossible: nothing is determined
            refused[str(name)] = f"not determined: {fit.interval_note}"
        else:
            fits[str(name)] = fit
    return fits, refused


def scaling_fits(
    runs: pl.DataFrame, *, x: str, series: str, bootstrap: int = 100, loss: str = "eval_loss"
) -> dict[str, PowerLawFit]:
    """The identified power laws of ``power_fits`` (series it refuses are left out)."""
    return power_fits(runs, x=x, series=series, bootstrap=bootstrap, loss=loss)[0]


def isoflop_fit(runs: pl.DataFrame, *, bootstrap: int = 0) -> IsoFlopFit | None:
    """Approach 2 on ``runs`` (params, eval_loss, compute) with their own FLOP model, or None when
    the runs cannot support it."""
    try:
        return fit_isoflop(
            runs["params"].to_numpy(),
            runs["eval_loss"].to_numpy(),
            runs["compute"].to_numpy(),
            flops=flops_model(runs),
            bootstrap=bootstrap,
        )
    except ValueError:
        return None


def parameter_table(fits: dict[str, LawFit]) -> pl.DataFrame:
    """Long table: one row per (series, parameter) with ``estimate, lo, hi, runs, units, interval,
    note``; a parameter whose interval the runs do not bound has a null estimate and the reason."""
    frames = []
    for name, fit in fits.items():
        ci, undetermined = fit.ci(), fit.undetermined()
        frames.append(
            pl.DataFrame(
                {
                    "series": name,
                    "parameter": list(fit.params),
                    "estimate": [None if k in undetermined else v for k, v in fit.params.items()],
                    "lo": [ci.get(k, [math.nan, math.nan])[0] for k in fit.params],
                    "hi": [ci.get(k, [math.nan, math.nan])[1] for k in fit.params],
                    "runs": fit.n_runs,
                    "units": fit.n_units,
                    "interval": fit.interval,
                    "note": [undetermined.get(k, "") for k in fit.params],
                },
                schema_overrides={"estimate": pl.Float64},
            ).with_columns(pl.col("lo", "hi").fill_nan(None))
        )
    return pl.concat(frames) if frames else pl.DataFrame()


def flops_model(runs: pl.DataFrame) -> FlopsModel:
    """``FlopsModel`` fitted to the runs' counted ``flops_per_token`` (``6N`` when none is recorded)."""
    if "flops_per_token" not in runs.columns or runs["flops_per_token"].drop_nulls().len() == 0:
        return FlopsModel()
    return FlopsModel.fit(runs["params"].to_numpy(), runs["flops_per_token"].to_numpy())


@dataclass(frozen=True)
class Approach3:
    """Chinchilla Approach 3 per family, and what the report derives from it at ``target``.

    ``fits``: the identified fits only. ``allocation``: per series the compute-optimal ``n_opt,
    d_opt, loss`` (and ``*_lo/*_hi``; null where the runs do not bound them). ``ranking``:
    ``rank_architectures`` at ``target``. ``multipliers``: one row per family other than
    ``baseline`` (``effective_compute_multiplier``; empty with one family). ``holdout``: the
    leave-largest-out check per series (empty when no series has runs below its largest budget).
    ``flops``: the FLOP model for ``C = c N^gamma D``, fitted to all the study's runs.
    ``not_identified``: ``{series: why}`` for families whose design passed but whose fit did not
    (a parameter at the edge of the box), and families left out of the ranking.
    """

    fits: dict[str, ChinchillaFit]
    flops: FlopsModel
    target: float
    allocation: pl.DataFrame
    ranking: pl.DataFrame
    baseline: str
    multipliers: pl.DataFrame
    holdout: pl.DataFrame
    not_identified: dict[str, str] = field(default_factory=dict)


def approach3_design(runs: pl.DataFrame, *, series: str = "series") -> dict[str, list[str]]:
    """Per series, why its runs cannot identify Approach 3 (``design_problems``; empty list: they can)."""
    return {
        str(name): design_problems(part["params"].to_numpy(), part["tokens"].to_numpy())
        for (name,), part in runs.group_by(series, maintain_order=True)
    }


def approach3(runs: pl.DataFrame, *, target: float, bootstrap: int = 100, series: str = "series") -> Approach3 | None:
    """Approach 3 on every series whose design identifies it (see ``approach3_design``), with the
    compute-optimal allocation, ranking, multipliers vs ``BASELINE`` (else the first family) and
    the leave-largest-out check at ``target``, all from identified fits only; None when no series
    passes the design check (``fits`` is empty when none of those is identified)."""
    design = approach3_design(runs, series=series)
    identifiable = runs.filter(pl.col(series).cast(pl.String).is_in([k for k, v in design.items() if not v]))
    fitted = cast(dict[str, ChinchillaFit], fit_groups(identifiable, by=series, law="chinchilla", bootstrap=bootstrap))
    refused = {name: fit.not_identified for name, fit in fitted.items() if not fit.identified}
    refused |= {
        name: f"not determined: {fit.interval_note}" for name, fit in fitted.items() if fit.interval == "unavailable"
    }
    fits = {name: fit for name, fit in fitted.items() if name not in refused}
    if not fitted:
        return None
    flops = flops_model(runs)
    refused |= rankable(fits, at=target, flops=flops)
    frames = [
        pl.DataFrame(fit.optimal_allocation([target], flops)).select(
            pl.lit(name).alias("series"), pl.all(), pl.lit(fit.n_runs).alias("runs")
        )
        for name, fit in fits.items()
    ]
    allocation = (
        pl.concat(frames, how="diagonal_relaxed").with_columns(pl.selectors.float().fill_nan(None))
        if frames
        else pl.DataFrame()
    )
    ranked = {name: fit for name, fit in fits.items() if name not in refused}
    base = BASELINE if BASELINE in ranked else next(iter(ranked), "")
    multipliers = [
        {"variant": name, "baseline": base, **effective_compute_multiplier(ranked[base], fit, at=target, flops=flops)}
        for name, fit in ranked.items()
        if name != base
    ]
    checks = []
    for (name,), part in identifiable.group_by(series, maintain_order=True):
        if str(name) not in fits:
            continue
        inputs = (part["params"].to_numpy(), part["tokens"].to_numpy())
        try:
            check = leave_largest_out("chinchilla", inputs, part["eval_loss"].to_numpy(), part["compute"].to_numpy())
        except ValueError:  # too few runs below the largest budget, or not identified without it
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
        not_identified=refused,
    )


@dataclass(frozen=True)
class Approach2:
    """Chinchilla Approach 2 (isoFLOP) per series: the fits, and ``exponents`` (one row per
    series: ``a`` of ``N_opt ∝ C^a`` and ``b`` of ``D_opt ∝ C^b`` with intervals, budgets used)."""

    fits: dict[str, IsoFlopFit]
    exponents: pl.DataFrame


def approach2(runs: pl.DataFrame, *, bootstrap: int = 100, series: str = "series") -> Approach2 | None:
    """Approach 2 on each series with 2+ compute budgets whose minimum is bracketed; None when none has."""
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
        used = int(iso.budgets["used"].sum())
        rows.append({"series": str(name), **a, **b, "budgets": iso.budgets.height, "budgets used": used})
    return Approach2(fits=fits, exponents=pl.DataFrame(rows)) if fits else None


@dataclass(frozen=True)
class ScalingAnalysis:
    """What a scaling study shows (see module docstring). ``runs``: its completed runs with a
    ``series`` column (the family); ``target``: the compute everything is extrapolated and
    ranked at; ``approach3``/``approach2`` are None when the design cannot support them;
    ``design``: per family, why its runs cannot identify Approach 3; ``power_refused`` and
    ``approach3_refused``: per family, one line saying why that law is not shown for it and what
    to run instead; ``refused`` is both, keyed ``"<law> <family>"``."""

    runs: pl.DataFrame
    target: float
    bootstrap: int
    power: dict[str, PowerLawFit]
    approach3: Approach3 | None
    approach2: Approach2 | None
    design: dict[str, list[str]] = field(default_factory=dict)
    power_refused: dict[str, str] = field(default_factory=dict)
    approach3_refused: dict[str, str] = field(default_factory=dict)

    @property
    def refused(self) -> dict[str, str]:
        """Every refusal as ``{"<law> <family>": why}`` (``power law ...``, ``Approach 3 ...``)."""
        return {f"power law {k}": v for k, v in self.power_refused.items()} | {
            f"Approach 3 {k}": v for k, v in self.approach3_refused.items()
        }

    @property
    def warnings(self) -> list[str]:
        """Every refusal and every fit's warnings as ``"<law> <series>: <message>"``."""
        out = [f"{key}: {why}" for key, why in self.refused.items()]
        out += [f"power law {name}: {w}" for name, fit in self.power.items() for w in fit.warnings]
        for label, part in (("Approach 3", self.approach3), ("Approach 2", self.approach2)):
            fits: dict[str, Any] = part.fits if part is not None else {}
            out += [f"{label} {name}: {w}" for name, fit in fits.items() for w in fit.warnings]
        return out


def scaling_analysis(source: Source, *, bootstrap: int = 100, target: float | None = None) -> ScalingAnalysis:
    """Power laws, Approach 3 and Approach 2 per family of a scaling study, at ``target`` compute
    (default: 10x the largest run's). ``source``: results directories or a trials frame; only
    completed runs with a ``group`` (a scaling study's family) count. Raises ``NoData`` without any."""
    runs = at_transferred_lr(completed(source).filter(pl.col("group").is_not_null()))
    if runs.height == 0:
        raise NoData("no scaling-study runs (trials with a 'group'); searches are summarised by the Pareto front")
    runs = series_column(runs)
    target = target or float(runs["compute"].max()) * 10.0
    power, power_refused = power_fits(runs, x="compute", series="series", bootstrap=bootstrap)
    design = approach3_design(runs)
    a3 = approach3(runs, target=target, bootstrap=bootstrap)
    a3_refused = {
        name: f"not fitted: the runs cannot identify it: {'; '.join(problems)}; {REMEDY}"
        for name, problems in design.items()
        if problems
    }
    if a3 is not None:
        a3_refused |= a3.not_identified
    return ScalingAnalysis(
        runs=runs,
        target=target,
        bootstrap=bootstrap,
        power=power,
        approach3=a3,
        approach2=approach2(runs, bootstrap=bootstrap),
        design=design,
        power_refused=power_refused,
        approach3_refused=a3_refused,
    )
