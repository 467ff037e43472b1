"""Searches and studies on a real local Ray, with real training, a real on-disk Optuna study."""

import dataclasses
import json

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from archscale.search.cli import app
from archscale.search.options import BudgetOptions, ExecutionOptions, SearchOptions, StrategyOptions
from archscale.search.run import run_search
from archscale.search.study import run_study
from tests.helpers import assert_results_agree_with_study

TRAIN = {"eval_every_tokens": 8192, "batch_size": 8}
QUIET = ExecutionOptions(progress=False)


def small_space(tmp_path, **budget):
    space = {
        "name": "t",
        "arch": {
            "vocab_size": 256,
            "seq_len": 32,
            "n_layers": {"choices": [1, 6]},
            "n_heads": 2,
            "ffn_activation": {"choices": ["relu", "swiglu"]},
            "position": {"choices": ["rope", "alibi"]},
            "norm": "rmsnorm",
        },
        "budget": {"kind": "params", "value": 30000, "tolerance": 0.02, **budget},
    }
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(space))
    return p


@pytest.mark.slow
def test_search_runs_and_results_agree_with_optuna(tmp_path, ray_cluster):
    out = tmp_path / "out"
    run_search(
        SearchOptions(
            space=str(small_space(tmp_path)),
            out=str(out),
            trials=6,
            budget=BudgetOptions(tokens=32768, train=TRAIN, seeds=1),
            strategy=StrategyOptions(scheduler="asha"),
            execution=QUIET,
        )
    )
    trials, curves, study = assert_results_agree_with_study(out)
    assert trials.height == 6
    assert set(trials["status"]) <= {"completed", "pruned", "failed"}
    assert (trials["status"] == "completed").sum() >= 1
    # n_layers=6 cannot fit 30K parameters: recorded as failed with the reason, never trained
    infeasible = trials.filter(pl.col("n_layers").is_null() | (pl.col("error").str.contains("infeasible")))
    for row in infeasible.iter_rows(named=True):
        assert row["status"] == "failed" and ("feasible range" in row["error"] or "nearest achievable" in row["error"])
        assert curves.filter(pl.col("trial_id") == row["trial_id"]).is_empty()
        assert study.trials[row["trial_id"]].constraints == {"budget": 1.0}  # Optuna's infeasibility record
    assert all(not t.constraints for t in study.trials if t.state.name == "COMPLETE")
    run = json.loads((out / "run.json").read_text())
    assert {"space", "budget", "args", "versions", "git_revision", "hardware", "storage", "study_name"} <= set(run)
    # intermediate values reach Optuna at every evaluation
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert complete and all(len(t.intermediate_values) >= 3 for t in complete)

    # the same directory is never silently overwritten
    with pytest.raises(FileExistsError, match="resume"):
        again = SearchOptions(space=str(small_space(tmp_path)), out=str(out), budget=BudgetOptions(tokens=1000))
        run_search(dataclasses.replace(again, trials=1, execution=QUIET))

    r = CliRunner().invoke(app, ["search", "status", str(out), "--json"])
    assert r.exit_code == 0, r.output
    status = json.loads(r.stdout)
    assert status["trials"] == 6 and status["study_name"] == run["study_name"]


@pytest.mark.slow
def test_seeds_and_multi_objective_pareto(tmp_path, ray_cluster):
    out = tmp_path / "mo"
    space = small_space(tmp_path)
    run_search(
        SearchOptions(
            space=str(space),
            out=str(out),
            trials=2,
            budget=BudgetOptions(tokens=16384, train=TRAIN, seeds=2),
            strategy=StrategyOptions(
                scheduler="none", sampler="nsga2", objectives=["eval_loss", "kv_cache_bytes_per_token"]
            ),
            execution=QUIET,
        )
    )
    trials, _, study = assert_results_agree_with_study(out)
    assert trials.height == 4
    feasible = trials.filter(pl.col("status") == "completed")
    # each architecture is trained with both seeds (a replica that did not complete is shown with its error)
    shown = trials.select("trial_id", "arch_id", "seed", "status", "error").to_dicts()
    for _, group in trials.group_by("arch_id"):
        assert sorted(group["seed"].to_list()) == [0, 1], shown
    for _, group in feasible.group_by("arch_id"):
        assert sorted(group["seed"].to_list()) == [0, 1], shown
    assert len(study.directions) == 2
    r = CliRunner().invoke(app, ["search", "status", str(out), "--json"])
    assert r.exit_code == 0
    assert feasible.height >= 1  # so the Pareto front below has points to hold
    assert json.loads(r.stdout)["pareto"]


