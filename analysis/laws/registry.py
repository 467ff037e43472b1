"""Every scaling law behind one registry, ``LAWS``, keyed by the names the CLI and the results use.

The contract, written once (``Law``): ``fit(runs, by, columns, bootstrap=, seed=)`` fits the law
to each series of ``runs`` (the values of column ``by``: a study's families, a search's ladders)
and returns ``{series: FittedLaw}``, one record per series whatever happened: a series the runs
cannot identify is returned with ``identified`` False and the reason, never dropped and never
raised. A law fitted from arrays (``fit_arrays``: power, Chinchilla, isoFLOP) also serves
``fit_results``, ``fit_groups`` and ``leave_largest_out``; what ``fit_results`` adds at a target
is the entry's ``at_target``. ``simulate(rng, identifying)`` draws runs from a known truth
(``data.synthetic``) at a design that identifies the law, or one that does not: the contract
suite (tests/analysis/test_laws_contract.py) runs every entry through it, so a new law is one
module and one entry here, and gets those tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from archscale.analysis.data import synthetic

from .chinchilla import fit_chinchilla
from .fitted import FittedLaw, refused
from .inputs import DEFAULT_COLUMNS, Columns, FlopsModel, Simulated, unit_keys
from .isoflop import IsoFlopFit, fit_isoflop
from .ladder import MIN_RUNGS, fit_ladders, usable_ladders
from .ladder_nofloor import fit_without_floor
from .ladder_record import LadderFit
from .objective import NotIdentified
from .power_nofloor import fit_power_law_or_no_floor
from .record import LawFit
from .space_record import PREDICTS as SPACE_PREDICTS
from .space_record import fit_space, simulate_space


@dataclass(frozen=True)
class Law:
    """One scaling law as every caller sees it (the contract is the module docstring).

    ``title`` names it in messages; ``predicts`` says what ``FittedLaw.predict`` returns at what;
    ``min_runs`` is the fewest runs a series needs; ``inputs(columns)`` the input columns it
    reads. ``fit_arrays(inputs, loss, *, names, units, compute, flops, bootstrap, seed)`` returns
    the law module's own record (None: the law is fitted jointly over series, from ``fit`` only);
    ``needs_compute``: it reads the runs' training compute too; ``uses_flops``: its
    ``fit_results`` output reports the FLOP model; ``holdout``: it is checked by leave-largest-out;
    ``at_target(native, target, flops)``: what ``fit_results`` reports at ``target`` as ``(key,
    values, keys the runs must bound)``.
    """

    name: str
    title: str
    predicts: str
    min_runs: int
    inputs: Callable[[Columns], tuple[str, ...]]
    fit: Callable[..., dict[str, FittedLaw]]
    simulate: Callable[[np.random.Generator, bool], Simulated]
    fit_arrays: Callable[..., Any] | None = None
    needs_compute: bool = False
    uses_flops: bool = False
    holdout: bool = False
    at_target: Callable[[Any, float, FlopsModel | None], tuple[str, dict[str, Any], list[str]]] | None = None


def flops_of(runs: pl.DataFrame, n_col: str = "params") -> FlopsModel | None:
    """The runs' own FLOP model when ``flops_per_token`` is recorded for 2+ runs and N is ``params``."""
    if "flops_per_token" not in runs.columns or n_col != "params" or n_col not in runs.columns:
        return None
    n, fpt = runs[n_col].cast(float).to_numpy(), runs["flops_per_token"].cast(float).to_numpy()
    ok = np.isfinite(fpt)
    return FlopsModel.fit(n[ok], fpt[ok]) if ok.sum() >= 2 else None


# --------------------------------------------------------------------------------------------
# Laws fitted from arrays, one series at a time: power, Chinchilla Approach 3, isoFLOP


def _power_arrays(inputs: tuple[Any, ...], loss: Any, *, names: tuple[str, ...] = ("x",), **kw: Any) -> LawFit:
    kw.pop("compute", None), kw.pop("flops", None)
    return fit_power_law_or_no_floor(inputs[0], loss, x_name=names[0], **kw)


def _chinchilla_arrays(
    inputs: tuple[Any, ...], loss: Any, *, names: tuple[str, ...] = ("params", "tokens"), **kw: Any
) -> LawFit:
    kw.pop("compute", None), kw.pop("flops", None)
    return fit_chinchilla(inputs[0], inputs[1], loss, inputs=(names[0], names[1]), **kw)


def _isoflop_arrays(inputs: tuple[Any, ...], loss: Any, *, compute: Any, flops: FlopsModel | None, **kw: Any) -> Any:
    kw.pop("names", None), kw.pop("units", None)
    return fit_isoflop(inputs[0], loss, compute, flops=flops, **kw)


