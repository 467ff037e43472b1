"""Running trials: Ray Tune distributes what the searcher proposes; results land in DIR as they come.

    run_search(SearchOptions(space="tiny", out="results/x", trials=12, ...)) -> summary dict
    run_trials(searcher, study, opts, out, total=..., max_tokens=...)        -> summary dict

`run_trials` is the one runner: searches (`run_search`), scaling studies (`search.study.run_study`)
and resumed searches (`search.resume`) all hand it a `ProposalSearcher` and get the same Ray Tune
setup (resources, scheduler, fault tolerance, progress) and the same results directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from archscale.search.options import SearchOptions, ladder_plan, ladder_study, prepare
from archscale.search.results import summarize, write_json
from archscale.spaces.errors import UserError

__all__ = ["SearchOptions", "prepare", "run_search", "run_trials", "describe_environment", "trial_resources"]

EXPERIMENT = "search"

#: Ray Tune's console output, set before `Tuner.fit`: archscale prints its own progress
#: (`search/callbacks.py`). Ray 2.60's default reporter prints the "Configuration for experiment"
#: box, "View detailed results here" and the TensorBoard hint even at `verbose=0`; its legacy
#: reporter prints nothing at `verbose=0`. (The TensorBoard event files are still written: see
#: `archscale dashboard`.)
TUNE_CONSOLE_ENV = {"RAY_AIR_NEW_OUTPUT": "0"}


def quiet_tune() -> None:
    """Keep Ray Tune's banners out of archscale's output (an explicit user setting wins)."""
    import logging

    for key, value in TUNE_CONSOLE_ENV.items():
        os.environ.setdefault(key, value)
    # a failed trial reports eval_loss=inf on purpose (trial.TrialReport); TensorBoard's logger
    # warns "NaN or Inf found in input tensor." for each such value
    logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)


def describe_environment() -> dict[str, Any]:
    """Versions, git revision and hardware, for run.json (every run describes itself)."""
    import importlib.metadata as md
    import subprocess

    versions = {}
    for pkg in ("archscale", "torch", "ray", "optuna", "polars", "altair"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    versions["python"] = platform.python_version()
    try:
        git = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).resolve().parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        git = None
    hardware = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    return {"versions": versions, "git_revision": git, "hardware": hardware}


def run_search(opts: SearchOptions) -> dict[str, Any]:
    """Run a search into `opts.out` and return its summary (counts by status, best trials)."""
    from archscale.clusters.connect import redact
    from archscale.search.proposals import SpaceProposals
    from archscale.search.searcher import ProposalSearcher

    space, study, plan = prepare(opts)
    out = Path(opts.out).resolve()
    if (out / "run.json").exists():
        raise FileExistsError(
            f"{out}: already holds a search (run.json); use `archscale search resume {opts.out}` "
            "to continue or extend it, or choose a new --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:12]
    run_info = {
        "kind": "search",
        "run_id": run_id,  # tags this directory's trials in a study several drivers share
        "space": space.spec.model_dump(mode="json"),
        "space_file": space.path,
        "budget": asdict(space.budget),
        "args": {**asdict(opts), "storage": redact(opts.storage)},
        "objectives": [{"name": o, "direction": d} for o, d in zip(study.objectives, study.directions, strict=True)],
        "storage": redact(study.storage) if opts.storage else study.storage,
        "study_name": study.study_name,
        "experiment": str(out / "ray" / EXPERIMENT),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **describe_environment(),
    }
    ladder = ladder_plan(opts)
    if ladder is not None:
        return _run_ladder_search(opts, space, study, plan, ladder, out, run_info)
    write_json(out / "run.json", run_info)
    searcher = ProposalSearcher(SpaceProposals(space, plan), study, out, run_id=run_id)
    max_tokens = plan.target_tokens or int(plan.tokens_per_param * space.budget.value)
    return run_trials(searcher, study, opts, out, total=opts.trials * opts.seeds, max_tokens=max_tokens)


def _run_ladder_search(opts, space, study, plan, ladder, out: Path, run_info: dict[str, Any]) -> dict[str, Any]:
    """A ladder search (search/ladder.py): every rung a trial of `study`, every architecture a
    trial of the ladder study, told its predicted loss at the target."""
    from archscale.search.ladder import LadderProposals
    from archscale.search.searcher import ProposalSearcher

    if opts.seeds != 1:
        raise UserError(
            "--seeds: a ladder search trains each rung once (the joint fit pools noise across ladders); give --seeds 1"
        )
    ladders = ladder_study(opts, study)
    run_info.update(
        kind="ladder-search",
        ladder={
            "rungs": ladder.rungs,
            "ratio": ladder.ratio,
            "risk": ladder.risk,
            "target_compute": ladder.target_compute,
            "target_params": ladder.target_params,
            "prune_margin": ladder.prune_margin,
        },
        ladder_study=ladders.study_name,
        objectives=[{"name": o, "direction": d} for o, d in zip(ladders.objectives, ladders.directions, strict=True)],
    )
    write_json(out / "run.json", run_info)
    ladders.open()
    proposals = LadderProposals(space, plan, ladder, ladders, opts.trials, out)
    searcher = ProposalSearcher(proposals, study, out)
    top = space.budget.value * ladder.ratio ** (ladder.rungs - 1)
    max_tokens = plan.target_tokens or int(plan.tokens_per_param * top)
    opts = dataclasses.replace(opts, scheduler="none")  # rungs of different sizes: no early stopping across them
    try:
        summary = run_trials(searcher, study, opts, out, total=opts.trials * ladder.rungs, max_tokens=max_tokens)
    finally:
        proposals.close()
    if opts.validate_top:
        from archscale.search.validate import validate_top

        summary["validation"] = validate_top(proposals, opts, opts.validate_top, opts.validate_compute)
    return summary


def run_trials(
    searcher,
    study,
    opts: SearchOptions,
    out: Path,
    total: int,
    max_tokens: int,
    experiment: str = EXPERIMENT,
) -> dict[str, Any]:
    """Run up to `total` trials of `searcher` (a ProposalSearcher) through Ray Tune into `out`.

    `opts` supplies the execution settings (address, scheduler, resources, concurrency,
    progress); `max_tokens` is the largest trial budget (it places ASHA's rungs).
    """
    from ray import tune

    from archscale.clusters.connect import connect
    from archscale.search.callbacks import ProgressCallback
    from archscale.search.schedulers import make_scheduler
    from archscale.search.searcher import WRITE_FAILURES, StopOnWriteFailure
    from archscale.search.trial import run_trial

    study.open()  # create the study (fails early on a bad storage URL)
    quiet_tune()
    cluster = connect(opts.address)
    scheduler = make_scheduler(opts.scheduler, study.objectives, max_tokens)
    trainable = tune.with_resources(run_trial, trial_resources(opts.cpus_per_trial, opts.gpus_per_trial))
    concurrency = opts.concurrency or max(1, int(cluster["cpus"] // opts.cpus_per_trial))
    run_config = tune.RunConfig(
        name=experiment,
        storage_path=str(out / "ray"),
        verbose=0,
        stop=StopOnWriteFailure(searcher.out),
        # the trainer's files live outside the synced trial folder (search/trial.py): keep it so
        sync_config=tune.SyncConfig(sync_artifacts=False),
        callbacks=[ProgressCallback(total, enabled=opts.progress, out=searcher.out)],
        failure_config=tune.FailureConfig(max_failures=2),  # dead workers: retried from the last checkpoint
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=total,
            max_concurrent_trials=concurrency,
            reuse_actors=True,
        ),
        run_config=run_config,
    )
    started = time.monotonic()
    WRITE_FAILURES.pop(searcher.out, None)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Ray Tune's banners must not mix with --json output
            tuner.fit()
        if searcher.out not in WRITE_FAILURES:
            searcher.writer.flush()
    finally:
        failure = WRITE_FAILURES.pop(searcher.out, None)
        if failure is not None:
            import logging

            logging.getLogger("ray").setLevel(logging.ERROR)
            raise failure
    return summarize(out, wall_s=time.monotonic() - started)


def trial_resources(cpus: float, gpus: str):
    """Ray resources per trial: fixed, or a GPU fraction from an analytic memory estimate."""
    if gpus == "auto":
        from archscale.search.resources import gpu_fraction_for

        return lambda config: {"cpu": cpus, "gpu": gpu_fraction_for(config)}
    g = float(gpus)
    return {"cpu": cpus, "gpu": g} if g else {"cpu": cpus}
