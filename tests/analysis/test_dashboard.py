"""`archscale dashboard` really serves optuna-dashboard on the study; Ray is not touched without a cluster."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from archscale.analysis import dashboard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serves_optuna_dashboard(search_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    code = (
        f"from archscale.analysis.dashboard import serve_dashboard; serve_dashboard({str(search_dir)!r}, port={port})"
    )
    log = tmp_path / "dashboard.log"
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
        names = [
            s["study_name"]
            for s in (studies["study_summaries"] if "study_summaries" in studies else studies["studies"])
        ]
        assert names == ["synthetic-search"], studies
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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
