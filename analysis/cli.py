"""``archscale fit | plot | report | dashboard``: thin commands over archscale.analysis.

Module-level imports are typer and the standard library only (``archscale --help`` stays fast);
polars, scipy and altair are imported inside the commands. Bad input prints one ``error: ...``
line naming the file or column and what is allowed, and exits with status 2.
"""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn

import typer


class LawName(str, Enum):
    power = "power"
    chinchilla = "chinchilla"
    isoflop = "isoflop"


class ChartKind(str, Enum):
    scaling = "scaling"
    isoflop = "isoflop"
    pareto = "pareto"
    curves = "curves"
    effects = "effects"
    importance = "importance"
    length = "length"


PLOT_FORMATS = (".html", ".png", ".svg", ".json")


class UserError(typer.BadParameter, ValueError):
    """Bad input (exit status 2, no traceback). A ``typer.BadParameter`` so a standalone typer
    app reports it as a usage error, and a ``ValueError`` so the root ``archscale`` entry point
    (which runs the app with ``standalone_mode=False``) prints it as one ``error: ...`` line."""


def _fail(message: str) -> NoReturn:
    raise UserError(message)


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays and non-finite floats made JSON-safe (NaN/inf -> null)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _read_table(path: Path, *, loss_col: str | None) -> tuple[Any, str]:
    """The runs to fit and the loss column: a results directory (completed trials, ``eval_loss``)
    or a parquet/CSV file (``loss``)."""
    import polars as pl

    if not path.exists():
        _fail(f"{path}: no such file or directory (give a results directory, a .parquet or a .csv file)")
    if path.is_dir():
        from .loaders import load_trials

        if not (path / "trials.parquet").exists():
            _fail(f"{path}: no trials.parquet (is this a results directory? the search may not have finished a trial yet)")
        return load_trials(path, status="completed").collect(), loss_col or "eval_loss"
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            table = pl.read_parquet(path)
        elif suffix == ".csv":
            table = pl.read_csv(path, infer_schema_length=10_000)
        else:
            _fail(f"{path}: unsupported input {suffix!r}; allowed: a results directory, .parquet, .csv")
    except pl.exceptions.PolarsError as exc:
        _fail(f"{path}: cannot read: {str(exc).splitlines()[0]}")
    return table, loss_col or "loss"


def _column(table: Any, name: str, path: Path, flag: str) -> Any:
    import polars as pl

    if name not in table.columns:
        _fail(f"{path}: no column {name!r} (set it with {flag}); columns: {', '.join(table.columns)}")
    col = table[name]
    if not col.dtype.is_numeric():
        _fail(f"{path}: column {name!r} must be numeric, got {col.dtype}")
    return col.cast(pl.Float64).to_numpy()


