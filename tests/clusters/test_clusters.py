"""Cluster configs parse and say what they must; Jobs submission works against a real local head."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from archscale.clusters.jobs import job_spec

CLUSTERS = Path(__file__).resolve().parents[2] / "clusters"


def test_cluster_launcher_config():
    cfg = yaml.safe_load((CLUSTERS / "cluster-gpu.yaml").read_text())
    assert {"cluster_name", "provider", "available_node_types", "head_node_type"} <= set(cfg)
    assert cfg["head_node_type"] in cfg["available_node_types"]
    starts = " ".join(cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"])
    assert starts.count("RAY_AUTH_MODE=token") == 2  # token auth on every node


@pytest.mark.parametrize("name,kind", [("raycluster.yaml", "RayCluster"), ("rayjob.yaml", "RayJob")])
def test_kuberay_manifests(name, kind):
    doc = yaml.safe_load((CLUSTERS / "k8s" / name).read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == kind
    spec = doc["spec"] if kind == "RayCluster" else doc["spec"]["rayClusterSpec"]
    assert spec["authOptions"]["mode"] == "token"
    workers = spec["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" in workers["resources"]["limits"]
    if kind == "RayJob":
        argv = shlex.split(doc["spec"]["entrypoint"])
        assert argv[:5] == ["python", "-m", "archscale.search.cli", "search", "run"]
        import typer

        from archscale.search.commands import search_app

        run = typer.main.get_command(search_app).commands["run"]
        run.make_context("run", argv[5:])  # the entrypoint's flags are real flags


def test_job_spec_ships_the_space_and_a_wheel(tmp_path):
    space = tmp_path / "my-space.yaml"
    space.write_text("name: x\n")
    spec = job_spec(str(space), ["--out", "/r/x", "--trials", "4"], wheel=tmp_path / "a.whl", pip=["rich"])
    assert spec["runtime_env"] == {
        "working_dir": str(tmp_path),
        "py_modules": [str(tmp_path / "a.whl")],
        "pip": ["rich"],
    }
    assert shlex.split(spec["entrypoint"])[-5:] == ["my-space.yaml", "--out", "/r/x", "--trials", "4"]
    assert "working_dir" not in job_spec("tiny", [], wheel=None, pip=None)["runtime_env"]


@pytest.mark.parametrize("form", ["separate", "equals"])
def test_job_spec_never_carries_a_storage_password(form):
    url = "postgresql://alice:s3cret-pw@db.internal:5432/optuna"
    args = ["--storage", url] if form == "separate" else [f"--storage={url}"]
    spec = job_spec("tiny", ["--out", "/r/x", *args], wheel=None, pip=None)
    assert "s3cret-pw" not in spec["entrypoint"]
    assert "postgresql://alice@db.internal:5432/optuna" in spec["entrypoint"]
    assert spec["runtime_env"]["env_vars"] == {"PGPASSWORD": "s3cret-pw"}  # libpq reads it on the cluster
    plain = job_spec("tiny", ["--storage", "postgresql://alice@db/optuna"], wheel=None, pip=None)
    assert "env_vars" not in plain["runtime_env"]
    with pytest.raises(ValueError, match="non-PostgreSQL"):
        job_spec("tiny", ["--storage", "mysql://bob:pw@db/optuna"], wheel=None, pip=None)


def test_submit_validates_before_sending(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "archscale.search.cli",
            "search",
            "submit",
            "tiny",
            "--address",
            "http://127.0.0.1:1",
            "--out",
            str(tmp_path / "o"),
            "--trials",
            "2",
            "--sampler",
            "bogus",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "--sampler" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_submit_to_a_local_head(tmp_path):
    """A real `ray start --head` (token auth as Ray 2.60 sets it up locally), a real Ray Job."""
    import tempfile

    short = tempfile.mkdtemp(prefix="as-", dir="/tmp")  # Unix socket paths must stay under 107 bytes
    env = {**os.environ, "RAY_TMPDIR": short}
    ray_bin = str(Path(sys.executable).parent / "ray")
    port = "8299"
    start = subprocess.run(
        [
            ray_bin,
            "start",
            "--head",
            "--num-cpus=2",
            "--include-dashboard=true",
            f"--dashboard-port={port}",
            "--port=6399",
            "--disable-usage-stats",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        out = tmp_path / "job-out"
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "archscale.search.cli",
                "search",
                "submit",
                "tiny",
                "--address",
                f"http://127.0.0.1:{port}",
                "--wait",
                "--json",
                "--out",
                str(out),
                "--trials",
                "1",
                "--tokens",
                "8192",
                "--eval-every-tokens",
                "4096",
                "--scheduler",
                "none",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        info = json.loads(r.stdout)
        assert info["job_id"] and info["final_status"] == "SUCCEEDED", info.get("logs")
        assert (out / "trials.parquet").exists() and json.loads((out / "run.json").read_text())["kind"] == "search"
    finally:
        # the head and its workers name `short` (their temp and session dirs): end exactly those
        from tests.helpers import stop_processes_mentioning

        assert stop_processes_mentioning(short) > 0  # the head was found, so it is really stopped


@pytest.mark.slow
def test_two_node_cluster_survives_losing_a_node(tmp_path):
    """Two raylets on this machine (1 CPU each): trials run on both; removing one mid-search still completes it."""
    from ray.cluster_utils import Cluster

    from tests.helpers import assert_results_agree_with_study, curves_of, wait_for, write_space

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    out = tmp_path / "two-nodes"
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "archscale.search.cli",
                "search",
                "run",
                str(write_space(tmp_path)),
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
                "--address",
                cluster.address,
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # 1 CPU per node and 1 CPU per trial: two trials reporting at once means one on each node
        wait_for(lambda: (c := curves_of(out)).height and c["trial_id"].n_unique() >= 2, timeout=300)
        cluster.remove_node(worker)
        stdout, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, stderr[-3000:]
    finally:
        cluster.shutdown()
    trials, _, _ = assert_results_agree_with_study(out)
    assert trials.height == 4 and (trials["status"] == "completed").all(), trials.select("trial_id", "status", "error")
