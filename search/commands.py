"""`archscale search ...`, `archscale study ...` and `archscale quickstart`: thin typed wrappers.

Module-level imports: typer and the standard library only (see search/cli.py).
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from archscale.spaces.cli_options import (
    Address,
    BudgetActiveParams,
    BudgetFlopsPerToken,
    BudgetNonEmbeddingParams,
    BudgetParams,
    Concurrency,
    CpusPerTrial,
    Data,
    GpusPerTrial,
    JsonFlag,
    Out,
    Seeds,
    Storage,
    budget_override,
    command_group,
    user_errors,
)
from archscale.spaces.errors import UserError

search_app = command_group("Run, watch, resume, extend and submit architecture searches.")
study_app = command_group("Scaling studies: grids of architectures x sizes x token budgets, or isoFLOP grids.")

SchedulerStudy = Annotated[str, typer.Option("--scheduler", help="asha | none (sizes differ, so none by default).")]


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
    console.print(
        f"[bold]{summary['out']}[/]: {summary['trials']} trials{requested}: "
        + ", ".join(f"{n} {s}" for s, n in sorted(summary["by_status"].items()))
        + (f" in {summary['wall_s']:.0f}s" if "wall_s" in summary else "")
    )
    if summary.get("best"):
        table = Table(title="best completed trials")
        for col in ("trial", "architecture", "seed", "eval_loss", "params", "tokens"):
            table.add_column(col)
        for b in summary["best"]:
            table.add_row(
                str(b["trial_id"]),
                b["label"],
                str(b["seed"]),
                f"{b['eval_loss']:.4f}",
                f"{b['params']:,}",
                f"{b['tokens']:,}",
            )
        console.print(table)
    if "ladder" in summary:
        _emit_ladders(console, summary)
    elif summary.get("pareto"):
        console.print(f"Pareto front: trials {', '.join(str(p['trial_id']) for p in summary['pareto'])}")
    if summary.get("study"):
        study = summary["study"]
        console.print(
            f"study {summary['study_name']}: {study['trials']} trials from {study['drivers']} driver(s): "
            + ", ".join(f"{n} {s}" for s, n in sorted(study["by_state"].items()))
        )


def _emit_ladders(console, summary: dict) -> None:
    """A ladder search: the ranking predicted at the target beside the small-scale ranking."""
    from rich.table import Table

    ladder = summary["ladder"]
    target = ladder.get("target_compute") or ladder.get("target_params")
    unit = "FLOPs" if ladder.get("target_compute") else "params"
    small = {r["ladder_id"]: i + 1 for i, r in enumerate(summary["small_scale"])}
    table = Table(title=f"predicted at the target ({target:.3g} {unit}; risk {ladder.get('risk')})")
    for col in ("rank", "architecture", "predicted loss", "95% interval", "alpha", "rung-0 loss", "small-scale rank"):
        table.add_column(col)
    for i, r in enumerate(summary["predicted"]):
        table.add_row(
            str(i + 1),
            r["label"],
            f"{r['predicted_loss']:.4f}",
            f"{r['lo']:.4f} to {r['hi']:.4f}",
            f"{r['alpha']:.3f}",
            f"{r['rung0_loss']:.4f}",
            str(small.get(r["ladder_id"], "-")),
        )
    console.print(table)
    if any(r.get("law") == "no floor (E = 0)" for r in summary["predicted"]):
        console.print(
            "law: no floor (E = 0): the ladders show no flattening, so each is a straight line in log-log; "
            "if the loss flattens before the target, these predictions are optimistic (docs/guide.md)"
        )
    for r in summary["predicted"]:
        for c in r.get("crossings") or []:
            if c["overtakes"]:
                console.print(f"{r['label']} overtakes {c['other']} above {c['compute']:.3g} FLOPs")
    for r in summary["not_predicted"]:
        console.print(f"no prediction for {r['label'] or r['ladder_id']}: {r['status']}: {r['reason']}")
    if summary.get("validation_skipped"):
        console.print(f"--validate-top: skipped: {summary['validation_skipped']}")
    check = summary.get("validation")
    if check:
        table = Table(title="checked against real training at a held-out scale")
        for col in ("architecture", "compute", "predicted", "95% interval", "actual", "covered"):
            table.add_column(col)
        for r in check["rows"]:
            actual = "-" if r["actual_loss"] is None else f"{r['actual_loss']:.4f}"
            table.add_row(
                r["label"],
                f"{r['compute']:.3g}",
                f"{r['predicted_loss']:.4f}",
                f"{r['lo']:.4f} to {r['hi']:.4f}",
                actual,
                str(r["covered"]),
            )
        console.print(table)
        console.print(
            f"predicted winner {check['predicted_winner']}; actual winner {check['actual_winner']}; "
            f"small-scale search would have chosen {check['small_scale_winner']}"
        )


@search_app.command("run")
@user_errors
def search_run(
    space_file: Annotated[str, typer.Argument(help="Space YAML, or a shipped space name (tiny, activations, ...).")],
    out: Out,
    trials: Annotated[
        int, typer.Option("--trials", min=1, help="Architectures to try (each trained --seeds times).")
    ] = 12,
    budget_params: BudgetParams = None,
    budget_non_embedding_params: BudgetNonEmbeddingParams = None,
    budget_flops_per_token: BudgetFlopsPerToken = None,
    budget_active_params: BudgetActiveParams = None,
    tokens: Annotated[Optional[int], typer.Option("--tokens", help="Training tokens per trial.")] = None,
    tokens_per_param: Annotated[
        Optional[float],
        typer.Option("--tokens-per-param", help="Training tokens = R x active_params (= params for a dense model)."),
    ] = None,
    data: Data = "pystdlib",
    sampler: Annotated[str, typer.Option("--sampler", help="tpe | random | nsga2 | gp.")] = "tpe",
    objectives: Annotated[
        str,
        typer.Option(
            "--objectives",
            help="Comma list: eval_loss[,params,non_embedding_params,flops_per_token,"
            "kv_cache_bytes_per_token,active_params,tokens_per_s].",
        ),
    ] = "eval_loss",
    scheduler: Annotated[
        str, typer.Option("--scheduler", help="asha (early stopping on tokens seen) | none.")
    ] = "asha",
    seeds: Seeds = 1,
    concurrency: Concurrency = None,
    cpus_per_trial: CpusPerTrial = 1.0,
    gpus_per_trial: GpusPerTrial = "0",
    address: Address = None,
    storage: Storage = None,
    study_name: Annotated[
        Optional[str],
        typer.Option(
            "--study-name",
            help="Optuna study name (default: archscale-SPACE); drivers sharing --storage and "
            "--study-name add trials to one study.",
        ),
    ] = None,
    eval_every_tokens: Annotated[
        Optional[int], typer.Option("--eval-every-tokens", help="Evaluation interval (default: 10 per run).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Sampler seed and first training seed.")] = 0,
    target_compute: Annotated[
        Optional[float],
        typer.Option(
            "--target-compute",
            help="Ladder search: rank architectures by the loss predicted at this training compute (FLOPs).",
        ),
    ] = None,
    target_params: Annotated[
        Optional[float],
        typer.Option(
            "--target-params",
            help="Ladder search: the target named by its size, trained by the search's tokens rule.",
        ),
    ] = None,
    ladder: Annotated[int, typer.Option("--ladder", help="Ladder search: sizes (rungs) per architecture.")] = 3,
    ladder_ratio: Annotated[
        float, typer.Option("--ladder-ratio", help="Ladder search: each rung's budget over the one below.")
    ] = 2.0,
    risk: Annotated[
        str, typer.Option("--risk", help="Ladder search: tell Optuna the mean prediction, or its 95% upper end (ucb).")
    ] = "mean",
    ladder_prune_margin: Annotated[
        float,
        typer.Option(
            "--ladder-prune-margin", help="Ladder search: stop a ladder whose rung 0 is this many nats behind."
        ),
    ] = 0.05,
    validate_top: Annotated[
        int,
        typer.Option("--validate-top", help="Ladder search: then train the top K for real at a held-out larger scale."),
    ] = 0,
    validate_compute: Annotated[
        Optional[float],
        typer.Option("--validate-compute", help="That scale in FLOPs (default: 4x the largest rung's compute)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Search a space: Optuna proposes, Ray Tune trains, results land in --out as trials finish."""
    from archscale.search.run import run_search

    opts = _options_from_run_params(dict(locals()), validate=False)
    run_search(opts)
    from archscale.search.status import status

    _emit(status(out), as_json)


