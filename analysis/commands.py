"""``archscale fit | plot | report | dashboard``: thin commands over archscale.analysis.

Each command parses its flags, calls the library function a notebook would (``fit_results``,
``build_chart``, ``write_report``, ``serve_dashboard``) and prints. Module-level imports are typer,
the standard library and ``archscale.spaces.cli_options`` only (``archscale --help`` stays fast);
polars, scipy and altair load inside the commands. Bad input raises ``UserError``: one
``error: ...`` line naming the file or column and what is allowed, exit status 2.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from archscale.spaces.cli_options import JsonFlag, user_errors
from archscale.spaces.errors import UserError


class LawName(str, Enum):
    """``archscale.analysis.laws.table.LAWS`` and ``laws.registry.CONDITIONED_LAWS`` (a test keeps them equal)."""

    power = "power"
    chinchilla = "chinchilla"
    isoflop = "isoflop"
    space = "space"


class ChartKind(str, Enum):
    """``archscale.analysis.present.charts.KINDS`` (a test keeps the two equal)."""

    scaling = "scaling"
    isoflop = "isoflop"
    pareto = "pareto"
    curves = "curves"
    effects = "effects"
    importance = "importance"
    length = "length"


PLOT_FORMATS = (".html", ".png", ".svg", ".json")

# ---- options used by several analysis commands (defined once) --------------------------------
ResultsDirs = Annotated[list[Path], typer.Argument(help="One or more results directories.", show_default=False)]
Bootstrap = Annotated[
    int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples of runs for intervals (0: none).")
]


def _check_dirs(dirs: list[Path]) -> None:
    for d in dirs:
        if not d.is_dir():
            raise UserError(f"{d}: not a directory (give a results directory written by `archscale search`)")


@user_errors
def fit_command(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Results directory, or a .parquet/.csv file with params, tokens, loss columns "
            "(--law space: one or more results directories).",
            show_default=False,
        ),
    ],
    law: Annotated[
        LawName,
        typer.Option(
            "--law",
            help="power: L=E+A·x^-alpha; chinchilla: Approach 3; isoflop: Approach 2; "
            "space: one law over every run, conditioned on the architecture's axes.",
        ),
    ] = LawName.power,
    x: Annotated[
        str, typer.Option("--x", help="Column for the power law's x (params, non_embedding_params, tokens, compute).")
    ] = "params",
    n_col: Annotated[str, typer.Option("--n-col", help="Column holding model size N.")] = "params",
    d_col: Annotated[str, typer.Option("--d-col", help="Column holding training tokens D.")] = "tokens",
    loss_col: Annotated[
        str | None,
        typer.Option("--loss-col", help="Loss column (default: eval_loss for a results directory, loss for a file)."),
    ] = None,
    compute_col: Annotated[
        str, typer.Option("--compute-col", help="Compute column (FLOPs); 6·N·D when absent.")
    ] = "compute",
    bootstrap: Bootstrap = 0,
    target: Annotated[
        float | None, typer.Option("--target", help="Predict at this x (power) or compute (chinchilla, isoflop).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap random seed.")] = 0,
    group: Annotated[
        str | None,
        typer.Option("--group", help="Fit only the runs of this family (the 'group' column of a scaling study)."),
    ] = None,
    target_compute: Annotated[
        float | None,
        typer.Option(
            "--target-compute", help="--law space: rank the space at this compute (default: 10x the largest run's)."
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="--law space: how many architectures to rank.")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Fit a scaling law to runs and print its parameters with intervals.

    Exits 2 with one line when the runs cannot identify the law (naming the design that would);
    a quantity the runs do not bound is printed as "not determined", with why."""
    if law is LawName.space:
        _fit_space(inputs, target, target_compute, top, seed, as_json)
        return
    if len(inputs) != 1:
        raise UserError(f"--law {law.value} fits one results directory or file; {len(inputs)} given")
    if target_compute is not None:
        raise UserError("--target-compute is for --law space; the other laws predict at --target")
    from .laws.table import fit_results

    input = inputs[0]
    out = fit_results(
        input,
        law=law.value,
        x=x,
        n_col=n_col,
        d_col=d_col,
        loss_col=loss_col,
        compute_col=compute_col,
        bootstrap=bootstrap,
        target=target,
        seed=seed,
        group=group,
    )
    if as_json:
        print(json.dumps(out))
    else:
        print(_fit_text(out))


