"""Faults survived, with real processes: a SIGKILLed trial worker, a killed driver, an extension,
Ray's experiment state truncated or lost, a torn journal (docs/reliability.md lists them all).

Each test drives the real `archscale` CLI in subprocesses (its own embedded Ray), like a user.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import polars as pl
import pytest

from tests.helpers import assert_results_agree_with_study, cli, curves_of, study_of, wait_for, write_space

pytestmark = pytest.mark.slow


def test_killed_trial_worker_is_retried_from_its_checkpoint(tmp_path):
    out = tmp_path / "kill-worker"
    proc = cli(
        "search",
        "run",
        str(write_space(tmp_path)),
        "--out",
        str(out),
        "--trials",
        "2",
        "--tokens",
        "200000",
        "--eval-every-tokens",
        "20000",
        "--scheduler",
        "none",
        "--concurrency",
        "2",
        "--json",
    )
    # wait until trial 0 has reported (and checkpointed) at least twice, then SIGKILL its worker
    wait_for(lambda: (c := curves_of(out)).height and c.filter(pl.col("trial_id") == 0).height >= 2)
    results = [
        json.loads(line)
        for p in (out / "ray" / "search").glob("*/result.json")
        for line in p.read_text().splitlines()
        if line.strip()
    ]
    pid = next(r["pid"] for r in results if r.get("trial_number") == 0)
    os.kill(pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]

    trials, curves, _ = assert_results_agree_with_study(out)
    assert trials.height == 2 and (trials["status"] == "completed").all()  # one trial, not two
    restarted = [
        r
        for p in (out / "ray" / "search").glob("*/result.json")
        for r in map(json.loads, p.read_text().splitlines())
        if r.get("trial_number") == 0
    ]
    assert len({r["pid"] for r in restarted}) >= 2  # it ran in a new worker...
    first_after = min(r["tokens"] for r in restarted if r["pid"] != pid)
    assert first_after > 20000  # ...which resumed from the checkpoint, not from zero
    tokens = curves.filter(pl.col("trial_id") == 0).sort("tokens")["tokens"].to_list()
    assert tokens == sorted(set(tokens)) and tokens[-1] >= 200000


def test_killed_driver_then_resume_and_extend(tmp_path):
    out = tmp_path / "kill-driver"
    space = write_space(tmp_path)
    proc = cli(
        "search",
        "run",
        str(space),
        "--out",
        str(out),
        "--trials",
        "4",
        "--tokens",
        "120000",
        "--eval-every-tokens",
        "20000",
        "--scheduler",
        "none",
        "--concurrency",
        "2",
        "--json",
    )
    wait_for(lambda: (c := curves_of(out)).height and c["trial_id"].n_unique() >= 2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.communicate(timeout=60)
    time.sleep(2)

    r = subprocess.run(
        [sys.executable, "-m", "archscale.search.cli", "search", "resume", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    trials, _, study = assert_results_agree_with_study(out)
    assert trials.height == 4 and trials["trial_id"].n_unique() == 4
    assert set(trials["status"]) <= {"completed", "failed"}
    assert (trials["status"] == "completed").sum() >= 3
    assert len(study.trials) == 4

    r = subprocess.run(
        [sys.executable, "-m", "archscale.search.cli", "search", "resume", str(out), "--trials", "6", "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    trials, _, study = assert_results_agree_with_study(out)
    assert trials.height == 6 and len(study.trials) == 6
    assert json.loads(r.stdout)["trials"] == 6


def statuses(out: Path) -> dict[str, int]:
    try:
        return dict(pl.read_parquet(out / "trials.parquet").group_by("status").len().iter_rows())
    except Exception:  # not written yet
        return {}


def kill_driver_mid_search(tmp_path: Path, name: str) -> tuple[Path, dict[int, optuna.trial.FrozenTrial]]:
    """A 4-trial search SIGKILLed (driver, Ray and all) once one trial has completed and another is
    training; returns its directory and the study's trials at that moment."""
    out = tmp_path / name
    proc = cli(
        "search", "run", str(write_space(tmp_path)), "--out", str(out), "--trials", "4", "--tokens", "100000",
        "--eval-every-tokens", "20000", "--scheduler", "none", "--concurrency", "2", "--json",
    )  # fmt: skip
    wait_for(lambda: statuses(out).get("completed", 0) >= 1 and statuses(out).get("running", 0) >= 1, timeout=600)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    time.sleep(2)
    return out, {t.number: t for t in study_of(out).trials}


