"""The trial record is defined once and nothing a space can set is lost on the way to analysis.

Every ArchConfig field and every searchable training field reaches trials.parquet, and survives a
scaling study built from the search's top architectures (real Ray, real training, tiny sizes).
"""

from __future__ import annotations

import dataclasses
import math

import polars as pl
import pytest
import yaml

from archscale.analysis.data.loaders import TRIAL_SCHEMA, load_trials
from archscale.search.options import BudgetOptions, ExecutionOptions, SearchOptions, StrategyOptions
from archscale.search.run import run_search
from archscale.search.study import load_study_file, plan_grid, run_study
from archscale.spaces import ArchConfig
from archscale.spaces.counting import Counts
from archscale.spaces.record import (
    ARCH_COLUMNS,
    STATUSES,
    TRIAL_COLUMNS,
    TrialStatus,
    new_trial_row,
    trial_schema,
)
from archscale.spaces.training import SEARCHABLE_TRAIN_FIELDS, TrainConfig

# Every ArchConfig field set to a value other than its default (where the combination allows),
# and every searchable training field, one of them sampled from a range.
ARCH = {
    "vocab_size": 264,
    "seq_len": 32,
    "n_layers": 3,
    "n_heads": {"choices": [2]},
    "n_kv_heads": 1,
    "head_dim": 16,
    "ffn_activation": "swiglu",
    "norm": "rmsnorm",
    "norm_position": "sandwich",
    "qk_norm": True,
    "position": "rope",
    "rope_theta": 50000.0,
    "attention_window": 8,
    "global_every": 2,
    "qkv_conv": 2,
    "block": "sequential",
    "ffn_per_block": 2,
    "tie_embeddings": False,
    "bias": True,
    "init": "normal",
    "embedding_scale": "sqrt_d_model",
    "parametrization": "completep",
    "base_d_model": 32,
    "base_n_layers": 2,
    "base_head_dim": 16,
    "base_d_ff": 48,
    "output_mult": 2.0,
    "input_mult": 0.5,
    "attn_mult": 1.5,
    "zero_init": True,
    "ffn_type": "moe",
    "n_experts": 3,
    "experts_top_k": 2,
    "n_shared_experts": 1,
    "expert_capacity_factor": 1.5,
}
TRAIN = {
    "lr": {"low": 1.0e-3, "high": 2.0e-3, "log": True},
    "warmup_tokens": 512,
    "weight_decay": 0.05,
    "batch_size": 4,
    "tokens": 4096,
    "schedule": "wsd",
    "tokens_per_step": 256,
    "grad_clip": 0.5,
    "min_lr_ratio": 0.2,
    "router_aux_loss_coef": 0.02,
    "embedding_lr_mult": 2.0,
}
SOLVED = {"d_model", "d_ff"}  # the budget's free dimensions: solved again at every study size
FOLLOWS_SOLVED = {"expert_d_ff"}  # omitted, so it is d_ff: solved too
# read only under position: t5_bias, so refused off their defaults under rope (tests/spaces checks every owned field)
OWNED_BY_ANOTHER_CODING = {"t5_num_buckets", "t5_max_distance"}


def test_the_space_above_names_every_field():
    assert set(ARCH) | SOLVED | FOLLOWS_SOLVED | OWNED_BY_ANOTHER_CODING == set(ArchConfig.model_fields)
    assert set(TRAIN) == set(SEARCHABLE_TRAIN_FIELDS)


def test_trial_columns_are_derived_from_the_configs():
    assert set(ArchConfig.model_fields) <= set(TRIAL_COLUMNS)
    assert set(SEARCHABLE_TRAIN_FIELDS) - {"tokens"} <= set(TRIAL_COLUMNS)  # tokens is recorded as target_tokens
    assert {f.name for f in dataclasses.fields(Counts)} <= set(TRIAL_COLUMNS)
    assert set(trial_schema()) == set(TRIAL_COLUMNS) == set(TRIAL_SCHEMA)  # writer and reader: one definition
    assert STATUSES == tuple(s.value for s in TrialStatus)
    assert trial_schema()["eval_loss_by_length"] == pl.List(
        pl.Struct({"context_length": pl.Int64, "eval_loss": pl.Float64})
    )


