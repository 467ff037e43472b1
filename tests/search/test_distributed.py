"""Trials on several workers: data-parallel training (trainers/distributed.py) on CPU with gloo.

Each worker is a real process in a real gloo process group, as Ray Train's TorchTrainer sets one
up on every worker: 2 workers x half the batch must reach the losses of 1 worker x the whole
batch, step by step, and a run whose worker is killed resumes from the last checkpoint to the
uninterrupted run's losses.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ARCH = {"vocab_size": 256, "seq_len": 32, "n_layers": 2, "d_model": 32, "n_heads": 2, "d_ff": 64}
STEPS, BATCH = 20, 4
TRAIN = {
    "tokens": STEPS * BATCH * ARCH["seq_len"],
    "batch_size": BATCH,
    "lr": 3e-3,
    "eval_every_tokens": BATCH * ARCH["seq_len"],  # an evaluation (and a report) after every step
    "eval_tokens": 256,
    "threads": 1,
    "seed": 3,
}

WORKER = r"""
import json, os, sys
import torch.distributed as dist
from archscale.trainers import train
from archscale.trainers.distributed import Workers

rank, world, port, out, kill_at = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
resume = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6] else None
arch, cfg = json.loads(os.environ["ARCH"]), json.loads(os.environ["TRAIN"])
if world > 1:
    import datetime
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=20))
losses = []

def report(metrics):
    losses.append([metrics["step"], metrics["train_loss"], metrics["eval_loss"]])
    if metrics["step"] == kill_at and rank == world - 1:
        os.kill(os.getpid(), 9)  # this worker dies after the step's checkpoint was written

summary = train(arch, cfg, "pystdlib", report=report, out=out if rank == 0 else None, resume_from=resume,
                workers=Workers(rank, world, os.environ.get("SHARD", "ddp")))
if rank == 0:
    with open(os.path.join(out, "losses.json"), "w") as f:
        json.dump({"losses": losses, "tokens": summary["tokens"], "compute": summary["compute"]}, f)
if world > 1:
    # every rank finishes before any tears down: a peer that exits while another rank's gloo work is
    # still in flight makes that rank's transport thread abort ("terminate called ...", SIGABRT)
    dist.barrier()
    dist.destroy_process_group()
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(world: int, out: Path, kill_at: int = -1, resume: str = "", shard: str = "ddp") -> list[int]:
    """`world` worker processes of one run; their exit codes."""
    env = {**os.environ, "ARCH": json.dumps(ARCH), "TRAIN": json.dumps(TRAIN), "OMP_NUM_THREADS": "1", "SHARD": shard}
    port = str(_port())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(rank), str(world), port, str(out), str(kill_at), resume],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(world)
    ]
    codes = []
    for rank, p in enumerate(procs):
        try:
            _, err = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        if p.returncode != 0 and kill_at < 0:
            pytest.fail(f"worker {rank} of {world} failed ({p.returncode}):\n{err[-3000:]}")
        codes.append(p.returncode)
    return codes


def _losses(out: Path) -> dict:
    return json.loads((out / "losses.json").read_text())


@pytest.mark.parametrize("shard", ["ddp", "fsdp"])
def test_two_workers_with_half_the_batch_each_reach_one_workers_losses(tmp_path, shard):
    _run(1, tmp_path / "one")
    _run(2, tmp_path / "two", shard=shard)
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(one["losses"]) == len(two["losses"]) == STEPS
    for (step_a, train_a, eval_a), (step_b, train_b, eval_b) in zip(one["losses"], two["losses"], strict=True):
        assert step_a == step_b
        assert train_b == pytest.approx(train_a, rel=1e-4, abs=1e-5), f"step {step_a}"
        assert eval_b == pytest.approx(eval_a, rel=1e-4, abs=1e-5), f"step {step_a}"
    assert one["losses"][-1][1] < one["losses"][0][1] - 0.1, "it trained"
    # the budget and the counts do not depend on the number of workers
    assert (one["tokens"], one["compute"]) == (two["tokens"], two["compute"])


@pytest.mark.parametrize("shard", ["ddp", "fsdp"])
def test_a_killed_worker_resumes_from_the_checkpoint_to_the_same_losses(tmp_path, shard):
    """Under FSDP the checkpoint holds the full states, gathered from the shards, and is loaded
    back into them."""
    _run(2, tmp_path / "whole", shard=shard)
    codes = _run(2, tmp_path / "killed", kill_at=10, shard=shard)
    assert codes[1] == -9 and codes[0] != 0, "the last worker was killed; the main one lost its peer"
    checkpoint = tmp_path / "killed" / "checkpoint"
    assert (checkpoint / "meta.json").exists() or any(checkpoint.iterdir()), "a checkpoint was written"
    _run(2, tmp_path / "resumed", resume=str(checkpoint), shard=shard)
    whole, resumed = _losses(tmp_path / "whole")["losses"], _losses(tmp_path / "resumed")["losses"]
    assert [s for s, *_ in resumed] == list(range(11, STEPS + 1)), "resumed after step 10"
    for (step, train_w, eval_w), (_, train_r, eval_r) in zip(whole[10:], resumed, strict=True):
        assert train_r == pytest.approx(train_w, rel=1e-5, abs=1e-6), f"step {step}"
        assert eval_r == pytest.approx(eval_w, rel=1e-5, abs=1e-6), f"step {step}"


