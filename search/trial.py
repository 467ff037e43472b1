"""One Ray Tune trial: train the proposed architecture and report every evaluation as a `TrialReport`.

Runs inside a Ray worker. Python errors and divergence (the trainer's `RunStatus.DIVERGED`, mapped by
`final_report`) end the trial with a final report whose status is failed and whose `error` says why
(retrying a deterministic error is pointless); only a dead worker (SIGKILL, a lost node) makes Ray
retry the trial, from its last checkpoint.

Where the trainer writes: `scratch_dir()`, the trial's working directory, which Ray never syncs
(`SyncConfig.sync_artifacts` is off). Not `get_trial_dir()`: that folder is copied to the
experiment folder by Ray's driver sync while the trainer renames checkpoint and curve files into
place, and a file renamed away mid-copy made the sync print a traceback. Checkpoints reach the
experiment folder through `tune.report(checkpoint=...)` (copied before `report` returns), curves
and results through the report itself, so nothing of value stays behind in the scratch folder,
which is removed when the trial ends.

Several workers per trial (`--workers-per-trial W`): the Tune trial is the driver of one Ray Train
run, the pattern Ray recommends for Tune + multi-GPU training (Ray 2.60's Train V2 user guide
"Hyperparameter Tuning with Ray Tune": the Tune function builds a `TorchTrainer` and calls `fit`;
`ScalingConfig` holds the workers' resources; `ray.tune.integration.ray_train.TuneReportCallback`
hands rank 0's `ray.train.report` metrics to `ray.tune.report`). Each worker runs the same
trainer with its `Workers` (trainers/distributed.py: DDP or FSDP2, the batch split over the
workers) and reports the same `TrialReport`s; rank 0 attaches the checkpoint, which Ray Train
persists and hands back (`ray.train.get_checkpoint`) when it restarts the workers after one dies
(`FailureConfig(max_failures=2)`, as the single-worker trials' Tune retries). The budget, the
counts and the FLOPs are the trial's whatever W; `tokens_per_s` is the trial's and
`tokens_per_s_per_worker` each worker's share.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archscale.search.proposals import Proposal
from archscale.search.resources import TrialResources
from archscale.spaces.outcome import RunStatus
from archscale.spaces.record import COUNT_COLUMNS, TrialStatus, lengths_as_records


@dataclass(frozen=True)
class TrialReport:
    """What a trial tells the driver, at every evaluation (status running) and once at the end
    (completed or failed). Flat scalars (plus two lists), so Ray passes it through unchanged.

    Ray overwrites a result's `trial_id` with its own id, so the Optuna number travels as
    `trial_number`. The architecture's counts ride along because the Pareto scheduler ranks
    running trials by them.
    """

    trial_number: int
    seed: int
    status: TrialStatus
    target_tokens: int
    tokens: int = 0
    compute: float | None = None
    epochs: float | None = None  # tokens / the training split's tokens (spaces.record.epochs)
    step: int | None = None
    eval_loss: float | None = None
    eval_bpb: float | None = None
    train_loss: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    wall_s: float | None = None
    ffn_zero_frac: float | None = None
    ffn_dead_frac: float | None = None
    grad_norm_by_layer: list[float] = field(default_factory=list)
    router_aux_loss: float | None = None  # router health (ffn_type=moe only): see record.CURVE_COLUMNS
    expert_load_max_over_mean: float | None = None
    expert_token_share: list[float] | None = None
    dropped_token_frac: float | None = None
    eval_loss_by_length: list[dict[str, Any]] = field(default_factory=list)
    run_status: str | None = None  # the trainer's typed outcome (RunStatus value), in the final report only
    error: str | None = None
    params: int | None = None
    non_embedding_params: int | None = None
    flops_per_token: float | None = None
    kv_cache_bytes_per_token: int | None = None
    attention_backend: str | None = None  # chosen by the trainer when it builds the model
    active_params: int | None = None
    workers: int | None = None  # training processes of the trial (--workers-per-trial), in the final report
    tokens_per_s_per_worker: float | None = None
    mfu: float | None = (
        None  # each worker's model FLOP/s over PEAK_FLOPS_ENV's peak (the trial's MFU too); None without it
    )

    def to_result(self) -> dict[str, Any]:
        """The dict given to `tune.report`. A failed trial's eval_loss is inf, never None, so
        Ray's schedulers (which compare the metric) never see a missing value."""
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        if self.status == TrialStatus.FAILED and d["eval_loss"] is None:
            d["eval_loss"] = math.inf
        return d

    @classmethod
    def from_result(cls, result: dict[str, Any]) -> TrialReport:
        """The report inside a (possibly flattened) result Ray hands back to the driver."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in result.items() if k in names}
        values["status"] = TrialStatus(values["status"])
        return cls(**values)

    @property
    def final_loss(self) -> float | None:
        """eval_loss when it is a real number, else None."""
        return self.eval_loss if self.eval_loss is not None and math.isfinite(self.eval_loss) else None


def ended_as(last: TrialReport | None, worker_error: bool) -> TrialStatus:
    """A finished trial's status, decided here only: from its last report, or failed when its
    worker died or it never reported. A trial whose last report is still `running` was stopped
    by the scheduler before its budget: pruned."""
    if worker_error or last is None:
        return TrialStatus.FAILED
    if last.status == TrialStatus.RUNNING:
        return TrialStatus.PRUNED
    return last.status


def run_trial(config: dict[str, Any], resources: TrialResources | None = None, shard: str = "ddp") -> None:
    """The Ray Tune trainable: `config` is a `Proposal.to_config()`; `resources` with several
    workers makes this trial the driver of a Ray Train run (`run_on_workers`)."""
    from ray import tune

    proposal = Proposal.from_config(config)
    base = _identity(proposal)
    if proposal.error:  # infeasible architecture: recorded as failed, never trains
        tune.report(TrialReport(**base, status=TrialStatus.FAILED, error=proposal.error).to_result())
        return
    if resources is not None and resources.workers > 1:
        run_on_workers(config, resources, shard)
        return

    from archscale.trainers import train

    scratch = scratch_dir(proposal.number)
    checkpoint = tune.get_checkpoint()
    resume_from = None
    if checkpoint is not None:
        resume_from = checkpoint.to_directory(str(scratch / "restored"))
    train_config = dict(proposal.train)
    cpus = _assigned_cpus()
    if cpus:
        train_config.setdefault("threads", cpus)
    metric_names = {f.name for f in dataclasses.fields(TrialReport)}

    def report(metrics: dict[str, Any]) -> None:
        values = {k: v for k, v in metrics.items() if k in metric_names and k not in base}
        payload = TrialReport(**base, **values, status=TrialStatus.RUNNING).to_result()
        ckpt_dir = metrics.get("checkpoint")
        if ckpt_dir:
            tune.report(payload, checkpoint=tune.Checkpoint.from_directory(ckpt_dir))
        else:
            tune.report(payload)

    try:
        summary = train(
            proposal.arch, train_config, proposal.data, report=report, out=scratch / "run", resume_from=resume_from
        )
    except Exception as e:
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        tune.report(
            TrialReport(**base, status=TrialStatus.FAILED, error=last, run_status=RunStatus.FAILED.value).to_result()
        )
        return
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    tune.report(final_report(base, summary).to_result())


def _identity(proposal: Proposal) -> dict[str, Any]:
    """The fields every report of a trial carries: its numbers and its counts."""
    counts = {k: (proposal.counts or {}).get(k) for k in COUNT_COLUMNS}
    return {"trial_number": proposal.number, "seed": proposal.seed, "target_tokens": proposal.target_tokens, **counts}


def run_on_workers(config: dict[str, Any], resources: TrialResources, shard: str) -> None:
    """Drive one Ray Train run of `resources.workers` workers from inside the Tune trial; their
    rank-0 reports reach Tune through `TuneReportCallback`. A run that fails past Ray Train's
    retries ends the trial failed, with the error."""
    import os

    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")  # the default in Ray 2.60; the API used here is V2's
    from ray import train, tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    proposal = Proposal.from_config(config)
    per_worker = resources.per_worker(config)
    storage = tune.get_context().get_storage()  # the Train run is kept with the Tune trial (DIR/ray: shared
    # storage on a multi-node cluster, which Ray Train needs for the workers' checkpoints)
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"config": config, "shard": shard, "threads": max(1, int(resources.cpus))},
        scaling_config=train.ScalingConfig(
            num_workers=resources.workers, use_gpu=per_worker.get("GPU", 0) > 0, resources_per_worker=per_worker
        ),
        run_config=train.RunConfig(
            name=f"trial-{proposal.number}",  # the same run again if Tune restarts this driver: Train resumes it
            storage_path=f"{storage.trial_fs_path}/train",
            storage_filesystem=storage.storage_filesystem,
            callbacks=[TuneReportCallback()],
            failure_config=train.FailureConfig(max_failures=2),
            checkpoint_config=train.CheckpointConfig(num_to_keep=1),
        ),
    )
    try:
        trainer.fit()
    except Exception as e:
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        failed = TrialReport(**_identity(proposal), status=TrialStatus.FAILED, error=last)
        tune.report(dataclasses.replace(failed, run_status=RunStatus.FAILED.value).to_result())


def train_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker of a trial: the trainer with this worker's `Workers`, reporting each
    evaluation with `ray.train.report` (every worker reports; rank 0's metrics and checkpoint count)."""
    from ray import train
    from ray.train.torch import get_device

    from archscale.trainers import train as train_model
    from archscale.trainers.distributed import Workers

    proposal = Proposal.from_config(loop_config["config"])
    base = _identity(proposal)
    context = train.get_context()
    workers = Workers(context.get_world_rank(), context.get_world_size(), loop_config["shard"])
    scratch = scratch_dir(proposal.number, worker=workers.rank)
    checkpoint = train.get_checkpoint()
    resume_from = checkpoint.to_directory(str(scratch / "restored")) if checkpoint is not None else None
    device = get_device()
    train_config = {"threads": loop_config["threads"], **proposal.train}
    if device.type == "cuda":
        train_config["device"] = str(device)
    metric_names = {f.name for f in dataclasses.fields(TrialReport)}

    def report(metrics: dict[str, Any]) -> None:
        values = {k: v for k, v in metrics.items() if k in metric_names and k not in base}
        payload = TrialReport(**base, **values, status=TrialStatus.RUNNING).to_result()
        ckpt_dir = metrics.get("checkpoint") if workers.is_main else None
        train.report(payload, checkpoint=train.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None)

    try:
        out = scratch / "run" if workers.is_main else None
        summary = train_model(
            proposal.arch, train_config, proposal.data, report=report, out=out, resume_from=resume_from, workers=workers
        )
    except Exception as e:
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        failed = TrialReport(**base, status=TrialStatus.FAILED, error=last, run_status=RunStatus.FAILED.value)
        train.report(failed.to_result())
        return
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    train.report(final_report(base, {**summary, "workers": workers.world_size}).to_result())