def _fit_space(
    dirs: list[Path], target: float | None, target_compute: float | None, top: int, seed: int, as_json: bool
) -> None:
    if target is not None:
        raise UserError("--law space ranks at --target-compute (FLOPs); --target is for the other laws")
    _check_dirs(dirs)
    from .compare.space_summary import space_summary
    from .data.runs import NoData

    try:
        out = space_summary(dirs, target_compute=target_compute, top=top, seed=seed)
    except (NoData, ValueError) as exc:
        raise UserError(f"{', '.join(map(str, dirs))}: {exc}") from None
    print(json.dumps(out) if as_json else _space_text(out))


def _interval(row: dict[str, Any]) -> str:
    return f"{row['estimate']:+.4f} [{row['lo']:+.4f}, {row['hi']:+.4f}]"


def _space_text(out: dict[str, Any]) -> str:
    """``space_summary``'s dict for people: the law, its effects, the ranking, what to train next."""
    p = out["law_params"]
    ref = ", ".join(f"{k}={v}" for k, v in out["reference"].items())
    lines = [
        f"space law on {out['n_runs']} runs at {out['compute_sizes']} compute sizes "
        f"(L = E + exp(log_A(a)) * (C / {out['c0']:.3g})^-alpha(a); intervals: {out['interval_method']})",
        f"  E = {p['E']['estimate']:.4g} [{p['E']['lo']:.4g}, {p['E']['hi']:.4g}]",
        f"  reference ({ref}): log_A = {p['log_A']['estimate']:.4g} [{p['log_A']['lo']:.4g}, {p['log_A']['hi']:.4g}],"
        f" alpha = {p['alpha']['estimate']:.4g} [{p['alpha']['lo']:.4g}, {p['alpha']['hi']:.4g}]",
        f"  noise: {out['noise']}",
        f"  prior sd (chosen by marginal likelihood): level {out['prior_sd']['level']:.3g}, "
        f"slope {out['prior_sd']['slope']:.3g}",
    ]
    for effect, title in (("level", "level effects (change of log_A vs the reference value)"),
                          ("slope", "slope effects (change of alpha vs the reference value)")):  # fmt: skip
        lines.append(f"  {title}:")
        for row in (r for r in out["effects"] if r["effect"] == effect):
            if row["estimated"]:
                shrink = "" if row["shrinkage"] is None else f", shrinkage {row['shrinkage']:.2f}"
                lines.append(f"    {row['name']:<32} {_interval(row)}  {row['meaning']}{shrink}")
            else:
                lines.append(f"    {row['name']:<32} no estimate: {row['note']}")
    lines.append(
        f"  predicted at {out['target_compute']:.3g} FLOPs ({out['target_source']}); "
        f"best {len(out['ranking'])} of {out['space_size']} architectures:"
    )
    for r in out["ranking"]:
        trained = f"{r['trained_runs']} runs at {r['trained_sizes']} sizes" if r["trained_runs"] else "never trained"
        lines.append(
            f"    {r['rank']:>2}. {r['arch']}: {r['predicted_loss']:.4f} [{r['lo']:.4f}, {r['hi']:.4f}] "
            f"p_best {r['p_best']:.2f} (±{r['p_best_mc_se']:.2f}); {trained}"
        )
    lines += [f"  warning: {w}" for w in out["no_slope"]]
    lines += [f"  train next: {w}" for w in out["what_to_train"] if w not in out["no_slope"]]
    return "\n".join(lines)


def _fit_text(out: dict[str, Any]) -> str:
    """``fit_results``'s dict for people: parameters with intervals (or why a parameter is not
    determined), how the intervals were made, warnings, derived quantities."""
    lines = [f"{out['law']} fit on {out['n_runs']} runs"]
    undetermined = out.get("undetermined", {})
    for name, value in out["params"].items():
        if name in undetermined:
            lines.append(f"  {name:>6} = not determined ({undetermined[name]})")
            continue
        ci = out.get("ci", {}).get(name)
        interval = f"  [{ci[0]:.4g}, {ci[1]:.4g}]" if ci and None not in ci else ""
        lines.append(f"  {name:>6} = {value:.4g}{interval}")
    if out.get("interval_note"):
        lines.append(f"  intervals: {out['interval_note']}")
    lines += [f"  warning: {warning}" for warning in out.get("warnings", [])]
    for key in ("prediction", "optimal", "leave_largest_out"):
        if key in out:
            values = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={'not determined' if v is None else v}"
                for k, v in out[key].items()
            )
            lines.append(f"  {key}: {values}")
    lines += [f"  {key}: not determined ({why})" for key, why in undetermined.items() if "." in key]
    return "\n".join(lines)


