import json
import subprocess
import sys

from typer.testing import CliRunner

from archscale.search.cli import app

runner = CliRunner()


def test_space_show_json():
    r = runner.invoke(
        app, ["space", "show", "tiny", "--budget-params", "200000", "--samples", "4", "--seed", "1", "--json"]
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == 4
    for row in rows:
        assert set(row) == {
            "arch",
            "params",
            "non_embedding_params",
            "flops_per_token",
            "kv_cache_bytes_per_token",
            "active_params",
        }
        assert abs(row["params"] / 200000 - 1) <= 0.01


def test_space_show_other_budgets_and_table():
    r = runner.invoke(app, ["space", "show", "tiny", "--budget-flops-per-token", "2e6", "--samples", "2", "--json"])
    assert r.exit_code == 0 and all(abs(x["flops_per_token"] / 2e6 - 1) <= 0.01 for x in json.loads(r.stdout))
    r = runner.invoke(
        app, ["space", "show", "tiny", "--budget-non-embedding-params", "1e5", "--samples", "2", "--json"]
    )
    assert r.exit_code == 0 and all(abs(x["non_embedding_params"] / 1e5 - 1) <= 0.01 for x in json.loads(r.stdout))
    r = runner.invoke(app, ["space", "show", "tiny", "--samples", "2"])
    assert r.exit_code == 0 and "params" in r.stdout


def test_arch_count_json(tmp_path):
    p = tmp_path / "arch.yaml"
    p.write_text("d_model: 64\nn_heads: 4\nd_ff: 256\nposition: rope\nffn_activation: swiglu\n")
    r = runner.invoke(app, ["arch", "count", str(p), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["arch"]["ffn_activation"] == "swiglu" and out["params"] > 0


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "archscale.search.cli", *args], capture_output=True, text=True)


def test_bad_input_is_one_clean_line(tmp_path):
    p = tmp_path / "arch.json"
    p.write_text('{"n_heads": 4, "n_kv_heads": 3}')
    r = run_cli("arch", "count", str(p), "--json")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "n_kv_heads" in r.stderr and "arch.json" in r.stderr
    r = run_cli("space", "show", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "file not found" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("space", "show", "tiny", "--budget-params", "10")
    assert r.returncode == 2 and "feasible range" in r.stderr


def test_help_imports_neither_torch_nor_ray():
    code = (
        "import sys; from archscale.search.cli import app; from typer.testing import CliRunner; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
        "bad = [m for m in ('torch', 'ray', 'triton', 'optuna', 'polars') if m in sys.modules]; assert not bad, bad"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_space_show_samples_sparse_attention_on_budget():
    r = runner.invoke(app, ["space", "show", "sparse", "--samples", "8", "--seed", "3", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert all(abs(row["flops_per_token"] / 4e6 - 1) <= 0.01 for row in rows)
    assert any(row["arch"]["attention_window"] is not None for row in rows)