def final_report(base: dict[str, Any], summary: dict[str, Any]) -> TrialReport:
    """The last report of a trial that trained: completed when the trainer's `RunStatus` is
    completed, else failed (diverged, stopped or failed), with the error "<run status>: <reason>".
    Decided from the typed outcome, not from text; `base` is the trial's identity and counts; a
    summary's `workers` (1 when absent) divides the trial's tokens/s into each worker's."""
    outcome = RunStatus(summary["status"])
    completed = outcome == RunStatus.COMPLETED
    workers, tokens_per_s = summary.get("workers") or 1, summary.get("tokens_per_s")
    per_worker = tokens_per_s / workers if tokens_per_s else None
    return TrialReport(
        **base,
        status=TrialStatus.COMPLETED if completed else TrialStatus.FAILED,
        tokens=summary["tokens"],
        compute=summary["compute"],
        epochs=summary.get("epochs"),
        eval_loss=summary["eval_loss"],
        eval_bpb=summary.get("eval_bpb"),
        train_loss=summary.get("train_loss"),
        tokens_per_s=summary.get("tokens_per_s"),
        wall_s=summary.get("wall_s"),
        eval_loss_by_length=lengths_as_records(summary.get("eval_loss_by_length")),
        attention_backend=summary.get("attention_backend"),
        workers=workers,
        tokens_per_s_per_worker=per_worker,
        mfu=mfu(per_worker, summary.get("arch")),
        error=None if completed else f"{outcome.value}: {summary.get('reason')}",
        run_status=outcome.value,
    )


