"""`archscale dashboard` really serves optuna-dashboard on the study; Ray is not touched without a cluster."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from archscale.analysis.present import dashboard
from tests.helpers import chromium, needs_chromium


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dashboard_server(results: Path, log: Path) -> Iterator[tuple[int, dict]]:
    """optuna-dashboard on `results` in a subprocess; yields its port and its /api/studies answer."""
    port = free_port()
    code = f"from archscale.analysis import serve_dashboard; serve_dashboard({str(results)!r}, port={port})"
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as resp:
                    studies = json.loads(resp.read())
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"dashboard did not start: {log.read_text()[-2000:]}")
                time.sleep(0.3)
        yield port, studies
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serves_optuna_dashboard(search_dir: Path, tmp_path: Path) -> None:
    with dashboard_server(search_dir, tmp_path / "dashboard.log") as (_, studies):
        names = [
            s["study_name"]
            for s in (studies["study_summaries"] if "study_summaries" in studies else studies["studies"])
        ]
        assert names == ["synthetic-search"], studies


def named_search(out: Path) -> Path:
    """A study as `archscale search` makes it (StudySpec: named objectives) with trials carrying
    the user attributes the searcher sets (label, status_reason)."""
    from archscale.search.storage import StudySpec

    out.mkdir()
    spec = StudySpec(str(out / "optuna.journal"), "named-search", ["eval_loss", "kv_cache_bytes_per_token"])
    study = spec.open()
    for i, act in enumerate(["relu", "swiglu", "geglu"]):
        trial = study.ask()
        trial.suggest_categorical("ffn_activation", ["relu", "swiglu", "geglu"])
        trial.set_user_attr("label", f"{act}·rope·rmsnorm-pre·h2")
        trial.set_user_attr("status_reason", f"completed: trained {1000 * (i + 1):,} tokens")
        study.tell(trial, [3.0 - 0.1 * i, 128.0 * (i + 1)])
    (out / "run.json").write_text(json.dumps({"storage": spec.storage, "study_name": spec.study_name}))
    return out


@needs_chromium
def test_dashboard_names_objectives_and_trials(tmp_path: Path) -> None:
    with dashboard_server(named_search(tmp_path / "named"), tmp_path / "dashboard.log") as (port, studies):
        (study,) = studies["study_summaries"]
        base = f"http://127.0.0.1:{port}/dashboard/studies/{study['study_id']}"
        page = chromium("--virtual-time-budget=20000", "--dump-dom", base)
        assert page.returncode == 0, page.stderr[-2000:]
        assert "eval_loss" in page.stdout and "kv_cache_bytes_per_token" in page.stdout  # not "0" and "1"
        trials = chromium("--virtual-time-budget=20000", "--dump-dom", f"{base}/trials")
        assert "·rope·rmsnorm-pre·h2" in trials.stdout and "completed: trained" in trials.stdout


def test_no_ray_cluster_means_no_address(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(dashboard, "RAY_CURRENT_CLUSTER", tmp_path / "absent")
    ray_loaded = "ray" in sys.modules
    assert dashboard.ray_dashboard_address() is None
    assert ("ray" in sys.modules) == ray_loaded  # ray is not imported when no cluster is up


def test_tensorboard_logdir(tmp_path: Path) -> None:
    assert dashboard.tensorboard_logdir(tmp_path) is None
    (tmp_path / "ray" / "exp").mkdir(parents=True)
    assert dashboard.tensorboard_logdir(tmp_path) == tmp_path / "ray"
