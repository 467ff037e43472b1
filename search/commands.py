"""`archscale search ...`, `archscale study ...` and `archscale quickstart`: thin typed wrappers.

Module-level imports: typer and the standard library only (see search/cli.py).
"""

from __future__ import annotations

import json
from typing import Optional

import typer

search_app = typer.Typer(help="Run, watch, resume, extend and submit architecture searches.", no_args_is_help=True)
study_app = typer.Typer(help="Scaling studies: grids of architectures x sizes x token budgets, or isoFLOP grids.",
                        no_args_is_help=True)

# ---- options shared by every command that runs trials (defined once) ---------------------------
OUT = typer.Option(..., "--out", help="Results directory (trials.parquet, curves.parquet, run.json, study, Ray folder).")
DATA = typer.Option("pystdlib", "--data", help="Data spec: pystdlib, text:PATH, bin:DIR, copy, addition, brackets.")
SEEDS = typer.Option(1, "--seeds", min=1, help="Train each architecture with this many seeds.")
CONCURRENCY = typer.Option(None, "--concurrency", help="Trials at once (default: cluster CPUs / cpus-per-trial).")
CPUS = typer.Option(1.0, "--cpus-per-trial", help="CPUs per trial (also the trial's torch threads).")
GPUS = typer.Option("0", "--gpus-per-trial", help="GPU fraction per trial, or 'auto' (analytic memory estimate).")
ADDRESS = typer.Option(None, "--address", help="Ray cluster to join (default: RAY_ADDRESS, else an embedded Ray).")
STORAGE = typer.Option(None, "--storage", help="Optuna storage URL (default: DIR/optuna.journal).")
JSON = typer.Option(False, "--json", help="Print one JSON summary on stdout.")
SCHEDULER_NONE = typer.Option("none", "--scheduler", help="asha | none (sizes differ, so none by default).")


def _split(objectives: str) -> list[str]:
    return [o.strip() for o in objectives.split(",") if o.strip()]


