"""`--start-with DIR`: a ladder search whose first ladders are a finished search's best architectures.

The finished search is built the way `search run` leaves one (its Optuna study in a journal, its
trials.parquet with one row per trained model, run.json naming both), with losses chosen so the
ranking is known; the ladder search is then driven as in test_ladder.py (no Ray: what is tested is
which architectures the ladders start with, not training)."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml

from archscale.search.options import prepare
from archscale.search.run import start_search
from archscale.search.strategies.ladder_start import start_params
from archscale.spaces.errors import UserError
from tests.search.test_ladder import SPACE, _options

# the small search's loss for each activation: swiglu best, then geglu, gelu, relu
SMALL = {"swiglu": 3.0, "geglu": 3.1, "gelu": 3.2, "relu": 3.3}


def _small_search(tmp_path, trials: int = 8):
    """A finished plain search in tmp_path/small: `trials` trials, each trained on two seeds."""
    opts = _options(tmp_path, out=str(tmp_path / "small"), target_compute=None)
    space, spec, _ = prepare(opts)
    (tmp_path / "small").mkdir()
    study, rows = spec.open(), []
    for _ in range(trials):
        trial = study.ask()
        arch = space.sample(trial).arch
        loss = SMALL[arch.ffn_activation] + 0.01 * trial.params.get("n_heads", 0) / 100
        study.tell(trial, loss)
        stopped = arch.ffn_activation == "relu"  # early stopping ended relu's trials, at a lower loss
        for seed, noise in ((0, -0.002), (1, 0.002)):
            rows.append(
                {"trial_id": str(trial.number), "arch_id": arch.arch_id, "label": arch.label, "seed": seed}
                | {"status": "pruned" if stopped else "completed", "tokens": 300 if stopped else 1000}
                | {"eval_loss": (2.0 if stopped else loss) + noise, "run_id": "r1"}
            )
    pl.DataFrame(rows).write_parquet(tmp_path / "small" / "trials.parquet")
    run = {"kind": "search", "storage": spec.storage, "study_name": spec.study_name, "run_id": "r1"}
    (tmp_path / "small" / "run.json").write_text(json.dumps(run))
    return space, pl.DataFrame(rows)


def test_start_params_are_the_best_architectures_by_mean_loss_with_their_sampled_values(tmp_path):
    space, rows = _small_search(tmp_path)
    n_archs = rows["arch_id"].n_unique()
    chosen = start_params(tmp_path / "small", space, n_archs)
    means = rows.group_by("arch_id").agg(pl.col("eval_loss").mean(), pl.col("tokens").max()).sort("eval_loss")
    finished = means.filter(pl.col("tokens") == 1000)
    assert [c["arch_id"] for c in chosen[: finished.height]] == finished["arch_id"].to_list()
    assert [c["eval_loss"] for c in chosen[:2]] == pytest.approx(finished["eval_loss"].head(2).to_list())
    # early-stopped architectures (lower losses, but at fewer tokens) only fill the places after them
    assert all(c["label"].startswith("relu") and not c["completed"] for c in chosen[finished.height :])
    assert len(chosen) == n_archs > finished.height
    for c in chosen:  # the parameters are the source trial's, exactly
        assert "ffn_activation" in c["params"] and c["label"].startswith(c["params"]["ffn_activation"])


def test_a_ladder_search_started_with_a_search_runs_its_best_first_and_records_them(tmp_path):
    _small_search(tmp_path)
    opts = _options(tmp_path, start_with=str(tmp_path / "small"), start_top=2)
    searcher, _ = start_search(opts)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    started = run["started_with"]["architectures"]
    assert len(started) == 2 and run["started_with"]["dir"] == str((tmp_path / "small").resolve())
    strategy = searcher.proposals
    firsts = []
    while len(strategy.ladders) < 2:
        strategy._start_ladder()
    for i in sorted(strategy.ladders)[:2]:
        firsts.append(strategy.ladders[i]["arch"])
    attrs = [t.user_attrs for t in strategy.study.get_trials(deepcopy=False)][:2]
    assert [a["start_rank"] for a in attrs] == [0, 1]
    assert [a["source_trial"] for a in attrs] == [s["trial"] for s in started]
    labels = [s["label"] for s in started]
    assert [strategy.ladders[i]["label"] for i in sorted(strategy.ladders)[:2]] == labels


def test_start_with_refuses_what_it_cannot_use(tmp_path):
    space, _ = _small_search(tmp_path)
    with pytest.raises(UserError, match="no run.json and trials.parquet"):
        start_params(tmp_path / "nothing", space, 2)
    with pytest.raises(UserError, match="give --target-compute"):
        _options(tmp_path, start_with=str(tmp_path / "small"), target_compute=None)
    other = {**SPACE, "arch": {**SPACE["arch"], "ffn_activation": {"choices": ["relu", "gelu"]}}}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    narrower = prepare(_options(tmp_path, space=str(tmp_path / "other.yaml")))[0]
    with pytest.raises(UserError, match="cannot take its parameters.*swiglu"):
        start_params(tmp_path / "small", narrower, 4)  # swiglu: a value the narrower space cannot take