@user_errors
def plot_command(
    dirs: ResultsDirs,
    kind: Annotated[ChartKind, typer.Option("--kind", help="Which chart.")],
    out: Annotated[
        Path, typer.Option("--out", help="Output file: .html (offline), .png, .svg or .json (Vega-Lite spec).")
    ],
    x: Annotated[
        str,
        typer.Option(
            "--x",
            help="scaling: x axis (compute, params, non_embedding_params, tokens); "
            "pareto: cost axis (params, tokens_per_s, ...).",
        ),
    ] = "compute",
    y: Annotated[str, typer.Option("--y", help="Metric (a loss column).")] = "eval_loss",
    target: Annotated[
        float | None, typer.Option("--target", help="scaling: extend the fitted curves to this x.")
    ] = None,
    bootstrap: Bootstrap = 100,
) -> None:
    """Draw one chart from results directories."""
    if out.suffix.lower() not in PLOT_FORMATS:
        raise UserError(f"{out}: unsupported output format {out.suffix!r}; allowed: {', '.join(PLOT_FORMATS)}")
    _check_dirs(dirs)
    import polars as pl

    from .present.charts import NoData, build_chart, save_chart

    try:
        chart = build_chart(dirs, kind.value, x=x, y=y, target=target, bootstrap=bootstrap)
    except NoData as exc:
        raise UserError(f"{', '.join(map(str, dirs))}: nothing to plot for --kind {kind.value}: {exc}") from None
    except pl.exceptions.ColumnNotFoundError as exc:
        column = str(exc).splitlines()[0].split("; valid columns")[0]
        raise UserError(f"--kind {kind.value} --x {x} --y {y}: {column}") from None
    print(save_chart(chart, out))


@user_errors
def report_command(
    dirs: ResultsDirs,
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write (self-contained, works offline).")] = Path(
        "report.html"
    ),
    bootstrap: Bootstrap = 100,
    target: Annotated[
        float | None,
        typer.Option("--target", help="Compute (FLOPs) to extrapolate and rank at (default: 10x the largest run's)."),
    ] = None,
) -> None:
    """Write one offline HTML page: what was run, best architectures, Pareto, scaling fits, effects, curves.

    A section that fails is shown as failed in the page and named on stderr.
    """
    _check_dirs(dirs)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"{out}: the report is HTML; use a .html file name")
    from .present.report import write_report
    from .present.report_parts import section_errors

    path = write_report(dirs, out, bootstrap=bootstrap, target=target)
    print(path)
    for title, error in section_errors(path).items():
        print(f"warning: report section {title!r} failed: {error}", file=sys.stderr)


@user_errors
def dashboard_command(
    dir: Annotated[Path, typer.Argument(help="Results directory of a search (its run.json names the Optuna storage).")],
    port: Annotated[int, typer.Option("--port", help="Port for optuna-dashboard.")] = 8080,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind; keep 127.0.0.1 and tunnel over SSH.")
    ] = "127.0.0.1",
    storage: Annotated[
        str | None,
        typer.Option("--storage", help="The study storage URL, if run.json holds it without its password."),
    ] = None,
) -> None:
    """Serve optuna-dashboard on the search's study; print the Ray dashboard and TensorBoard hints."""
    _check_dirs([dir])
    from .data.loaders import study_storage
    from .present.dashboard import ray_dashboard_address, serve_dashboard, tensorboard_logdir

    try:
        study_storage(dir, storage)
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        raise UserError(str(exc)) from None
    ray_url = ray_dashboard_address()
    print(f"Ray dashboard: {ray_url}" if ray_url else "Ray dashboard: no Ray cluster running")
    logdir = tensorboard_logdir(dir)
    if logdir:
        print(f"TensorBoard: tensorboard --logdir {logdir}")
    print(f"optuna-dashboard: http://{host}:{port}/  (Ctrl-C to stop)", flush=True)
    serve_dashboard(dir, host=host, port=port, storage=storage)


def register(app: typer.Typer) -> None:
    """Add ``fit``, ``plot``, ``report`` and ``dashboard`` to the root ``archscale`` app."""
    app.command("fit")(fit_command)
    app.command("plot")(plot_command)
    app.command("report")(report_command)
    app.command("dashboard")(dashboard_command)