#: one device's peak FLOP/s (the `peaks` figure `archscale check gpu` measures on the cluster's GPUs)
PEAK_FLOPS_ENV = "ARCHSCALE_PEAK_FLOPS"


def mfu(tokens_per_s_per_worker: float | None, arch: dict[str, Any] | None) -> float | None:
    """Model FLOPs utilisation of one worker (= the trial's: every worker trains at the trial's rate
    over W): tokens/s x archscale's training FLOPs per token under the dense convention (as PaLM and
    nanoGPT count MFU, and `archscale check gpu` does) over the device's peak in
    `ARCHSCALE_PEAK_FLOPS`; None when that peak is not given or a figure is missing."""
    import os

    peak = float(os.environ.get(PEAK_FLOPS_ENV) or 0)
    if not (peak > 0 and tokens_per_s_per_worker and arch):
        return None
    from archscale.spaces import ArchConfig, count

    return tokens_per_s_per_worker * count(ArchConfig(**arch), flops_convention="dense").flops_per_token / peak


def scratch_dir(number: int, worker: int | None = None) -> Path:
    """A fresh folder for the trainer's files, outside everything Ray syncs (see the module docstring);
    a Ray Train worker's (`worker`: its rank) in the system's temp folder."""
    from ray import tune

    try:
        if worker is not None:
            raise LookupError("a Ray Train worker: no Tune trial folder here")
        base = Path(tune.get_context().get_storage().trial_working_directory)
    except Exception:  # outside a Tune session (or a Ray without the storage context)
        base = Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    prefix = f"archscale-trial-{number}-" if worker is None else f"archscale-trial-{number}-worker-{worker}-"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def _assigned_cpus() -> int | None:
    try:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
        return max(1, int(cpus)) if cpus else None
    except Exception:
        return None
