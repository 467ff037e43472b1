"""Running trials: Ray Tune trains what a `ProposalSearcher` proposes; results land in DIR as they come.

    run_trials(searcher, study, execution, out, scheduler="asha")   -> summary dict

`run_trials` is the one runner: searches, scaling studies, resumed searches and a ladder search's
validation all hand it a `ProposalSearcher` and get the same Ray Tune setup (resources,
scheduler, fault tolerance, progress) and the same results directory.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from archscale.search.options import ExecutionOptions
from archscale.search.results import summarize

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


def run_trials(
    searcher,
    study,
    execution: ExecutionOptions,
    out: Path,
    scheduler: str = "none",
    experiment: str = EXPERIMENT,
) -> dict[str, Any]:
    """Run the trials `searcher` (a ProposalSearcher) proposes through Ray Tune into `out`.

    `execution` says where and how (address, resources, concurrency, progress); `scheduler`
    (asha | none) applies when the strategy allows early stopping. The strategy says how many
    trials (`total`) and bounds their token budgets (`max_tokens`, which places ASHA's rungs).
    """
    from ray import tune

    from archscale.clusters.connect import connect
    from archscale.search.callbacks import ProgressCallback
    from archscale.search.schedulers import make_scheduler
    from archscale.search.searcher import WRITE_FAILURES, StopOnWriteFailure

    study.open()  # create the study (fails early on a bad storage URL)
    quiet_tune()
    cluster = connect(execution.address)
    strategy = searcher.proposals
    total = strategy.total
    scheduler = scheduler if strategy.early_stopping else "none"
    max_tokens = strategy.max_tokens() if scheduler == "asha" else 1  # only ASHA places rungs by it
    trial_scheduler = make_scheduler(scheduler, study.objectives, max_tokens)
    resources = resources_of(execution)
    concurrency = execution.concurrency or max(1, int(cluster["cpus"] // resources.cpus_total))
    run_config = tune.RunConfig(
        name=experiment,
        storage_path=str(out / "ray"),
        verbose=0,
        stop=StopOnWriteFailure(searcher.out),
        # the trainer's files live outside the synced trial folder (search/trial.py): keep it so
        sync_config=tune.SyncConfig(sync_artifacts=False),
        callbacks=[ProgressCallback(total, enabled=execution.progress, out=searcher.out)],
        failure_config=tune.FailureConfig(max_failures=2),  # dead workers: retried from the last checkpoint
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
    )
    tuner = tune.Tuner(
        trainable(execution),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=trial_scheduler,
            num_samples=max(total, 1),
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


def resources_of(execution: ExecutionOptions):
    """A trial's `TrialResources` (search/resources.py) from the execution options."""
    from archscale.search.resources import TrialResources

    return TrialResources(execution.cpus_per_trial, execution.gpus_per_trial, execution.workers_per_trial)


def trainable(execution: ExecutionOptions):
    """The Tune trainable with its resources: `run_trial` itself, or (several workers per trial)
    `run_trial` bound to its workers, as the driver of a Ray Train run (search/trial.py)."""
    from ray import tune

    from archscale.search.trial import run_trial

    resources = resources_of(execution)
    if resources.workers == 1:
        return tune.with_resources(run_trial, resources.tune_request())
    bound = tune.with_parameters(run_trial, resources=resources, shard=execution.shard)
    return tune.with_resources(bound, resources.tune_request())


def trial_resources(cpus: float, gpus: str):
    """Ray resources of a one-worker trial: fixed, or a GPU fraction from an analytic memory estimate."""
    from archscale.search.resources import TrialResources

    return TrialResources(cpus, gpus).tune_request()
