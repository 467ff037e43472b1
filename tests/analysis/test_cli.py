"""The analysis commands through typer's CliRunner on a fresh app (as search/cli.py registers them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from archscale.analysis.commands import register


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
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'missing.csv'}: no such file or directory "
        "(give a results directory, a .parquet or a .csv file)"
    ]


def test_dashboard_without_storage_fails_cleanly(app: typer.Typer, study_dir: Path) -> None:
    code, _, err = run(app, "dashboard", study_dir)
    assert code == 2 and "storage" in err


@pytest.mark.parametrize("command", ["fit", "plot", "report", "dashboard"])
def test_help_at_80_columns_shows_every_option_in_full(command: str) -> None:
    """Through the root `archscale` app, as a user sees it in an 80-column terminal."""
    from archscale.search.cli import app as root

    result = CliRunner().invoke(root, [command, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "…" not in result.output
    params = typer.main.get_command(root).commands[command].params
    options = [name for p in params if p.param_type_name == "option" for name in p.opts]
    assert len(options) >= 2  # the test ran over real options
    for name in options:
        assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", result.output, re.M), name


def test_cli_choices_match_the_library() -> None:
    from archscale.analysis.commands import ChartKind, LawName
    from archscale.analysis.laws.registry import CONDITIONED_LAWS
    from archscale.analysis.laws.table import LAWS
    from archscale.analysis.present.charts import KINDS

    assert tuple(k.value for k in LawName) == (*LAWS, *CONDITIONED_LAWS)
    assert tuple(k.value for k in ChartKind) == KINDS


def test_fit_results_is_what_the_command_prints(app: typer.Typer, study_dir: Path) -> None:
    from archscale.analysis import fit_results

    doc = fit_results(study_dir, law="chinchilla", group="baseline", bootstrap=5, target=1e20)
    code, out, _ = run(
        app,
        "fit",
        study_dir,
        "--law",
        "chinchilla",
        "--group",
        "baseline",
        "--bootstrap",
        "5",
        "--target",
        "1e20",
        "--json",
    )
    assert code == 0 and json.loads(out) == doc
    assert doc["optimal"]["n_opt"] > 0 and "leave_largest_out" in doc and json.dumps(doc)


def test_fit_results_raises_user_errors_once_prefixed(law_csv: Path) -> None:
    from archscale.analysis import fit_results
    from archscale.spaces.errors import UserError

    with pytest.raises(UserError) as info:
        fit_results(law_csv, law="chinchilla", n_col="nope")
    assert str(info.value).startswith(f"{law_csv}: no column 'nope'") and str(info.value).count(str(law_csv)) == 1
    with pytest.raises(UserError, match="allowed: power, chinchilla, isoflop"):
        fit_results(law_csv, law="cubic")  # type: ignore[arg-type]
    two_runs = law_csv.with_name("two.csv")
    pl.read_csv(law_csv).head(2).write_csv(two_runs)
    with pytest.raises(UserError, match="at least 3 runs"):  # runs that cannot support the law: a user error too
        fit_results(two_runs, law="power")


def test_report_command_names_failed_sections(app: typer.Typer, study_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from archscale.analysis.present import report

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(report, "scaling_analysis", broken)
    out = tmp_path / "report.html"
    code, stdout, err = run(app, "report", study_dir, "--out", out, "--bootstrap", "0")
    assert code == 0 and str(out) in stdout
    assert "report section 'Scaling fits' failed: RuntimeError: boom" in err
