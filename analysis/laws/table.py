"""Fit a scaling law to a table of runs: what ``archscale fit`` prints, as a library call.

    >>> from archscale.analysis import fit_results
    >>> fit_results("results/my-study", law="chinchilla", group="baseline", bootstrap=200, target=1e21)
    {'law': 'chinchilla', 'params': {'E': ..., ...}, 'ci': {...}, 'optimal': {...}, 'leave_largest_out': {...}, ...}

The table is a results directory (its completed trials; loss column ``eval_loss``), a
``.parquet``/``.csv`` file (loss column ``loss``) or a polars frame (``loss``, else ``eval_loss``).
Every mistake in the input (a missing file or column, a non-numeric column, an unknown group, too
few runs for the law) raises ``UserError`` with one line naming the file or column and what is
allowed. So does a design that cannot identify the law, and a fit that ends at the edge of its
box: one line with the reason and what to run instead (``archscale fit`` exits 2).

Every number returned is one the runs determine: a quantity whose interval the runs do not bound
(a parameter, the prediction at ``target``, the compute-optimal allocation) is returned as null,
with the reason under ``undetermined``. Intervals come from the design units of the runs
(``unit_keys``: the planned grid point when recorded, so seeds of one size stay together).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, NoReturn

import numpy as np
import polars as pl

from archscale.analysis.data.loaders import PathLike, load_trials
from archscale.analysis.data.runs import at_transferred_lr
from archscale.spaces.errors import UserError

from .groups import leave_largest_out
from .inputs import FlopsModel, unit_keys
from .objective import NotIdentified
from .registry import LAWS as LAWS_BY_NAME
from .registry import TABLE_LAWS, Columns, flops_of
from .registry import Law as Law_

#: The laws a table of runs can be fitted with (``archscale fit --law``): the entries of
#: ``registry.LAWS`` fitted from arrays.
LAWS = TABLE_LAWS
Law = Literal["power", "chinchilla", "isoflop"]


def _fail(message: str) -> NoReturn:
    raise UserError(message)


def jsonable(value: Any) -> Any:
    """numpy scalars/arrays and non-finite floats made JSON-safe (NaN/inf -> null)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_runs(path: PathLike, *, loss_col: str | None = None) -> tuple[pl.DataFrame, str]:
    """The runs to fit and the loss column: a results directory (completed trials, ``eval_loss``)
    or a parquet/CSV file (``loss``); ``loss_col`` overrides the loss column's name."""
    path = Path(path)
    if not path.exists():
        _fail(f"{path}: no such file or directory (give a results directory, a .parquet or a .csv file)")
    if path.is_dir():
        if not (path / "trials.parquet").exists():
            _fail(
                f"{path}: no trials.parquet (is this a results directory? the search may not have finished a trial yet)"
            )
        # an lr sweep's detuned points (lr_factor != 1) are a check, not points of the law
        return at_transferred_lr(load_trials(path, status="completed").collect()), loss_col or "eval_loss"
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        _fail(f"{path}: unsupported input {suffix!r}; allowed: a results directory, .parquet, .csv")
    try:
        table = pl.read_parquet(path) if suffix == ".parquet" else pl.read_csv(path, infer_schema_length=10_000)
    except pl.exceptions.PolarsError as exc:
        _fail(f"{path}: cannot read: {str(exc).splitlines()[0]}")
    return table, loss_col or "loss"


def _column(table: pl.DataFrame, name: str, path: Path, flag: str) -> np.ndarray:
    """A numeric column as float64 (``flag`` names the option that sets it, for the message)."""
    if name not in table.columns:
        _fail(f"{path}: no column {name!r} (set it with {flag}); columns: {', '.join(table.columns)}")
    col = table[name]
    if not col.dtype.is_numeric():
        _fail(f"{path}: column {name!r} must be numeric, got {col.dtype}")
    return col.cast(pl.Float64).to_numpy()


def _select_group(table: pl.DataFrame, group: str | None, path: Path) -> tuple[pl.DataFrame, list[str]]:
    """The runs of one scaling-study family (``group``), and notes about the choice."""
    names = sorted(table["group"].drop_nulls().unique().to_list()) if "group" in table.columns else []
    if group is not None:
        if "group" not in table.columns:
            _fail(f"{path}: --group needs a 'group' column; columns: {', '.join(table.columns)}")
        if group not in names:
            _fail(f"{path}: no group {group!r}; groups: {', '.join(names) or '(none)'}")
        return table.filter(pl.col("group") == group), []
    if len(names) > 1:
        return table, [f"fitting {len(names)} families together ({', '.join(names)}); pick one with --group"]
    return table, []


