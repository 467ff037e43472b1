"""The analysis commands through typer's CliRunner on a fresh app (as search/cli.py registers them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from archscale.analysis.cli import register


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture(scope="module")
def law_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs drawn from Hoffmann et al.'s law, columns params, tokens, loss (file defaults)."""
    rng = np.random.default_rng(0)
    n = np.exp(rng.uniform(np.log(7e7), np.log(1.6e10), 120))
    d = np.exp(rng.uniform(np.log(1e9), np.log(5e11), 120))
    loss = (1.69 + 406.4 * n**-0.34 + 410.7 * d**-0.28) * np.exp(rng.normal(0, 0.003, n.size))
    path = tmp_path_factory.mktemp("csv") / "runs.csv"
    pl.DataFrame({"params": n, "tokens": d, "loss": loss, "size": n}).write_csv(path)
    return path


def run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    """Exit code, stdout, and stderr with typer's error box removed and whitespace collapsed."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    err = " ".join(result.stderr.translate(str.maketrans("", "", "│╭╮╰╯─")).split())
    return result.exit_code, result.stdout, err


def test_commands_registered(app: typer.Typer) -> None:
    code, out, _ = run(app, "--help")
    assert code == 0
    for name in ("fit", "plot", "report", "dashboard"):
        assert name in out


def test_fit_chinchilla_json(app: typer.Typer, law_csv: Path) -> None:
    code, out, _ = run(app, "fit", law_csv, "--law", "chinchilla", "--bootstrap", "20", "--target", "1e21", "--json")
    assert code == 0, out
    doc = json.loads(out)  # exactly one JSON document
    assert doc["law"] == "chinchilla"
    assert set(doc["params"]) == {"E", "A", "B", "alpha", "beta"}
    assert doc["params"]["alpha"] == pytest.approx(0.34, abs=0.03)
    assert set(doc["ci"]) == {"E", "A", "B", "alpha", "beta"} and doc["n_bootstrap"] == 20
    assert doc["optimal"]["n_opt"] > 0 and "leave_largest_out" in doc


def test_fit_power_json_with_column_flags(app: typer.Typer, law_csv: Path) -> None:
    code, out, _ = run(app, "fit", law_csv, "--law", "power", "--x", "size", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["law"] == "power" and set(doc["params"]) == {"E", "A", "alpha"} and doc["inputs"] == ["size"]
    assert doc["ci"] == {}


def test_fit_results_dir_defaults(app: typer.Typer, study_dir: Path) -> None:
    code, out, _ = run(app, "fit", study_dir, "--law", "isoflop", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["law"] == "isoflop" and 0.3 < doc["params"]["a"] < 0.7 and len(doc["budgets"]) == 5
    code, out, _ = run(app, "fit", study_dir, "--law", "chinchilla")
    assert code == 0 and "alpha" in out


def test_fit_one_group_of_a_study(app: typer.Typer, study_dir: Path) -> None:
    code, out, _ = run(app, "fit", study_dir, "--law", "chinchilla", "--json")
    assert code == 0 and any("--group" in w for w in json.loads(out)["warnings"])
    code, out, _ = run(app, "fit", study_dir, "--law", "chinchilla", "--group", "baseline", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["n_runs"] == 35 and doc["params"]["alpha"] == pytest.approx(0.34, abs=0.05)
    code, _, err = run(app, "fit", study_dir, "--group", "nope")
    assert code == 2 and "baseline" in err


def test_fit_parquet_input(app: typer.Typer, law_csv: Path, tmp_path: Path) -> None:
    path = tmp_path / "runs.parquet"
    pl.read_csv(law_csv).rename({"loss": "final"}).write_parquet(path)
    code, out, _ = run(app, "fit", path, "--law", "power", "--loss-col", "final", "--json")
    assert code == 0 and json.loads(out)["n_runs"] == 120


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--x", "nope"], "no column 'nope'"),
        (["--loss-col", "nope"], "no column 'nope'"),
        (["--law", "cubic"], "cubic"),
    ],
)
def test_fit_bad_input_exits_2(app: typer.Typer, law_csv: Path, args: list[str], message: str) -> None:
    code, out, err = run(app, "fit", law_csv, *args)
    assert code == 2 and message in err and "Traceback" not in out + err


def test_fit_missing_and_wrong_files(app: typer.Typer, tmp_path: Path) -> None:
    code, _, err = run(app, "fit", tmp_path / "missing.csv")
    assert code == 2 and "missing.csv" in err and "Traceback" not in err
    (tmp_path / "runs.txt").write_text("x")
    code, _, err = run(app, "fit", tmp_path / "runs.txt")
    assert code == 2 and "allowed" in err
    code, _, err = run(app, "fit", tmp_path)
    assert code == 2 and "trials.parquet" in err


def test_plot_writes_each_format(app: typer.Typer, search_dir: Path, tmp_path: Path) -> None:
    for kind, suffix in (("pareto", ".svg"), ("effects", ".png"), ("curves", ".json"), ("importance", ".html")):
        out = tmp_path / f"{kind}{suffix}"
        code, stdout, err = run(app, "plot", search_dir, "--kind", kind, "--out", out)
        assert code == 0, err
        assert out.stat().st_size > 500 and str(out) in stdout


def test_plot_errors(app: typer.Typer, study_dir: Path, tmp_path: Path) -> None:
    code, _, err = run(app, "plot", study_dir, "--kind", "length", "--out", tmp_path / "x.svg")
    assert code == 2 and "nothing to plot" in err
    code, _, err = run(app, "plot", study_dir, "--kind", "scaling", "--out", tmp_path / "x.gif")
    assert code == 2 and ".png" in err
    code, _, err = run(app, "plot", study_dir, "--kind", "pareto", "--x", "nope", "--out", tmp_path / "x.svg")
    assert code == 2 and "'nope' is not a column" in err and "params" in err
    code, _, err = run(app, "plot", study_dir, "--kind", "curves", "--y", "nope", "--out", tmp_path / "x.svg")
    assert code == 2 and "no column 'nope'" in err
    code, _, err = run(app, "plot", tmp_path / "nope", "--kind", "scaling", "--out", tmp_path / "x.svg")
    assert code == 2 and "not a directory" in err


def test_report_command(app: typer.Typer, study_dir: Path, running_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    code, stdout, err = run(app, "report", study_dir, running_dir, "--out", out, "--bootstrap", "10")
    assert code == 0, err
    text = out.read_text()
    assert "Scaling fits" in text and "<svg" in text and "No data" in text


def test_root_entry_point_prints_one_error_line(tmp_path: Path) -> None:
    """Through the installed `archscale` script: one `error: ...` line and status 2."""
    import shutil
    import subprocess
    import sys

    exe = shutil.which("archscale") or str(Path(sys.executable).with_name("archscale"))
    if not Path(exe).exists():
        pytest.skip("the archscale console script is not installed in this environment")
    proc = subprocess.run([exe, "fit", str(tmp_path / "missing.csv")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing.csv'}: no such file or directory (give a results directory, a .parquet or a .csv file)"]


def test_dashboard_without_storage_fails_cleanly(app: typer.Typer, study_dir: Path) -> None:
    code, _, err = run(app, "dashboard", study_dir)
    assert code == 2 and "storage" in err
