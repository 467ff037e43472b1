"""Helpers shared by test modules: the CLI in a subprocess, waiting, small spaces, result checks, Chromium.

Test modules import these from here, never from one another (a test module is not a library).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import polars as pl
import pytest
import yaml

# ---- the CLI in a subprocess, like a user ----


def cli(*args: str, **kw) -> subprocess.Popen:
    """`archscale ARGS` in its own session (so a test can signal its whole process group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "archscale.search.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kw,
    )


def wait_for(predicate, timeout: float = 240, every: float = 0.5):
    """Poll `predicate` until it returns something truthy (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError("condition not reached")


def stop_processes_mentioning(marker: str, timeout: float = 30) -> int:
    """End every process whose command line names `marker` (a temp dir only this test made, such as
    the RAY_TMPDIR of a `ray start --head` it ran): SIGTERM, then SIGKILL after `timeout` seconds.
    By pid, never by name, so other Ray instances on the machine live on (`ray stop` would end
    them all). Reads /proc (Linux). Returns how many processes it ended."""
    import signal

    def mine() -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:  # ended meanwhile, or not ours to read
                continue
        return pids

    found = mine()
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while (left := mine()) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(found)


# ---- search setup ----


def write_space(tmp_path: Path) -> Path:
    """A two-architecture space at 30K parameters whose trials train in seconds."""
    space = {
        "name": "faults",
        "arch": {
            "vocab_size": 256,
            "seq_len": 32,
            "n_layers": 1,
            "n_heads": 2,
            "norm": "rmsnorm",
            "ffn_activation": {"choices": ["relu", "swiglu"]},
            "position": "rope",
        },
        "train": {"batch_size": 8, "lr": 3.0e-3},
        "budget": {"kind": "params", "value": 30000, "tolerance": 0.02},
    }
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(space))
    return p


#: Four activations at 12K parameters: the smallest space whose architectures differ (ladder and
#: strategy tests simulate or train it).
FOUR_ACTIVATIONS = {
    "name": "four-activations",
    "arch": {
        "vocab_size": 256,
        "seq_len": 32,
        "n_layers": 1,
        "n_heads": 2,
        "norm": "rmsnorm",
        "ffn_activation": {"choices": ["relu", "swiglu", "gelu", "geglu"]},
        "position": "rope",
    },
    "train": {"lr": 3.0e-3, "batch_size": 8},
    "budget": {"kind": "params", "value": 12000, "tolerance": 0.03},
}


# ---- results checks ----


def curves_of(out: Path) -> pl.DataFrame:
    """DIR/curves.parquet, or an empty frame while it is not written yet."""
    try:
        return pl.read_parquet(out / "curves.parquet")
    except Exception:  # not written yet
        return pl.DataFrame()


def study_of(out):
    """The Optuna study a results directory's run.json names."""
    from archscale.search.storage import open_storage

    run = json.loads((out / "run.json").read_text())
    return optuna.load_study(study_name=run["study_name"], storage=open_storage(run["storage"]))


STATE = {"completed": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}


def assert_results_agree_with_study(out, study=None, own_only=False):
    """trials.parquet and curves.parquet agree with the Optuna study, trial by trial. `own_only`: the
    study is shared by several drivers; compare only the trials this directory asked for (run_id)."""
    trials = pl.read_parquet(out / "trials.parquet")
    curves = pl.read_parquet(out / "curves.parquet")
    study = study or study_of(out)
    run_id = json.loads((out / "run.json").read_text())["run_id"] if own_only else None
    by_number = {t.number: t for t in study.trials if not own_only or t.user_attrs.get("run_id") == run_id}
    assert by_number  # a comparison that compares nothing proves nothing
    assert sorted(by_number) == sorted(trials["trial_id"].to_list())  # one row per Optuna trial, same ids
    for row in trials.iter_rows(named=True):
        t = by_number[row["trial_id"]]
        assert t.state.name == STATE[row["status"]], row
        if row["status"] == "completed":
            assert t.values[0] == pytest.approx(row["eval_loss"])
            assert row["tokens"] >= row["target_tokens"]
        if row["status"] == "pruned":
            assert t.user_attrs["tokens"] == row["tokens"] < row["target_tokens"]
    assert set(curves["trial_id"].unique()) <= set(trials["trial_id"])
    assert curves.group_by("trial_id", "tokens").len()["len"].max() == 1  # no duplicate evaluations
    return trials, curves, study


# ---- a real browser ----

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
    reason="chromium not installed (run scripts/install-chromium); required in CI",
)


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a throwaway profile, its log on stderr."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip


def console_errors(stderr: str) -> list[str]:
    """Page console messages and failed loads in Chromium's log (browser-internal noise such as
    D-Bus warnings is not the page's fault and is ignored)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "net::ERR" in line or "Uncaught" in line]