def test_a_new_row_has_every_column_and_records_training_defaults():
    arch = ArchConfig(d_model=32, n_heads=2, d_ff=64)
    row = new_trial_row(trial_id=3, seed=1, arch=arch, train={"lr": 1e-3}, counts=None, target_tokens=100)
    assert set(row) == set(TRIAL_COLUMNS)
    assert row["lr"] == 1e-3 and row["beta2"] == TrainConfig().beta2 and row["status"] == "running"
    assert all(row[f] == getattr(arch, f) for f in ARCH_COLUMNS)
    frame = pl.DataFrame([row], schema=trial_schema(), strict=False)  # the writer's own conversion
    assert frame.height == 1 and frame["d_model"][0] == 32


@pytest.mark.slow
def test_every_field_reaches_trials_parquet_and_survives_a_study(tmp_path, ray_cluster):
    space = tmp_path / "every.yaml"
    space.write_text(
        yaml.safe_dump(
            {
                "name": "every-field",
                "arch": ARCH,
                "train": TRAIN,
                "budget": {"kind": "params", "value": 45000, "tolerance": 0.05},
            }
        )
    )
    search = tmp_path / "search"
    run_search(
        SearchOptions(
            space=str(space),
            out=str(search),
            trials=1,
            budget=BudgetOptions(train={"eval_every_tokens": 2048, "eval_tokens": 1024}),
            strategy=StrategyOptions(scheduler="none"),
            execution=ExecutionOptions(progress=False),
        )
    )
    row = load_trials(search).collect().row(0, named=True)
    assert row["status"] == "completed", row["error"]
    for name, value in ARCH.items():
        assert row[name] is not None
        if not isinstance(value, dict):
            assert row[name] == value, name
    assert row["n_heads"] == 2 and row["d_model"] and row["d_ff"]
    assert row["attention_backend"] == "materialised"  # a windowed model on CPU: the trainer's choice, recorded
    for name, value in TRAIN.items():
        recorded = row["target_tokens"] if name == "tokens" else row[name]
        if isinstance(value, dict):
            assert value["low"] <= recorded <= value["high"], name
        else:
            assert recorded == value, name
    lengths = row["eval_loss_by_length"]
    assert [r["context_length"] for r in lengths] == [32, 64, 128]
    assert lengths[0]["eval_loss"] == pytest.approx(row["eval_loss"]) and math.isfinite(lengths[1]["eval_loss"])

    study = {
        "name": "from-search",
        "from_search": {"dir": str(search), "top_k": 1},
        "sizes": {"kind": "params", "values": [45000], "tolerance": 0.05},
        "tokens": [2048],
        "train": {"eval_every_tokens": 2048, "eval_tokens": 1024},
    }
    (point,) = plan_grid(load_study_file(study))
    for name in set(ARCH) | {"n_heads"}:
        assert point.arch[name] == row[name], name
    for name in set(TRAIN) - {"tokens"}:
        assert point.train[name] == row[name], name
    studied = tmp_path / "study"
    none, quiet = StrategyOptions(scheduler="none"), ExecutionOptions(progress=False)
    quiet = SearchOptions(space="", out=str(studied), strategy=none, execution=quiet)
    run_study(study, studied, quiet)
    srow = load_trials(studied).collect().row(0, named=True)
    assert srow["status"] == "completed", srow["error"]
    for name in set(ARCH) | {"n_heads"}:
        assert srow[name] == row[name], name
    for name in set(TRAIN) - {"tokens"}:
        assert srow[name] == row[name], name
    assert (srow["planned_kind"], srow["planned_size"], srow["target_tokens"]) == ("params", 45000.0, 2048)
