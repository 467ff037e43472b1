"""`archscale search ...`, `archscale study ...` and `archscale quickstart`: thin typed wrappers.

Module-level imports: typer and the standard library only (see search/cli.py).
"""

from __future__ import annotations

import functools
import json
from enum import Enum
from typing import Annotated, Optional

import typer

from archscale.search import ladder_flags
from archscale.search.display import emit
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
WorkersPerTrial = Annotated[
    int,
    typer.Option(
        "--workers-per-trial",
        min=1,
        help="Training workers per trial (Ray Train, data-parallel); --cpus-per-trial and --gpus-per-trial "
        "are per worker, and the batch is split over the workers.",
    ),
]


class ShardKind(str, Enum):
    """``archscale.trainers.distributed.SHARDS`` (a test keeps the two equal)."""

    ddp = "ddp"
    fsdp = "fsdp"


Shard = Annotated[
    ShardKind,
    typer.Option(
        "--shard", help="With several workers: ddp (a replica per worker) | fsdp (FSDP2, parameters sharded)."
    ),
]


def _split(objectives: str) -> list[str]:
    return [o.strip() for o in objectives.split(",") if o.strip()]


def search_options(
    space_file: Annotated[str, typer.Argument(help="Space YAML, or a shipped space name (tiny, activations, ...).")],
    out: Out,
    trials: Annotated[
        int, typer.Option("--trials", min=1, help="Architectures to try (each trained --seeds times).")
    ] = 12,
    budget_params: BudgetParams = None,
    budget_non_embedding_params: BudgetNonEmbeddingParams = None,
    budget_flops_per_token: BudgetFlopsPerToken = None,
    budget_active_params: BudgetActiveParams = None,
    tokens: Annotated[Optional[int], typer.Option("--tokens", min=1, help="Training tokens per trial.")] = None,
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
    workers_per_trial: WorkersPerTrial = 1,
    shard: Shard = ShardKind.ddp,
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
        Optional[int], typer.Option("--eval-every-tokens", min=1, help="Evaluation interval (default: 10 per run).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Sampler seed and first training seed.")] = 0,
    target_compute: ladder_flags.TargetCompute = None,
    target_params: ladder_flags.TargetParams = None,
    ladder: ladder_flags.Rungs = 3,
    ladder_ratio: ladder_flags.Ratio = 2.0,
    risk: ladder_flags.Risk = "mean",
    ladder_prune_margin: ladder_flags.PruneMargin = 0.05,
    validate_top: ladder_flags.ValidateTop = 0,
    validate_compute: ladder_flags.ValidateCompute = None,
    validate_seeds: ladder_flags.ValidateSeeds = 1,
    start_with: ladder_flags.StartWith = None,
    start_top: ladder_flags.StartTop = 3,
    as_json: JsonFlag = False,
):
    """`search run`'s flags, defined once (also parsed by `search submit`), as a `SearchOptions`."""
    from archscale.search.options import (
        BudgetOptions,
        ExecutionOptions,
        SearchOptions,
        StrategyOptions,
        ladder_from_args,
    )

    override = budget_override(budget_params, budget_non_embedding_params, budget_flops_per_token, budget_active_params)
    ladder_plan = ladder_from_args(
        {
            "target_compute": target_compute,
            "target_params": target_params,
            "ladder": ladder,
            "ladder_ratio": ladder_ratio,
            "risk": risk,
            "ladder_prune_margin": ladder_prune_margin,
            "validate_top": validate_top,
            "validate_compute": validate_compute,
            "validate_seeds": validate_seeds,
            "start_with": start_with,
            "start_top": start_top,
        }
    )
    return SearchOptions(
        space=space_file,
        out=out,
        trials=trials,
        budget=BudgetOptions(
            budget_kind=override[0] if override else None,
            budget_value=override[1] if override else None,
            tokens=tokens,
            tokens_per_param=tokens_per_param,
            data=data,
            train={"eval_every_tokens": eval_every_tokens} if eval_every_tokens else {},
            seeds=seeds,
        ),
        strategy=StrategyOptions(
            objectives=_split(objectives),
            sampler=sampler,
            scheduler=scheduler,
            seed=seed,
            study_name=study_name,
            ladder=ladder_plan,
        ),
        execution=ExecutionOptions(
            address=address,
            storage=storage,
            cpus_per_trial=cpus_per_trial,
            gpus_per_trial=gpus_per_trial,
            workers_per_trial=workers_per_trial,
            shard=ShardKind(shard).value,
            concurrency=concurrency,
            progress=not as_json,
        ),
    )


@search_app.command("run")
@user_errors
@functools.wraps(search_options, assigned=("__annotations__",))  # typer reads search_options' flags
def search_run(*args, **kwargs) -> None:
    """Search a space: Optuna proposes, Ray Tune trains, results land in --out as trials finish."""
    from archscale.search.run import run_search
    from archscale.search.status import status

    opts = search_options(*args, **kwargs)
    run_search(opts)
    emit(status(opts.out), as_json=not opts.execution.progress)


@search_app.command("resume")
@user_errors
def search_resume(
    out: Annotated[str, typer.Argument(help="A results directory written by `archscale search run`.")],
    trials: Annotated[
        Optional[int], typer.Option("--trials", min=1, help="Extend the search to this many architectures.")
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
    emit(status(out), as_json)


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
    from archscale.search.options import prepare

    prepare(search_options(**run_ctx.params))
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

    emit(status(out, storage=storage), as_json)


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
    workers_per_trial: WorkersPerTrial = 1,
    shard: Shard = ShardKind.ddp,
    address: Address = None,
    storage: Storage = None,
    seed_blocks: Annotated[
        Optional[bool],
        typer.Option(
            "--seed-blocks/--no-seed-blocks",
            help="Every architecture of a grid point on the same seeds, compared paired by seed (default: the "
            "study file's seed_blocks, true); --no-seed-blocks: each architecture its own seeds, unpaired tests.",
        ),
    ] = None,
    lr_sweep: Annotated[
        Optional[str],
        typer.Option(
            "--lr-sweep",
            help="Also train every size at these multiples of its lr, comma-separated and including 1 (e.g. "
            "0.5,1,2): checks that the transferred lr is the best at every size (default: the study file's "
            "lr_sweep, none). `archscale report` says where it is not.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a scaling-study grid; writes the same results format as a search."""
    from archscale.search.options import BudgetOptions, ExecutionOptions, SearchOptions, StrategyOptions
    from archscale.search.status import status
    from archscale.search.study import run_study

    opts = SearchOptions(
        space="",
        out=out,
        budget=BudgetOptions(data=data),
        strategy=StrategyOptions(scheduler=scheduler),
        execution=ExecutionOptions(
            address=address,
            storage=storage,
            cpus_per_trial=cpus_per_trial,
            gpus_per_trial=gpus_per_trial,
            workers_per_trial=workers_per_trial,
            shard=ShardKind(shard).value,
            concurrency=concurrency,
            progress=not as_json,
        ),
    )
    run_study(study_file, out, opts, seed_blocks=seed_blocks, lr_sweep=_factors(lr_sweep))
    emit(status(out), as_json)


def _factors(text: str | None) -> list[float] | None:
    """`--lr-sweep 0.5,1,2` as [0.5, 1.0, 2.0] (None when not given); one line on a bad value."""
    if text is None:
        return None
    try:
        factors = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--lr-sweep: give positive numbers separated by commas, e.g. 0.5,1,2; got {text!r}") from None
    return factors


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
