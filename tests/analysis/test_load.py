"""Loading results directories lazily, including ones still being written."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from archscale.analysis import length_losses, load, load_curves, load_run, load_trials, open_study
from archscale.analysis.data.loaders import redact_url, study_storage


def test_load_trials_is_lazy_and_has_run_column(search_dir: Path) -> None:
    lf = load_trials(search_dir)
    assert isinstance(lf, pl.LazyFrame)
    df = lf.collect()
    assert df.height == 72 and set(df["run"]) == {"search"}
    assert set(df["status"]) <= {"completed", "pruned", "failed", "running"}
    assert load_trials(search_dir, status="completed").collect()["status"].unique().to_list() == ["completed"]
    with pytest.raises(ValueError, match="allowed"):
        load_trials(search_dir, status="done")


def test_load_joins_curves_with_final_prefix(search_dir: Path) -> None:
    df = load(search_dir).collect()
    curves = load_curves(search_dir).collect()
    trials = load_trials(search_dir).collect()
    with_curves = curves["trial_id"].n_unique()
    assert df.height == curves.height + (trials.height - with_curves)
    assert {"final_eval_loss", "eval_loss", "tokens", "final_tokens", "train_loss", "label"} <= set(df.columns)
    last = df.filter(pl.col("status") == "completed").sort("tokens").group_by("trial_id").last()
    assert (last["tokens"] == last["final_tokens"]).all()


def test_several_dirs_do_not_collide(search_dir: Path, study_dir: Path) -> None:
    df = load_trials([search_dir, study_dir]).collect()
    assert df.group_by("run", "trial_id").len()["len"].max() == 1
    assert set(df["run"]) == {"search", "study"}
    assert df.filter(pl.col("trial_id") == 0).height == 2


def test_same_named_dirs_use_full_paths(tmp_path: Path, running_dir: Path) -> None:
    other = tmp_path / "elsewhere" / "running"
    other.mkdir(parents=True)
    (other / "trials.parquet").write_bytes((running_dir / "trials.parquet").read_bytes())
    runs = load_trials([running_dir, other]).collect()["run"].unique().to_list()
    assert len(runs) == 2 and all(r.startswith("/") for r in runs)


def test_mid_write_directory(running_dir: Path) -> None:
    """Only trials.parquet, running rows with null loss, columns missing: everything still loads."""
    df = load(running_dir).collect()
    assert df.height == 4  # no curves yet: one row per trial
    assert df["step"].null_count() == 4 and df["final_eval_loss"].null_count() == 2
    assert {"flops_per_token", "group", "eval_loss_by_length", "compute"} <= set(df.columns)
    assert load_curves(running_dir).collect().height == 0
    assert load_run(running_dir) == {}
    done = load_trials(running_dir, status="completed").collect()
    assert done["trial_id"].to_list() == [0, 3]


def test_empty_and_missing_dirs(tmp_path: Path) -> None:
    assert load(tmp_path).collect().height == 0
    assert load_trials([]).collect().height == 0


def test_length_losses_long_form(search_dir: Path) -> None:
    lengths = length_losses(load_trials(search_dir, status="completed")).collect()
    assert set(lengths["context_length"]) == {128, 256, 512}
    assert lengths["eval_loss"].null_count() > 0  # learned positions cannot go past training length
    one = pl.LazyFrame(
        {
            "run": ["r"],
            "trial_id": [1],
            "label": ["x"],
            "arch_id": ["a"],
            "eval_loss_by_length": ['{"128": 2.1, "256": 2.3, "512": null}'],
        }
    )
    got = length_losses(one).collect()
    assert got["context_length"].to_list() == [128, 256, 512]
    assert got["eval_loss"].to_list() == [2.1, 2.3, None]


def test_open_study_from_journal(search_dir: Path) -> None:
    study = open_study(search_dir)
    assert study.study_name == "synthetic-search" and len(study.trials) > 10


def test_open_study_relocated_dir(search_dir: Path, tmp_path: Path) -> None:
    """A results dir copied elsewhere: the absolute journal path is gone, the file in DIR is used."""
    moved = tmp_path / "copy"
    moved.mkdir()
    run = load_run(search_dir)
    run["storage"] = "/nonexistent/place/study.journal"
    (moved / "run.json").write_text(json.dumps(run))
    (moved / "study.journal").write_bytes((search_dir / "study.journal").read_bytes())
    assert len(open_study(moved).trials) == len(open_study(search_dir).trials)


def test_storage_errors_never_show_passwords(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"storage": "postgresql+nosuchdriver://user:hunter2@db:5432/optuna"}))
    with pytest.raises(RuntimeError) as err:
        study_storage(tmp_path)
    assert "hunter2" not in str(err.value) and "user:***@" in str(err.value)
    assert redact_url("mysql://a:b@h/db") == "mysql://a:***@h/db"
    with pytest.raises(FileNotFoundError, match="storage"):
        study_storage(tmp_path / "nothing")