def _train_worker_pids() -> set[int]:
    """Ray Train worker processes on this machine (Ray titles them `ray::RayTrainWorker...`)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"RayTrainWorker" in (entry / "cmdline").read_bytes():
                    pids.add(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow
def test_a_killed_ray_train_worker_is_restarted_from_the_checkpoint(tmp_path):
    """Under Ray Train: SIGKILL one of a 2-worker trial's workers after two evaluations; Ray Train
    restarts the workers from the last checkpoint and the trial completes once, its curve whole.
    (Before the module's `ray_cluster` test: no other Ray of this process is running.)"""
    import time

    from tests.helpers import assert_results_agree_with_study, cli, curves_of, wait_for, write_space

    out = tmp_path / "out"
    before = _train_worker_pids()
    proc = cli(
        "search", "run", str(write_space(tmp_path)), "--out", str(out), "--trials", "1",
        "--tokens", "200000", "--eval-every-tokens", "20000", "--scheduler", "none",
        "--workers-per-trial", "2", "--json",
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},  # its own Ray, not another test's
    )  # fmt: skip
    wait_for(lambda: curves_of(out).height >= 2, timeout=400)
    workers = sorted(_train_worker_pids() - before)
    assert len(workers) == 2, workers
    killed_at = time.time()
    os.kill(workers[-1], 9)
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    trials, curves, _ = assert_results_agree_with_study(out)
    assert trials.height == 1 and trials["status"].to_list() == ["completed"], trials["error"].to_list()
    tokens = curves.sort("tokens")["tokens"].to_list()
    assert tokens == sorted(set(tokens)) and tokens[-1] >= 200000
    results = [
        json.loads(line) for p in (out / "ray" / "search").glob("*/result.json") for line in p.read_text().splitlines()
    ]
    after = [r["tokens"] for r in results if r["timestamp"] > killed_at and r["status"] == "running"]
    assert after and min(after) > 20000, "the restarted workers resumed from the checkpoint, not from zero"


def test_a_two_worker_trial_runs_inside_a_real_search(tmp_path, ray_cluster):
    """A real local Ray (num_cpus=2): each trial's Tune function drives a Ray Train run of 2
    workers x 1 CPU; the trials complete, their curves and Optuna values are recorded as a
    one-worker trial's are, and the final report says the trial had 2 workers."""
    from archscale.search.options import BudgetOptions, ExecutionOptions, SearchOptions, StrategyOptions
    from archscale.search.run import run_search
    from tests.helpers import assert_results_agree_with_study, write_space

    out = tmp_path / "out"
    summary = run_search(
        SearchOptions(
            space=str(write_space(tmp_path)),
            out=str(out),
            trials=2,
            budget=BudgetOptions(tokens=8192, train={"eval_every_tokens": 4096, "eval_tokens": 1024}),
            strategy=StrategyOptions(scheduler="none", sampler="random"),
            execution=ExecutionOptions(progress=False, workers_per_trial=2),
        )
    )
    trials, curves, study = assert_results_agree_with_study(out)
    assert trials.height == 2 and set(trials["status"]) == {"completed"}, (summary, trials["error"].to_list())
    assert curves.group_by("trial_id").len()["len"].to_list() == [2, 2]
    assert (trials["tokens"] == 8192).all(), "the budget does not depend on the workers"
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 2 and all(len(t.intermediate_values) == 2 for t in complete)
    finals = [json.loads(p.read_text().splitlines()[-1]) for p in sorted((out / "ray").glob("search/*/result.json"))]
    assert len(finals) == 2 and all(f["workers"] == 2 and f["status"] == "completed" for f in finals), finals
    assert all(f["tokens_per_s_per_worker"] == pytest.approx(f["tokens_per_s"] / 2) for f in finals)
    # trials.parquet carries them too, per trial and per worker
    assert (trials["workers"] == 2).all()
    assert trials["tokens_per_s_per_worker"].to_list() == pytest.approx((trials["tokens_per_s"] / 2).to_list())


def test_the_shard_flag_offers_every_shard_mode():
    from archscale.search.commands import ShardKind
    from archscale.trainers.distributed import SHARDS

    assert tuple(k.value for k in ShardKind) == SHARDS


def test_resources_of_a_multi_worker_trial():
    """W workers hold W x (cpus, gpus); the Tune function that drives them holds no CPU."""
    from archscale.search.resources import TrialResources

    two = TrialResources(cpus=1.0, gpus="0.5", workers=2)
    assert two.cpus_total == 2.0
    assert two.tune_request()["cpu"] == 0
    assert two.per_worker({"arch": None}) == {"CPU": 1.0, "GPU": 0.5}
    assert TrialResources(cpus=2.0).tune_request() == {"cpu": 2.0}


def test_mfu_is_each_workers_model_flops_over_the_given_peak(monkeypatch):
    from archscale.search.trial import PEAK_FLOPS_ENV, final_report
    from archscale.spaces import ArchConfig, count

    arch = ArchConfig(**ARCH)
    summary = {"status": "completed", "tokens": 100, "compute": 6e8, "eval_loss": 2.0, "arch": arch.to_dict()}
    summary |= {"tokens_per_s": 2000.0, "tokens_per_s_per_worker": 1000.0, "workers": 2}
    dense = count(arch, flops_convention="dense").flops_per_token  # MFU's convention, as check gpu's
    base = {"trial_number": 0, "seed": 0, "target_tokens": 100}
    monkeypatch.delenv(PEAK_FLOPS_ENV, raising=False)
    assert final_report(base, summary).mfu is None, "no peak given: no MFU, never a guessed one"
    monkeypatch.setenv(PEAK_FLOPS_ENV, "1e11")
    report = final_report(base, summary)
    assert report.mfu == pytest.approx(1000.0 * dense / 1e11)
    assert (report.workers, report.tokens_per_s, report.tokens_per_s_per_worker) == (2, 2000.0, 1000.0)