@pytest.mark.slow
def test_study_grid(tmp_path, ray_cluster):
    out = tmp_path / "study"
    spec = {
        "name": "g",
        "base": {"vocab_size": 256, "seq_len": 32, "n_layers": 1, "n_heads": 2},
        "architectures": {
            "baseline": {
                "ffn_activation": "relu",
                "position": "sinusoidal",
                "norm": "layernorm",
                "norm_position": "post",
            },
            "modern": {"ffn_activation": "swiglu", "position": "rope", "norm": "rmsnorm"},
        },
        "sizes": {"kind": "params", "values": [20000, 40000]},
        "tokens": [8192],
        "train": TRAIN,
    }
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(spec))
    opts = SearchOptions(space="", out=str(out), strategy=StrategyOptions(scheduler="none"), execution=QUIET)
    run_study(p, out, opts)
    trials, _, _ = assert_results_agree_with_study(out)
    assert trials.height == 4 and set(trials["group"]) == {"baseline", "modern"}
    assert (trials["status"] == "completed").all()
    for row in trials.iter_rows(named=True):
        assert row["params"] == pytest.approx(20000 if row["params"] < 30000 else 40000, rel=0.02)


def test_bad_input_fails_before_ray(tmp_path):
    """The installed entry point in a fresh process: each bad flag is one `error:` line naming it,
    exit 2, and no results directory (tests/test_bad_input.py covers every class in-process)."""
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "archscale.search.cli", *args], capture_output=True, text=True, timeout=60
        )

    from archscale.search.options import check_storage

    for url in (None, "results/x/optuna.journal", "sqlite:///x.db", "postgresql://u@h/db", "postgres://u@h/db"):
        check_storage(url)  # the --storage check never refuses a storage that opens
    space = small_space(tmp_path)
    cases = [
        (["--sampler", "bayes", "--tokens", "100"], "--sampler"),
        (["--objectives", "params", "--tokens", "100"], "--objectives"),
        ([], "--tokens"),
        (["--tokens", "100", "--data", "nope"], "nope"),
        (["--tokens", "100", "--scheduler", "hyperband"], "--scheduler"),
        (["--tokens", "100", "--budget-params", "10"], "--budget-params"),
        (["--tokens", "-5"], "--tokens"),
        (["--tokens", "100", "--storage", "nonsense://x"], "--storage"),
    ]
    for extra, needle in cases:
        r = cli("search", "run", str(space), "--out", str(tmp_path / "x"), "--trials", "1", *extra)
        lines = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
        assert r.returncode == 2, (extra, r.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), (extra, lines)
        assert needle in lines[0], (extra, lines)
        assert not (tmp_path / "x").exists(), extra  # nothing started, nothing written


@pytest.mark.slow
def test_diverging_trials_are_failed_and_the_search_goes_on(tmp_path, ray_cluster):
    p = small_space(tmp_path)
    space = yaml.safe_load(p.read_text())
    space["arch"]["n_layers"] = 1
    space["train"] = {"lr": {"choices": [1.0e3, 3.0e-3]}}  # 1e3 diverges, 3e-3 trains
    p.write_text(yaml.safe_dump(space))
    out = tmp_path / "div"
    run_search(
        SearchOptions(
            space=str(p),
            out=str(out),
            trials=4,
            budget=BudgetOptions(tokens=16384, train=TRAIN),
            strategy=StrategyOptions(scheduler="none", sampler="random", seed=3),
            execution=QUIET,
        )
    )
    trials, _, _ = assert_results_agree_with_study(out)
    assert trials.height == 4 and trials["lr"].n_unique() == 2  # both kinds of trial happened
    for row in trials.iter_rows(named=True):
        if row["lr"] > 1:
            assert row["status"] == "failed" and row["run_status"] == "diverged" and "diverged" in row["error"], row
        else:
            assert row["status"] == "completed", row


def test_storage_passwords_are_redacted():
    from archscale.clusters.connect import redact

    assert redact("postgresql://alice:s3cret@db:5432/optuna") == "postgresql://alice:***@db:5432/optuna"
    assert redact("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert redact(None) is None


@pytest.mark.parametrize("target", [None, 1e12])
def test_options_round_trip_through_run_json_args(target):
    """run.json keeps the grouped options as flat args (the names of the flags); resume rebuilds them."""
    from archscale.search.strategies.ladder_plan import LadderPlan

    ladder = LadderPlan(rungs=4, ratio=3.0, target_compute=target, validate_top=2) if target else None
    opts = SearchOptions(
        space="tiny",
        out="x",
        trials=5,
        budget=BudgetOptions(tokens_per_param=8, seeds=1, train={"eval_every_tokens": 100}),
        strategy=StrategyOptions(
            objectives=["eval_loss", "params"] if not target else ["predicted_loss"], ladder=ladder
        ),
        execution=ExecutionOptions(concurrency=2, storage="s.journal"),
    )
    args = json.loads(json.dumps(opts.to_args()))
    assert args["ladder"] == (4 if target else 3) and args["seeds"] == 1 and args["concurrency"] == 2
    assert SearchOptions.from_args(args) == opts
