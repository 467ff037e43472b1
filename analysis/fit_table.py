"""Fit a scaling law to a table of runs: what ``archscale fit`` prints, as a library call.

    >>> from archscale.analysis import fit_results
    >>> fit_results("results/my-study", law="chinchilla", group="baseline", bootstrap=200, target=1e21)
    {'law': 'chinchilla', 'params': {'E': ..., ...}, 'ci': {...}, 'optimal': {...}, 'leave_largest_out': {...}, ...}

The table is a results directory (its completed trials; loss column ``eval_loss``) or a
``.parquet``/``.csv`` file (loss column ``loss``). Every mistake in the input (a missing file or
column, a non-numeric column, an unknown group, too few runs for the law) raises ``UserError``
with one line naming the file or column and what is allowed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, NoReturn

import numpy as np
import polars as pl

from archscale.spaces.errors import UserError

from . import fits
from .loaders import PathLike, load_trials

LAWS = ("power", "chinchilla", "isoflop")
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
        return load_trials(path, status="completed").collect(), loss_col or "eval_loss"
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


def _flops_model(table: pl.DataFrame, n: np.ndarray, n_col: str) -> fits.FlopsModel | None:
    """The runs' own FLOP model when ``flops_per_token`` is recorded for 2+ runs and N is ``params``."""
    if "flops_per_token" not in table.columns or n_col != "params":
        return None
    fpt = table["flops_per_token"].cast(float).to_numpy()
    ok = np.isfinite(fpt)
    return fits.FlopsModel.fit(n[ok], fpt[ok]) if ok.sum() >= 2 else None


def fit_results(
    source: PathLike,
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
    path = Path(source)
    table, loss_name = read_runs(path, loss_col=loss_col)
    table, notes = _select_group(table, group, path)
    loss = _column(table, loss_name, path, "--loss-col")
    compute = None
    if compute_col in table.columns:
        compute = _column(table, compute_col, path, "--compute-col")
    elif n_col in table.columns and d_col in table.columns:
        compute = 6.0 * _column(table, n_col, path, "--n-col") * _column(table, d_col, path, "--d-col")
    if law == "isoflop" and compute is None:
        _fail(f"{path}: --law isoflop needs a {compute_col!r} column or both {n_col!r} and {d_col!r}")
    if law == "power":
        inputs: tuple[np.ndarray, ...] = (_column(table, x, path, "--x"),)
    elif law == "chinchilla":
        inputs = (_column(table, n_col, path, "--n-col"), _column(table, d_col, path, "--d-col"))
    else:
        inputs = (_column(table, n_col, path, "--n-col"),)
    try:
        out = _fit(
            law,
            inputs,
            loss,
            compute,
            table,
            x=x,
            n_col=n_col,
            d_col=d_col,
            bootstrap=bootstrap,
            seed=seed,
            target=target,
        )
    except ValueError as exc:  # the runs cannot support the law (too few runs, budgets, ...)
        _fail(f"{path}: {exc}")
    out["warnings"] = notes + list(out.get("warnings", []))
    return jsonable(out)


def _fit(
    law: Law,
    inputs: tuple[np.ndarray, ...],
    loss: np.ndarray,
    compute: np.ndarray | None,
    table: pl.DataFrame,
    *,
    x: str,
    n_col: str,
    d_col: str,
    bootstrap: int,
    seed: int,
    target: float | None,
) -> dict[str, Any]:
    """The fit, its prediction at ``target`` and the leave-largest-out check, as a dict."""
    if law == "isoflop":
        iso = fits.fit_isoflop(inputs[0], loss, compute, bootstrap=bootstrap, seed=seed)
        out = iso.to_dict()
        if target is not None:
            out["optimal"] = {k: v[0] for k, v in iso.optimal_allocation(target).items()}
        return out
    if law == "power":
        fit = fits.fit_power_law(inputs[0], loss, x_name=x, bootstrap=bootstrap, seed=seed)
        out = fit.to_dict()
        if target is not None:
            lo, hi = fit.predict_interval(target)
            out["prediction"] = {"x": target, "loss": fit.predict(target)[0], "lo": lo[0], "hi": hi[0]}
    else:
        chin = fits.fit_chinchilla(*inputs, loss, bootstrap=bootstrap, seed=seed, inputs=(n_col, d_col))
        out = chin.to_dict()
        flops = _flops_model(table, inputs[0], n_col)
        used = flops or fits.FlopsModel()
        out["flops_model"] = {"c": used.c, "gamma": used.gamma}
        if target is not None:
            out["optimal"] = {k: v[0] for k, v in chin.optimal_allocation(target, flops).items()}
    if compute is not None and len(np.unique(np.round(np.log10(compute[compute > 0]), 2))) >= 3:
        try:
            check = fits.leave_largest_out(law, inputs, loss, compute)
            out["leave_largest_out"] = {k: v for k, v in check.items() if k != "params"}
        except ValueError:
            pass  # too few runs left without the largest budget
    return out