def _huber_record(law: str, series: str, fit: LawFit, predictor: Callable[..., Any], predicts: str) -> FittedLaw:
    ci = fit.ci()
    return FittedLaw(
        law=law,
        series=series,
        params=dict(fit.params),
        intervals={k: (lo, hi) for k, (lo, hi) in ci.items()},
        interval_method=fit.interval,
        identified=fit.identified,
        reason=fit.not_identified or None,
        n=fit.n_runs,
        df=fit.n_runs - len(fit.params),
        predicts=predicts,
        predictor=predictor,
        native=fit,
    )


def _power_record(series: str, fit: LawFit, flops: FlopsModel | None) -> FittedLaw:
    def predictor(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (fit.predict(x), *fit.predict_interval(x))

    return _huber_record("power", series, fit, predictor, f"loss at {fit.inputs[0]}")


def _chinchilla_record(series: str, fit: LawFit, flops: FlopsModel | None) -> FittedLaw:
    def predictor(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean = fit.loss_at(c, flops=flops)[0]
        if not len(fit.samples):
            return mean, np.full(c.shape, np.nan), np.full(c.shape, np.nan)
        with np.errstate(all="ignore"):
            lo, hi = fit.interval_of(fit.loss_at(c, fit.samples, flops))
        return mean, lo, hi

    return _huber_record("chinchilla", series, fit, predictor, "loss at compute (compute-optimal allocation)")


def _isoflop_record(series: str, fit: IsoFlopFit, flops: FlopsModel | None) -> FittedLaw:
    def predictor(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        alloc = fit.optimal_allocation(c)
        nan = np.full(c.shape, np.nan)
        return alloc["n_opt"], alloc.get("n_opt_lo", nan), alloc.get("n_opt_hi", nan)

    used = int(fit.budgets["used"].sum())
    return FittedLaw(
        law="isoflop",
        series=series,
        params=dict(fit.params),
        intervals={k: (lo, hi) for k, (lo, hi) in fit.ci().items()},
        interval_method=fit.interval,
        identified=fit.identified,
        reason=None,
        n=fit.n_runs,
        df=used - 2,  # the line log N_opt = log k_N + a log C through the budgets' minima
        predicts="n_opt at compute",
        predictor=predictor,
        native=fit,
    )


def _series_fit(name: str, record: Callable[[str, Any, FlopsModel | None], FittedLaw]) -> Callable[..., Any]:
    """``Law.fit`` for a law fitted one series at a time from arrays (``LAWS[name].fit_arrays``)."""

    def fit(
        runs: pl.DataFrame, by: str, columns: Columns = DEFAULT_COLUMNS, *, bootstrap: int = 0, seed: int = 0
    ) -> dict[str, FittedLaw]:
        law = LAWS[name]
        cols = law.inputs(columns)
        needed = [by, columns.loss, *cols] + ([columns.compute] if law.needs_compute else [])
        out: dict[str, FittedLaw] = {}
        for (series,), part in runs.drop_nulls(needed).group_by(by, maintain_order=True):
            key = str(series)
            if part.height < law.min_runs:
                why = f"{part.height} runs; {law.title} needs at least {law.min_runs}"
                out[key] = refused(name, key, why, n=part.height, predicts=law.predicts)
                continue
            flops = flops_of(part, columns.n)
            inputs = tuple(part[c].to_numpy() for c in cols)
            compute = part[columns.compute].to_numpy() if columns.compute in part.columns else None
            assert law.fit_arrays is not None
            try:
                native = law.fit_arrays(
                    inputs, part[columns.loss].to_numpy(), names=cols, units=unit_keys(part, cols),
                    compute=compute, flops=flops, bootstrap=bootstrap, seed=seed,
                )  # fmt: skip
            except ValueError as exc:  # NotIdentified, or too few usable runs
                out[key] = refused(name, key, str(exc), n=part.height, predicts=law.predicts)
                continue
            out[key] = record(key, native, flops)
        return out

    return fit


def _power_target(fit: LawFit, target: float, flops: FlopsModel | None) -> tuple[str, dict[str, Any], list[str]]:
    lo, hi = fit.predict_interval(target)
    return "prediction", {"x": target, "loss": fit.predict(target)[0], "lo": lo[0], "hi": hi[0]}, ["loss"]


def _chinchilla_target(fit: Any, target: float, flops: FlopsModel | None) -> tuple[str, dict[str, Any], list[str]]:
    optimal = {k: v[0] for k, v in fit.optimal_allocation(target, flops).items()}
    return "optimal", optimal, ["n_opt", "d_opt", "loss"]


def _isoflop_target(fit: Any, target: float, flops: FlopsModel | None) -> tuple[str, dict[str, Any], list[str]]:
    return "optimal", {k: v[0] for k, v in fit.optimal_allocation(target).items()}, ["n_opt", "d_opt"]


#: The size ladder the simulated designs train (parameters).
SIX_SIZES = (2e4, 4e4, 8e4, 1.6e5, 3.2e5, 6.4e5)


def _one_series(frame: pl.DataFrame, columns: Columns, truth: dict[str, float], at: float) -> Simulated:
    return Simulated(frame.with_columns(series=pl.lit("a")), "series", columns, {"a": truth}, at)


def _simulate_power(rng: np.random.Generator, identifying: bool) -> Simulated:
    sizes = SIX_SIZES if identifying else SIX_SIZES[:3]
    runs = synthetic.ladder_runs(rng, sizes=sizes, seeds=3, noise=0.005, law="power")
    truth = {k: synthetic.TINY_POWER[k] for k in ("E", "alpha")}
    return _one_series(runs, Columns(x="compute", loss="loss"), truth, 1e13)


def _simulate_chinchilla(rng: np.random.Generator, identifying: bool) -> Simulated:
    ladder = synthetic.ladder_runs(rng, sizes=SIX_SIZES, seeds=2, law="chinchilla")  # fixed tokens per parameter
    runs = synthetic.isoflop_runs(rng, noise=0.005) if identifying else ladder
    truth = {k: synthetic.TINY_CHINCHILLA[k] for k in ("E", "alpha", "beta")}
    return _one_series(runs, Columns(loss="loss"), truth, 1e13)


def _simulate_isoflop(rng: np.random.Generator, identifying: bool) -> Simulated:
    budgets = (1e11, 3e11, 1e12, 3e12, 1e13)
    ladder = synthetic.ladder_runs(rng, sizes=SIX_SIZES, law="chinchilla")  # one size per compute budget
    runs = synthetic.isoflop_runs(rng, budgets=budgets, noise=0.002) if identifying else ladder
    p, gamma = synthetic.TINY_CHINCHILLA, synthetic.TINY_FLOPS["gamma"]
    a = p["beta"] / (p["alpha"] + gamma * p["beta"])  # N_opt ∝ C^a at the compute-optimal allocation
    return _one_series(runs, Columns(loss="loss"), {"a": a, "b": 1.0 - gamma * a}, 1e13)


# --------------------------------------------------------------------------------------------
# Ladder laws, fitted jointly over a search's ladders (E shared, or no floor)


def _ladder_records(name: str, fit: LadderFit, ladders: dict[str, Any]) -> dict[str, FittedLaw]:
    out = {}
    for key, law in fit.laws.items():

        def predictor(c: np.ndarray, key: Any = key) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            rows = [fit.predict(key, float(v)) or (np.nan, np.nan, np.nan) for v in c]
            return tuple(np.array(col, float) for col in zip(*rows, strict=True))  # type: ignore[return-value]

        identified = law.identified and fit.identified
        out[str(key)] = FittedLaw(
            law=name,
            series=str(key),
            params={"E": law.E, "log_A": law.log_A, "alpha": law.alpha},
            intervals=fit.param_intervals(key),
            interval_method=fit.interval_method,
            identified=identified,
            reason=None if identified else (law.reason or fit.reason),
            n=len(ladders[key][0]),
            df=fit.dof,
            predicts="loss at compute",
            predictor=predictor,
            native=fit,
        )
    return out


def _ladders(runs: pl.DataFrame, by: str, columns: Columns) -> dict[Any, tuple[np.ndarray, np.ndarray]]:
    parts = runs.drop_nulls([by, columns.compute, columns.loss]).group_by(by, maintain_order=True)
    return {str(k): (p[columns.compute].to_numpy(), p[columns.loss].to_numpy()) for (k,), p in parts}


def _fit_ladder(
    runs: pl.DataFrame, by: str, columns: Columns = DEFAULT_COLUMNS, *, bootstrap: int = 200, seed: int = 0
) -> dict[str, FittedLaw]:
    ladders = _ladders(runs, by, columns)
    return _ladder_records("ladder", fit_ladders(ladders, bootstrap=bootstrap, seed=seed), ladders)


def _fit_ladder_nofloor(
    runs: pl.DataFrame, by: str, columns: Columns = DEFAULT_COLUMNS, *, bootstrap: int = 0, seed: int = 0
) -> dict[str, FittedLaw]:
    """The no-floor law on every usable ladder (each its own line; no shared E, so one ladder is enough)."""
    ladders = _ladders(runs, by, columns)
    usable, laws, c0 = usable_ladders(ladders)
    if not usable:
        why = f"no ladder has {MIN_RUNGS}+ distinct compute levels"
        return _ladder_records("ladder_nofloor", LadderFit(laws, np.nan, np.nan, 0, 0, c0, False, why), ladders)
    fit = fit_without_floor(usable, c0, "the law without a floor was asked for")
    fit.laws = {**laws, **fit.laws}
    return _ladder_records("ladder_nofloor", fit, ladders)


def _ladder_frame(runs: dict[int, tuple[np.ndarray, np.ndarray]], floor: float = 0.0) -> pl.DataFrame:
    return pl.concat([pl.DataFrame({"ladder": str(k), "compute": c, "loss": y - floor}) for k, (c, y) in runs.items()])


def _simulate_ladder(rng: np.random.Generator, identifying: bool) -> Simulated:
    runs, truth = synthetic.ladder_search_runs(rng, ladders=4 if identifying else 1, noise=0.003)
    wanted = {str(k): {"E": e, "alpha": alpha} for k, (e, _, alpha) in truth.items()}
    return Simulated(_ladder_frame(runs), "ladder", Columns(loss="loss"), wanted, 1e13)


def _simulate_ladder_nofloor(rng: np.random.Generator, identifying: bool) -> Simulated:
    rungs = synthetic.LADDER_SEARCH_RUNGS if identifying else synthetic.LADDER_SEARCH_RUNGS[:2]
    runs, truth = synthetic.ladder_search_runs(rng, ladders=3, rungs=rungs, noise=0.003)
    e = synthetic.TINY_POWER["E"]  # taken off: a law with no floor
    wanted = {str(k): {"alpha": alpha} for k, (_, _, alpha) in truth.items()}
    return Simulated(_ladder_frame(runs, floor=e), "ladder", Columns(loss="loss"), wanted, 1e13)


def _power_inputs(c: Columns) -> tuple[str, ...]:
    return (c.x,)


def _chinchilla_inputs(c: Columns) -> tuple[str, ...]:
    return (c.n, c.d)


def _isoflop_inputs(c: Columns) -> tuple[str, ...]:
    return (c.n,)


def _ladder_inputs(c: Columns) -> tuple[str, ...]:
    return (c.compute,)


LAWS: dict[str, Law] = {
    "power": Law(
        "power", "power law", "loss at x", 3, _power_inputs, _series_fit("power", _power_record), _simulate_power,
        fit_arrays=_power_arrays, holdout=True, at_target=_power_target,
    ),
    "chinchilla": Law(
        "chinchilla", "Approach 3", "loss at compute (compute-optimal allocation)", 5, _chinchilla_inputs,
        _series_fit("chinchilla", _chinchilla_record), _simulate_chinchilla,
        fit_arrays=_chinchilla_arrays, uses_flops=True, holdout=True, at_target=_chinchilla_target,
    ),
    "isoflop": Law(
        "isoflop", "Approach 2", "n_opt at compute", 6, _isoflop_inputs, _series_fit("isoflop", _isoflop_record),
        _simulate_isoflop, fit_arrays=_isoflop_arrays, needs_compute=True, uses_flops=True,
        at_target=_isoflop_target,
    ),
    "ladder": Law(
        "ladder", "ladder law (shared E)", "loss at compute", 3, _ladder_inputs, _fit_ladder, _simulate_ladder,
    ),
    "ladder_nofloor": Law(
        "ladder_nofloor", "ladder law without a floor (E = 0)", "loss at compute", 3, _ladder_inputs,
        _fit_ladder_nofloor, _simulate_ladder_nofloor,
    ),
    "space": Law(
        "space", "space law (one law conditioned on the architecture's axes)", SPACE_PREDICTS, 4, _ladder_inputs,
        fit_space, simulate_space,
    ),
}  # fmt: skip

#: The laws ``fit_results`` (``archscale fit --law``) fits from a table of runs.
TABLE_LAWS: tuple[str, ...] = tuple(name for name, law in LAWS.items() if law.fit_arrays is not None)
#: The laws ``archscale fit --law`` fits over whole results directories, conditioned on the architecture.
CONDITIONED_LAWS: tuple[str, ...] = ("space",)

__all__ = ["CONDITIONED_LAWS", "LAWS", "TABLE_LAWS", "Columns", "Law", "NotIdentified", "Simulated", "flops_of"]