def resume(out: Path) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [sys.executable, "-m", "archscale.search.cli", "search", "resume", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    return r


def assert_finished_without_duplicates(out: Path, before: dict[int, optuna.trial.FrozenTrial]) -> None:
    """4 trials, each once; trials finished before the kill untouched, unfinished ones re-run with
    the same proposal (same trial number, parameters and architecture)."""
    trials, _, study = assert_results_agree_with_study(out)
    after = {t.number: t for t in study.trials}
    assert len(after) == 4 and trials.height == 4 and trials["trial_id"].n_unique() == 4
    assert set(trials["status"]) == {"completed"}
    rerun = [n for n, t in before.items() if t.state == optuna.trial.TrialState.RUNNING]
    kept = [n for n, t in before.items() if t.state == optuna.trial.TrialState.COMPLETE]
    assert rerun and kept  # the kill really fell between trials
    for n in kept:  # never re-run: same values, same completion time
        assert after[n].values == before[n].values and after[n].datetime_complete == before[n].datetime_complete
    for n in rerun:
        assert after[n].params == before[n].params
        if "arch" in before[n].user_attrs:
            assert after[n].user_attrs["arch"] == before[n].user_attrs["arch"]


def test_resume_with_a_truncated_tuner_pkl_and_a_torn_journal(tmp_path):
    out, before = kill_driver_mid_search(tmp_path, "torn")
    tuner_pkl = out / "ray" / "search" / "tuner.pkl"
    tuner_pkl.write_bytes(tuner_pkl.read_bytes()[: tuner_pkl.stat().st_size // 2])  # ray#58179
    journal = out / "optuna.journal"
    complete = journal.read_bytes()
    journal.write_bytes(complete + b'{"op_code": 6, "worker_id": "dead-driver", "trial_id": 0, "use')  # torn append

    records = complete.count(b"\n")
    r = resume(out)
    assert "Ray's experiment state is unreadable" in r.stderr
    assert "last record was torn" in r.stderr and f"kept all {records} complete records" in r.stderr
    assert journal.read_bytes().startswith(complete)  # every complete record kept, in place
    assert list(out.glob("optuna.journal.torn-*"))[0].read_bytes().startswith(b'{"op_code": 6')
    assert_finished_without_duplicates(out, before)


def test_resume_without_the_ray_folder(tmp_path):
    out, before = kill_driver_mid_search(tmp_path, "no-ray")
    shutil.rmtree(out / "ray")  # lost with the node that held it
    r = resume(out)
    assert "no Ray experiment folder" in r.stderr
    assert_finished_without_duplicates(out, before)


@pytest.fixture
def small_disk(tmp_path):
    """A real filesystem of its own (a 64 MiB tmpfs) that a test can fill up; root only."""
    mount = tmp_path / "disk"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True, text=True)
    if r.returncode != 0:
        message = f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(disk: Path) -> Path:
    """Write zeros until the filesystem is full (ENOSPC), as a runaway process would."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 14, 512, 1):  # unbuffered, down to the last byte
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


def test_disk_full_while_writing_results(small_disk):
    out = small_disk / "search"
    space = write_space(small_disk.parent)
    proc = cli(
        "search", "run", str(space), "--out", str(out), "--trials", "4", "--tokens", "100000",
        "--eval-every-tokens", "20000", "--scheduler", "none", "--concurrency", "2",
    )  # fmt: skip
    try:
        wait_for(lambda: statuses(out).get("completed", 0) >= 1, timeout=600)
        filler = fill(small_disk)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no space left on the device" in errors[0] and "search resume" in errors[0], stderr
    assert "Traceback" not in stderr, stderr[-3000:]

    # the last good files are in place, readable, and nothing half-written is left beside them
    kept = pl.read_parquet(out / "trials.parquet")
    assert kept.filter(pl.col("status") == "completed").height >= 1
    pl.read_parquet(out / "curves.parquet")
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    done_before = {r["trial_id"]: r["eval_loss"] for r in kept.filter(pl.col("status") == "completed").to_dicts()}

    filler.unlink()  # space freed: resume finishes the search, losing nothing
    resume(out)
    trials, _, _ = assert_results_agree_with_study(out)
    assert trials.height == 4 and set(trials["status"]) == {"completed"}
    for number, loss in done_before.items():
        assert trials.filter(pl.col("trial_id") == number)["eval_loss"][0] == pytest.approx(loss)