@search_app.command("resume")
@user_errors
def search_resume(
    out: Annotated[str, typer.Argument(help="A results directory written by `archscale search run`.")],
    trials: Annotated[
        Optional[int], typer.Option("--trials", help="Extend the search to this many architectures.")
    ] = None,
    address: Address = None,
    storage: Annotated[
        Optional[str],
        typer.Option("--storage", help="The study storage URL, if run.json holds it without its password."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Finish an interrupted search (ladder searches too), or extend a finished one with --trials."""
    from archscale.search.resume import resume_search
    from archscale.search.status import status

    resume_search(out, trials=trials, address=address, progress=not as_json, storage=storage)
    _emit(status(out), as_json)


@search_app.command("submit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@user_errors
def search_submit(
    ctx: typer.Context,
    space_file: Annotated[str, typer.Argument(help="Space YAML (shipped with the job), or a shipped space name.")],
    address: Annotated[str, typer.Option("--address", help="The cluster's Ray Jobs address, http://HEAD:8265.")],
    pip: Annotated[
        Optional[list[str]], typer.Option("--pip", help="Extra pip packages for the job's runtime_env.")
    ] = None,
    no_ship: Annotated[
        bool, typer.Option("--no-ship", help="Do not ship this archscale as a wheel (the image has it).")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to finish and print its log tail.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Submit `search run SPACE ...` to a Ray cluster as a Ray Job; every other flag is passed to search run.

    Example: archscale search submit tiny --address http://head:8265 --out /shared/s1 --trials 64 --tokens 1000000
    """
    from typer.exceptions import TyperException

    from archscale.clusters.jobs import use_token_if_available

    use_token_if_available()  # before anything imports ray
    run_command = typer.main.get_command(search_app).commands["run"]
    try:  # the same validation as a local run, before anything is sent
        run_ctx = run_command.make_context("run", [space_file, *ctx.args], resilient_parsing=False)
    except TyperException as e:
        raise UserError(f"search submit: {e.format_message()}") from None
    _options_from_run_params(run_ctx.params)
    from archscale.clusters.jobs import submit

    try:
        info = submit(address, space_file, list(ctx.args), ship=not no_ship, pip=pip, wait=wait)
    except ValueError as e:  # not a source checkout to ship; a password that cannot travel safely
        raise UserError(f"search submit: {e}") from None
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
    from archscale.search.options import SearchOptions, prepare

    override = budget_override(
        p["budget_params"], p["budget_non_embedding_params"], p["budget_flops_per_token"], p["budget_active_params"]
    )
    opts = SearchOptions(
        space=p["space_file"],
        out=p["out"],
        trials=p["trials"],
        budget_kind=override[0] if override else None,
        budget_value=override[1] if override else None,
        tokens=p["tokens"],
        tokens_per_param=p["tokens_per_param"],
        data=p["data"],
        sampler=p["sampler"],
        objectives=_split(p["objectives"]),
        scheduler=p["scheduler"],
        seeds=p["seeds"],
        concurrency=p["concurrency"],
        cpus_per_trial=p["cpus_per_trial"],
        gpus_per_trial=p["gpus_per_trial"],
        address=p["address"],
        storage=p["storage"],
        seed=p["seed"],
        study_name=p["study_name"],
        target_compute=p["target_compute"],
        target_params=p["target_params"],
        ladder=p["ladder"],
        ladder_ratio=p["ladder_ratio"],
        risk=p["risk"],
        ladder_prune_margin=p["ladder_prune_margin"],
        validate_top=p["validate_top"],
        validate_compute=p["validate_compute"],
        train={"eval_every_tokens": p["eval_every_tokens"]} if p["eval_every_tokens"] else {},
        progress=not p["as_json"],
    )
    if validate:
        prepare(opts)
    return opts


@search_app.command("status")
@user_errors
def search_status(
    out: Annotated[
        list[str], typer.Argument(help="One or more results directories (drivers sharing a study: their union).")
    ],
    storage: Annotated[
        Optional[str],
        typer.Option("--storage", help="The study storage URL: adds the study's counts over every driver."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Counts by state, best trials, Pareto front and progress of a search (running or finished)."""
    from archscale.search.status import status

    _emit(status(out, storage=storage), as_json)


@study_app.command("run")
@user_errors
def study_run(
    study_file: Annotated[
        str, typer.Argument(help="A study YAML (architectures x sizes x token budgets, or isoFLOP).")
    ],
    out: Out,
    data: Data = "pystdlib",
    scheduler: SchedulerStudy = "none",
    concurrency: Concurrency = None,
    cpus_per_trial: CpusPerTrial = 1.0,
    gpus_per_trial: GpusPerTrial = "0",
    address: Address = None,
    storage: Storage = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a scaling-study grid; writes the same results format as a search."""
    from archscale.search.options import SearchOptions
    from archscale.search.status import status
    from archscale.search.study import run_study

    opts = SearchOptions(
        space="",
        out=out,
        data=data,
        scheduler=scheduler,
        concurrency=concurrency,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
        address=address,
        storage=storage,
        progress=not as_json,
    )
    run_study(study_file, out, opts)
    _emit(status(out), as_json)


@user_errors
def quickstart(
    out: Annotated[
        str, typer.Option("--out", help="A new (or empty) directory for everything.")
    ] = "results/quickstart",
    small: Annotated[bool, typer.Option("--small", help="A CI-sized run (under 3 minutes on 2 cores).")] = False,
    address: Address = None,
    as_json: JsonFlag = False,
) -> None:
    """A real search, a seed check, a scaling study, fits and a report: the whole workflow, in minutes on a laptop."""
    import sys

    from archscale.search.quickstart import describe
    from archscale.search.quickstart import quickstart as run

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    findings = run(out, small=small, address=address, say=say)
    if as_json:
        typer.echo(json.dumps(findings, default=str))
    else:
        typer.echo(describe(findings))


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
    app.add_typer(search_app, name="search")
    app.add_typer(study_app, name="study")
