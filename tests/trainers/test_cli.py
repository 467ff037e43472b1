"""`archscale train`, through a fresh Typer app with only our command registered."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from archscale.trainers.commands import register

TINY = (
    "d_model: 32\nn_layers: 1\nn_heads: 2\nd_ff: 64\nseq_len: 32\n"
    "position: rope\nnorm: rmsnorm\nffn_activation: swiglu\n"
)


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:  # keeps `train` a subcommand, as under the real root app
        pass

    register(app)
    return app


@pytest.fixture
def arch_file(tmp_path):
    p = tmp_path / "arch.yaml"
    p.write_text(TINY)
    return p


def run(app, *args):
    return CliRunner().invoke(app, ["train", *map(str, args)])


def test_train_json(app, arch_file, tmp_path):
    out = tmp_path / "run"
    r = run(
        app,
        "--arch",
        arch_file,
        "--data",
        "pystdlib",
        "--tokens",
        2048,
        "--out",
        out,
        "--seed",
        1,
        "--batch-size",
        8,
        "--lr",
        0.002,
        "--json",
    )
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["tokens"] == 2048 and summary["seed"] == 1
    assert summary["train_config"]["batch_size"] == 8 and summary["train_config"]["lr"] == 0.002
    assert (out / "summary.json").exists() and (out / "curves.parquet").exists()


def test_train_human_output(app, arch_file, tmp_path):
    r = run(app, "--arch", arch_file, "--tokens", 2048, "--out", tmp_path / "run", "--batch-size", 8)
    assert r.exit_code == 0, r.output
    assert "eval" in r.stdout and "completed" in r.stdout and "bits/byte" in r.stdout
    assert "[checkpoint]" in r.stdout  # a progress line marks the evaluation that wrote a checkpoint


def test_refuses_to_overwrite_then_resumes(app, arch_file, tmp_path):
    out = tmp_path / "run"
    assert run(app, "--arch", arch_file, "--tokens", 2048, "--out", out, "--batch-size", 8, "--json").exit_code == 0
    r = run(app, "--arch", arch_file, "--tokens", 2048, "--out", out, "--batch-size", 8)
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "--resume" in r.stderr
    assert "Traceback" not in r.output
    r = run(app, "--arch", arch_file, "--tokens", 4096, "--out", out, "--batch-size", 8, "--resume")
    assert r.exit_code == 2 and "already completed" in r.stderr


def test_resume_a_stopped_run(app, arch_file, tmp_path):
    from archscale.spaces import ArchConfig
    from archscale.trainers import TrainConfig, train

    out = tmp_path / "run"
    cfg = TrainConfig(tokens=4096, batch_size=8, eval_every_tokens=1024, eval_tokens=512)
    s = train(ArchConfig.from_file(str(arch_file)), cfg, report=lambda m: m["tokens"] >= 2048, out=out)
    assert s["status"] == "stopped"
    r = run(app, "--arch", arch_file, "--tokens", 4096, "--out", out, "--batch-size", 8, "--resume", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["tokens"] == 4096 and summary["resumed_from"]
    assert (out / "summary.previous.json").exists()


@pytest.mark.parametrize("case", ["missing", "invalid", "data", "vocab"])
def test_bad_input_is_one_line_exit_2(app, arch_file, tmp_path, case):
    arch, data = arch_file, "pystdlib"
    if case == "missing":
        arch = tmp_path / "nope.yaml"
    elif case == "invalid":
        arch.write_text(TINY.replace("n_heads: 2", "n_heads: 3"))
    elif case == "data":
        data = "wikitext"
    else:
        arch.write_text(TINY + "vocab_size: 100\n")
    r = run(app, "--arch", arch, "--data", data, "--tokens", 1024, "--out", tmp_path / "run")
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output
    assert not (tmp_path / "run").exists()


def test_cli_module_imports_no_torch():
    code = "import sys, archscale.trainers.commands; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