def fit_command(
    input: Path = typer.Argument(..., help="Results directory, or a .parquet/.csv file with params, tokens, loss columns."),
    law: LawName = typer.Option(LawName.power, "--law", help="power: L=E+A·x^-alpha; chinchilla: Approach 3; isoflop: Approach 2."),
    x: str = typer.Option("params", "--x", help="Column for the power law's x (params, non_embedding_params, tokens, compute)."),
    n_col: str = typer.Option("params", "--n-col", help="Column holding model size N."),
    d_col: str = typer.Option("tokens", "--d-col", help="Column holding training tokens D."),
    loss_col: str | None = typer.Option(None, "--loss-col", help="Loss column [default: eval_loss for a results directory, loss for a file]."),
    compute_col: str = typer.Option("compute", "--compute-col", help="Compute column (FLOPs); 6·N·D when absent."),
    bootstrap: int = typer.Option(0, "--bootstrap", min=0, help="Bootstrap resamples of runs for intervals (0: none)."),
    target: float | None = typer.Option(None, "--target", help="Predict at this x (power) or compute (chinchilla, isoflop)."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap random seed."),
    group: str | None = typer.Option(None, "--group", help="Fit only the runs of this family (the 'group' column of a scaling study)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Fit a scaling law to runs and print its parameters with bootstrap intervals."""
    import numpy as np
    import polars as pl

    from . import fits

    table, loss_name = _read_table(input, loss_col=loss_col)
    notes: list[str] = []
    if group is not None:
        if "group" not in table.columns:
            _fail(f"{input}: --group needs a 'group' column; columns: {', '.join(table.columns)}")
        names = sorted(table["group"].drop_nulls().unique().to_list())
        if group not in names:
            _fail(f"{input}: no group {group!r}; groups: {', '.join(names) or '(none)'}")
        table = table.filter(pl.col("group") == group)
    elif "group" in table.columns and table["group"].drop_nulls().n_unique() > 1:
        names = sorted(table["group"].drop_nulls().unique().to_list())
        notes.append(f"fitting {len(names)} families together ({', '.join(names)}); pick one with --group")
    loss = _column(table, loss_name, input, "--loss-col")
    compute = None
    if compute_col in table.columns:
        compute = _column(table, compute_col, input, "--compute-col")
    elif n_col in table.columns and d_col in table.columns:
        compute = 6.0 * _column(table, n_col, input, "--n-col") * _column(table, d_col, input, "--d-col")
    out: dict[str, Any]
    try:
        if law is LawName.power:
            xs = _column(table, x, input, "--x")
            fit = fits.fit_power_law(xs, loss, x_name=x, bootstrap=bootstrap, seed=seed)
            out = fit.to_dict()
            holdout_inputs: tuple[Any, ...] = (xs,)
            if target is not None:
                lo, hi = fit.predict_interval(target)
                out["prediction"] = {"x": target, "loss": fit.predict(target)[0], "lo": lo[0], "hi": hi[0]}
        elif law is LawName.chinchilla:
            n, d = _column(table, n_col, input, "--n-col"), _column(table, d_col, input, "--d-col")
            fit = fits.fit_chinchilla(n, d, loss, bootstrap=bootstrap, seed=seed, inputs=(n_col, d_col))
            out = fit.to_dict()
            holdout_inputs = (n, d)
            flops = None
            if "flops_per_token" in table.columns and n_col == "params":
                fpt = table["flops_per_token"].cast(float).to_numpy()
                flops = fits.FlopsModel.fit(n[np.isfinite(fpt)], fpt[np.isfinite(fpt)]) if np.isfinite(fpt).sum() >= 2 else None
            out["flops_model"] = {"c": (flops or fits.FlopsModel()).c, "gamma": (flops or fits.FlopsModel()).gamma}
            if target is not None:
                out["optimal"] = {k: v[0] for k, v in fit.optimal_allocation(target, flops).items()}
        else:
            if compute is None:
                _fail(f"{input}: --law isoflop needs a {compute_col!r} column or both {n_col!r} and {d_col!r}")
            fit_iso = fits.fit_isoflop(_column(table, n_col, input, "--n-col"), loss, compute, bootstrap=bootstrap, seed=seed)
            out = fit_iso.to_dict()
            if target is not None:
                out["optimal"] = {k: v[0] for k, v in fit_iso.optimal_allocation(target).items()}
        if law is not LawName.isoflop and compute is not None and len(np.unique(np.round(np.log10(compute[compute > 0]), 2))) >= 3:
            try:
                check = fits.leave_largest_out(law.value, holdout_inputs, loss, compute)
                out["leave_largest_out"] = {k: v for k, v in check.items() if k != "params"}
            except ValueError:
                pass  # too few runs left without the largest budget
    except ValueError as exc:
        _fail(f"{input}: {exc}")
    out["warnings"] = notes + list(out.get("warnings", []))
    out = _jsonable(out)
    if as_json:
        print(json.dumps(out))
        return
    print(f"{out['law']} fit on {out['n_runs']} runs ({out.get('n_bootstrap', 0)} bootstrap resamples)")
    for name, value in out["params"].items():
        ci = out.get("ci", {}).get(name)
        interval = f"  [{ci[0]:.4g}, {ci[1]:.4g}]" if ci and None not in ci else ""
        print(f"  {name:>6} = {value:.4g}{interval}")
    for warning in out.get("warnings", []):
        print(f"  warning: {warning}")
    for key in ("prediction", "optimal", "leave_largest_out"):
        if key in out:
            print(f"  {key}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in out[key].items()))


def _check_dirs(dirs: list[Path]) -> None:
    for d in dirs:
        if not d.is_dir():
            _fail(f"{d}: not a directory (give a results directory written by `archscale search`)")


def plot_command(
    dirs: list[Path] = typer.Argument(..., help="One or more results directories."),
    kind: ChartKind = typer.Option(..., "--kind", help="Which chart."),
    out: Path = typer.Option(..., "--out", help="Output file: .html (offline), .png, .svg or .json (Vega-Lite spec)."),
    x: str = typer.Option("compute", "--x", help="scaling: x axis (compute, params, non_embedding_params, tokens); pareto: cost axis (params, tokens_per_s, ...)."),
    y: str = typer.Option("eval_loss", "--y", help="Metric (a loss column)."),
    target: float | None = typer.Option(None, "--target", help="scaling: extend the fitted curves to this x."),
    bootstrap: int = typer.Option(100, "--bootstrap", min=0, help="scaling: bootstrap resamples for the band."),
) -> None:
    """Draw one chart from results directories."""
    if out.suffix.lower() not in PLOT_FORMATS:
        _fail(f"{out}: unsupported output format {out.suffix!r}; allowed: {', '.join(PLOT_FORMATS)}")
    _check_dirs(dirs)
    import polars as pl

    from .charts import NoData, build_chart, save_chart

    try:
        chart = build_chart(dirs, kind.value, x=x, y=y, target=target, bootstrap=bootstrap)
    except NoData as exc:
        _fail(f"{', '.join(map(str, dirs))}: nothing to plot for --kind {kind.value}: {exc}")
    except pl.exceptions.ColumnNotFoundError as exc:
        _fail(f"--kind {kind.value} --x {x} --y {y}: {str(exc).splitlines()[0].split('; valid columns')[0]}")
    except (ValueError, KeyError) as exc:
        _fail(f"--kind {kind.value}: {exc}")
    print(save_chart(chart, out))


def report_command(
    dirs: list[Path] = typer.Argument(..., help="One or more results directories."),
    out: Path = typer.Option(Path("report.html"), "--out", help="The HTML file to write (self-contained, works offline)."),
    bootstrap: int = typer.Option(100, "--bootstrap", min=0, help="Bootstrap resamples for the fits' intervals."),
    target: float | None = typer.Option(None, "--target", help="Compute (FLOPs) to extrapolate and rank at [default: 10x the largest]."),
) -> None:
    """Write one offline HTML page: what was run, best architectures, Pareto, scaling fits, effects, curves."""
    _check_dirs(dirs)
    if out.suffix.lower() not in (".html", ".htm"):
        _fail(f"{out}: the report is HTML; use a .html file name")
    from .report import write_report

    print(write_report(dirs, out, bootstrap=bootstrap, target=target))


def dashboard_command(
    dir: Path = typer.Argument(..., help="Results directory of a search (its run.json names the Optuna storage)."),
    port: int = typer.Option(8080, "--port", help="Port for optuna-dashboard."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; keep 127.0.0.1 and tunnel over SSH."),
) -> None:
    """Serve optuna-dashboard on the search's study; print the Ray dashboard and TensorBoard hints."""
    _check_dirs([dir])
    from .dashboard import ray_dashboard_address, serve_dashboard, tensorboard_logdir
    from .loaders import study_storage

    try:
        study_storage(dir)
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        _fail(str(exc))
    ray_url = ray_dashboard_address()
    print(f"Ray dashboard: {ray_url}" if ray_url else "Ray dashboard: no Ray cluster running")
    logdir = tensorboard_logdir(dir)
    if logdir:
        print(f"TensorBoard: tensorboard --logdir {logdir}")
    print(f"optuna-dashboard: http://{host}:{port}/  (Ctrl-C to stop)", flush=True)
    serve_dashboard(dir, host=host, port=port)


def register(app: typer.Typer) -> None:
    """Add ``fit``, ``plot``, ``report`` and ``dashboard`` to the root ``archscale`` app."""
    app.command("fit")(fit_command)
    app.command("plot")(plot_command)
    app.command("report")(report_command)
    app.command("dashboard")(dashboard_command)