def fit_results(
    source: PathLike | pl.DataFrame,
    *,
    law: Law = "power",
    x: str = "params",
    n_col: str = "params",
    d_col: str = "tokens",
    loss_col: str | None = None,
    compute_col: str = "compute",
    bootstrap: int = 0,
    target: float | None = None,
    seed: int = 0,
    group: str | None = None,
) -> dict[str, Any]:
    """Fit ``law`` to the runs in ``source`` and return one JSON-able dict (see docs/analysis.md).

    Keys: the fit's ``to_dict()`` (``law, params, ci, n_runs, n_bootstrap, warnings, ...``); with
    ``target``, ``prediction`` (power) or ``optimal`` (chinchilla, isoflop); ``flops_model``
    (chinchilla); ``leave_largest_out`` when the runs span 3+ compute levels (power, chinchilla).
    Compute is the ``compute_col`` column, else ``6·N·D``. Non-finite numbers become None.
    """
    if law not in LAWS:
        _fail(f"unknown law {law!r}; allowed: {', '.join(LAWS)}")
    if isinstance(source, pl.DataFrame):
        path, table = Path("<frame>"), source
        loss_name = loss_col or ("loss" if "loss" in source.columns else "eval_loss")
    else:
        path = Path(source)
        table, loss_name = read_runs(path, loss_col=loss_col)
    table, notes = _select_group(table, group, path)
    loss = _column(table, loss_name, path, "--loss-col")
    compute = None
    if compute_col in table.columns:
        compute = _column(table, compute_col, path, "--compute-col")
    elif n_col in table.columns and d_col in table.columns:
        compute = 6.0 * _column(table, n_col, path, "--n-col") * _column(table, d_col, path, "--d-col")
    entry = LAWS_BY_NAME[law]
    if entry.needs_compute and compute is None:
        _fail(f"{path}: --law {law} needs a {compute_col!r} column or both {n_col!r} and {d_col!r}")
    flags = {x: "--x", n_col: "--n-col", d_col: "--d-col"}
    names = entry.inputs(Columns(x=x, n=n_col, d=d_col))
    inputs = tuple(_column(table, name, path, flags[name]) for name in names)
    try:
        out = _fit(
            entry,
            inputs,
            names,
            loss,
            compute,
            table,
            n_col=n_col,
            bootstrap=bootstrap,
            seed=seed,
            target=target,
        )
    except ValueError as exc:  # the runs cannot support the law (too few runs, budgets, ...)
        _fail(f"{path}: {exc}")
    out["warnings"] = notes + list(out.get("warnings", []))
    return jsonable(out)


def _fit(
    law: Law_,
    inputs: tuple[np.ndarray, ...],
    names: tuple[str, ...],
    loss: np.ndarray,
    compute: np.ndarray | None,
    table: pl.DataFrame,
    *,
    n_col: str,
    bootstrap: int,
    seed: int,
    target: float | None,
) -> dict[str, Any]:
    """The fit, its prediction at ``target`` and the leave-largest-out check, as a dict. Raises
    ``ValueError`` (``NotIdentified``) when the runs cannot identify the law."""
    flops = flops_of(table, n_col)
    units = None if law.needs_compute else unit_keys(table, list(names))
    assert law.fit_arrays is not None  # LAWS holds only the laws fitted from arrays
    fit = law.fit_arrays(
        inputs, loss, names=names, units=units, compute=compute, flops=flops, bootstrap=bootstrap, seed=seed
    )
    if not fit.identified:
        raise NotIdentified(f"{law.title} {fit.not_identified}")
    out = fit.to_dict()
    if law.uses_flops:
        out["flops_model"] = _flops_dict(flops)
    if target is not None and law.at_target is not None:
        key, values, determined = law.at_target(fit, target, flops)
        out[key] = _determined(values, determined, out, key)
    if law.holdout and compute is not None and len(np.unique(np.round(np.log10(compute[compute > 0]), 2))) >= 3:
        try:
            check = leave_largest_out(law.name, inputs, loss, compute)
            out["leave_largest_out"] = {k: v for k, v in check.items() if k != "params"}
        except ValueError:
            pass  # too few runs left without the largest budget, or not identified without it
    return out


def _flops_dict(flops: FlopsModel | None) -> dict[str, Any]:
    used = flops or FlopsModel()
    return {"c": used.c, "gamma": used.gamma, "counted": flops is not None}


def _determined(values: dict[str, Any], keys: list[str], out: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` with each of ``keys`` nulled (and its reason under ``out["undetermined"]``) when
    the fit has intervals and the runs do not bound that key's (``{key}_lo``/``{key}_hi`` or ``lo``/``hi``)."""
    if out.get("interval", "none") == "none":
        return values
    values = dict(values)
    if out["interval"] == "unavailable":
        for key in keys:
            values[key] = None
            out["undetermined"][f"{where}.{key}"] = out["interval_note"]
        return values
    for key in keys:
        lo, hi = (values.get("lo"), values.get("hi")) if "lo" in values else (values[f"{key}_lo"], values[f"{key}_hi"])
        if not (np.isfinite(lo) and np.isfinite(hi)):
            values[key] = None
            side = "below" if not np.isfinite(lo) else "above"
            out["undetermined"][f"{where}.{key}"] = f"its {out['level']:.0%} interval is not bounded {side} by the runs"
    return values