def _emit(summary: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    requested = f" of {summary['requested']} requested" if summary.get("requested") else ""
    console.print(f"[bold]{summary['out']}[/]: {summary['trials']} trials{requested}: "
                  + ", ".join(f"{n} {s}" for s, n in sorted(summary["by_status"].items()))
                  + (f" in {summary['wall_s']:.0f}s" if "wall_s" in summary else ""))
    if summary.get("best"):
        table = Table(title="best completed trials")
        for col in ("trial", "architecture", "seed", "eval_loss", "params", "tokens"):
            table.add_column(col)
        for b in summary["best"]:
            table.add_row(str(b["trial_id"]), b["label"], str(b["seed"]), f"{b['eval_loss']:.4f}", f"{b['params']:,}",
                          f"{b['tokens']:,}")
        console.print(table)
    if summary.get("pareto"):
        console.print(f"Pareto front: trials {', '.join(str(p['trial_id']) for p in summary['pareto'])}")


@search_app.command("run")
def search_run(
    space_file: str = typer.Argument(..., help="Space YAML, or a shipped space name (tiny, activations, ...)."),
    out: str = OUT,
    trials: int = typer.Option(12, "--trials", min=1, help="Architectures to try (each trained --seeds times)."),
    budget_params: Optional[float] = typer.Option(None, "--budget-params", help="Total parameter budget."),
    budget_non_embedding_params: Optional[float] = typer.Option(None, "--budget-non-embedding-params"),
    budget_flops_per_token: Optional[float] = typer.Option(None, "--budget-flops-per-token"),
    tokens: Optional[int] = typer.Option(None, "--tokens", help="Training tokens per trial."),
    tokens_per_param: Optional[float] = typer.Option(None, "--tokens-per-param", help="Training tokens = R x params."),
    data: str = DATA,
    sampler: str = typer.Option("tpe", "--sampler", help="tpe | random | nsga2 | gp."),
    objectives: str = typer.Option("eval_loss", "--objectives",
                                   help="Comma list: eval_loss[,params,flops_per_token,kv_cache_bytes_per_token,tokens_per_s]."),
    scheduler: str = typer.Option("asha", "--scheduler", help="asha (early stopping on tokens seen) | none."),
    seeds: int = SEEDS,
    concurrency: Optional[int] = CONCURRENCY,
    cpus_per_trial: float = CPUS,
    gpus_per_trial: str = GPUS,
    address: Optional[str] = ADDRESS,
    storage: Optional[str] = STORAGE,
    eval_every_tokens: Optional[int] = typer.Option(None, "--eval-every-tokens", help="Evaluation interval (default: 10 per run)."),
    seed: int = typer.Option(0, "--seed", help="Sampler seed and first training seed."),
    as_json: bool = JSON,
) -> None:
    """Search a space: Optuna proposes, Ray Tune trains, results land in --out as trials finish."""
    from archscale.search.run import run_search

    opts = _options_from_run_params(dict(locals()), validate=False)
    run_search(opts)
    from archscale.search.status import status

    _emit(status(out), as_json)


@search_app.command("resume")
def search_resume(
    out: str = typer.Argument(..., help="A results directory written by `archscale search run`."),
    trials: Optional[int] = typer.Option(None, "--trials", help="Extend the search to this many architectures."),
    address: Optional[str] = ADDRESS,
    storage: Optional[str] = typer.Option(None, "--storage", help="The study storage URL, if it had a password."),
    as_json: bool = JSON,
) -> None:
    """Finish an interrupted search, or extend a finished one with --trials."""
    from archscale.search.resume import resume_search
    from archscale.search.status import status

    resume_search(out, trials=trials, address=address, progress=not as_json, storage=storage)
    _emit(status(out), as_json)


@search_app.command("submit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def search_submit(
    ctx: typer.Context,
    space_file: str = typer.Argument(..., help="Space YAML (shipped with the job), or a shipped space name."),
    address: str = typer.Option(..., "--address", help="The cluster's Ray Jobs address, http://HEAD:8265."),
    pip: Optional[list[str]] = typer.Option(None, "--pip", help="Extra pip packages for the job's runtime_env."),
    no_ship: bool = typer.Option(False, "--no-ship", help="Do not ship this archscale as a wheel (the image has it)."),
    wait: bool = typer.Option(False, "--wait", help="Wait for the job to finish and print its log tail."),
    as_json: bool = JSON,
) -> None:
    """Submit `search run SPACE ...` to a Ray cluster as a Ray Job; every other flag is passed to search run.

    Example: archscale search submit tiny --address http://head:8265 --out /shared/s1 --trials 64 --tokens 1000000
    """
    import click

    from archscale.clusters.jobs import use_token_if_available

    use_token_if_available()  # before anything imports ray
    run_command = typer.main.get_command(search_app).commands["run"]
    try:  # the same validation as a local run, before anything is sent
        run_ctx = run_command.make_context("run", [space_file, *ctx.args], resilient_parsing=False)
    except click.ClickException as e:
        raise ValueError(f"search submit: {e.format_message()}") from None
    _options_from_run_params(run_ctx.params)
    from archscale.clusters.jobs import submit

    info = submit(address, space_file, list(ctx.args), ship=not no_ship, pip=pip, wait=wait)
    if as_json:
        typer.echo(json.dumps(info))
        return
    typer.echo(f"submitted job {info['job_id']} to {address}")
    typer.echo(f"follow it:  {info['follow']}")
    typer.echo(f"status:     {info['status']}")
    if wait:
        typer.echo(f"finished: {info['final_status']}\n{info['logs']}")


def _options_from_run_params(p: dict, validate: bool = True):
    """SearchOptions from `search run`'s parsed parameters (shared by run and submit); `validate`
    checks them as a local run would (run_search validates on its own, so `search run` skips it)."""
    from archscale.search.run import SearchOptions, prepare
    from archscale.spaces.cli import budget_override

    override = budget_override(p["budget_params"], p["budget_non_embedding_params"], p["budget_flops_per_token"])
    opts = SearchOptions(
        space=p["space_file"], out=p["out"], trials=p["trials"], budget_kind=override[0] if override else None,
        budget_value=override[1] if override else None, tokens=p["tokens"], tokens_per_param=p["tokens_per_param"],
        data=p["data"], sampler=p["sampler"], objectives=_split(p["objectives"]), scheduler=p["scheduler"],
        seeds=p["seeds"], concurrency=p["concurrency"], cpus_per_trial=p["cpus_per_trial"],
        gpus_per_trial=p["gpus_per_trial"], address=p["address"], storage=p["storage"], seed=p["seed"],
        train={"eval_every_tokens": p["eval_every_tokens"]} if p["eval_every_tokens"] else {},
        progress=not p["as_json"],
    )
    if validate:
        prepare(opts)
    return opts


@search_app.command("status")
def search_status(
    out: str = typer.Argument(..., help="A results directory."),
    as_json: bool = JSON,
) -> None:
    """Counts by state, best trials, Pareto front and progress of a search (running or finished)."""
    from archscale.search.status import status

    _emit(status(out), as_json)


@study_app.command("run")
def study_run(
    study_file: str = typer.Argument(..., help="A study YAML (architectures x sizes x token budgets, or isoFLOP)."),
    out: str = OUT,
    data: str = DATA,
    scheduler: str = SCHEDULER_NONE,
    concurrency: Optional[int] = CONCURRENCY,
    cpus_per_trial: float = CPUS,
    gpus_per_trial: str = GPUS,
    address: Optional[str] = ADDRESS,
    storage: Optional[str] = STORAGE,
    as_json: bool = JSON,
) -> None:
    """Run a scaling-study grid; writes the same results format as a search."""
    from archscale.search.run import SearchOptions
    from archscale.search.status import status
    from archscale.search.study import run_study

    opts = SearchOptions(space="", out=out, data=data, scheduler=scheduler, concurrency=concurrency,
                         cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial, address=address,
                         storage=storage, progress=not as_json)
    run_study(study_file, out, opts)
    _emit(status(out), as_json)


def quickstart(
    out: str = typer.Option("results/quickstart", "--out", help="A new (or empty) directory for everything."),
    small: bool = typer.Option(False, "--small", help="A CI-sized run (under 3 minutes on 2 cores)."),
    address: Optional[str] = ADDRESS,
    as_json: bool = JSON,
) -> None:
    """A real search, a seed check, a scaling study, fits and a report: the whole workflow, in minutes on a laptop."""
    import sys

    from archscale.search.quickstart import describe, quickstart as run

    say = (lambda msg: print(msg, file=sys.stderr, flush=True))
    findings = run(out, small=small, address=address, say=say)
    if as_json:
        typer.echo(json.dumps(findings, default=str))
    else:
        typer.echo(describe(findings))


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
    app.add_typer(search_app, name="search")
    app.add_typer(study_app, name="study")
