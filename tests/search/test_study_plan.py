"""Scaling-study grids are planned (solved and counted) before anything runs; no Ray needed."""

import pytest
import yaml

from archscale.search.study import load_study_file, plan_grid
from archscale.spaces import SpaceError
from archscale.spaces.errors import UserError
from tests.helpers import FOUR_ACTIVATIONS

BASE = {"vocab_size": 256, "seq_len": 64, "n_layers": 2, "n_heads": 2}
ARCHS = {
    "a": {"ffn_activation": "relu", "position": "sinusoidal"},
    "b": {"ffn_activation": "swiglu", "position": "rope"},
}


def test_isoflop_grid_spends_the_same_compute_at_every_size():
    spec = load_study_file(
        {"base": BASE, "architectures": ARCHS, "sizes": {"values": [2e4, 4e4, 8e4]}, "isoflop": [1e11, 3e11]}
    )
    points = plan_grid(spec)
    assert len(points) == 2 * 3 * 2
    for p in points:
        compute = p["tokens"] * p["counts"]["flops_per_token"]
        assert compute == pytest.approx(1e11, rel=1e-3) or compute == pytest.approx(3e11, rel=1e-3)
        assert p["counts"]["params"] == pytest.approx(p["size"], rel=0.02)


def test_sizes_by_tokens_and_seeds():
    spec = load_study_file(
        {
            "base": BASE,
            "architectures": ARCHS,
            "sizes": {"values": [2e4, 4e4]},
            "tokens": [1000, 2000],
            "seeds": 2,
            "first_seed": 3,
        }
    )
    points = plan_grid(spec)
    assert len(points) == 2 * 2 * 2 * 2 and {p["seed"] for p in points} == {3, 4}
    spec = load_study_file({"base": BASE, "architectures": ARCHS, "sizes": {"values": [2e4]}, "tokens_per_param": 5})
    assert all(p["tokens"] == 5 * p["counts"]["params"] for p in plan_grid(spec))


@pytest.mark.parametrize(
    "data,key",
    [
        ({"architectures": ARCHS, "sizes": {"values": [2e4]}}, "exactly one of tokens"),
        ({"sizes": {"values": [2e4]}, "tokens": [1]}, "architectures"),
        ({"architectures": ARCHS, "sizes": {"values": []}, "tokens": [1]}, "sizes.values"),
        ({"architectures": ARCHS, "sizes": {"values": [1]}, "tokens": [1], "base": BASE}, "architectures.a"),
    ],
)
def test_bad_study_files(tmp_path, data, key):
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(SpaceError, match=key):
        plan_grid(load_study_file(p), p)


def _fake_search(tmp_path, rows):
    """A finished search's results: trials.parquet rows (arch fields, lr, loss) and run.json."""
    import json

    import polars as pl

    from archscale.spaces import ArchConfig, count
    from archscale.spaces.record import new_trial_row, trial_schema

    records = []
    for i, (fields, lr, loss, seed) in enumerate(rows):
        arch = ArchConfig(**fields)
        row = new_trial_row(trial_id=i, seed=seed, arch=arch, train={"lr": lr}, counts=count(arch), target_tokens=1)
        row.update(status="completed", eval_loss=loss, tokens=1)
        records.append(row)
    pl.DataFrame(records, schema=trial_schema()).write_parquet(tmp_path / "trials.parquet")
    (tmp_path / "run.json").write_text(json.dumps({"space": {"budget": {"free": ["d_model", "d_ff"]}}}))
    return tmp_path


def test_lr_from_search_transfers_the_best_seed_averaged_lr_with_the_base_shapes(tmp_path):
    mup = {**BASE, **ARCHS["b"], "parametrization": "mup", "d_model": 32, "d_ff": 96}
    other = {**mup, "ffn_activation": "gelu"}
    search = _fake_search(
        tmp_path,
        [
            (mup, 1e-2, 2.0, 0),  # best single draw, but its seed replica is bad: mean 2.6
            (mup, 1e-2, 3.2, 1),
            (mup, 4e-3, 2.4, 0),  # best mean
            (mup, 4e-3, 2.5, 1),
            (other, 2e-2, 1.0, 0),  # a different architecture: never used for "b"
            ({**mup, "parametrization": "standard"}, 3e-2, 1.5, 0),  # a different parametrisation
        ],
    )
    spec = load_study_file(
        {
            "base": {**BASE, "parametrization": "mup"},
            "architectures": {"b": ARCHS["b"]},
            "sizes": {"values": [2e4, 8e4]},
            "tokens": [1000],
            "train": {"lr": {"from_search": str(search)}, "batch_size": 8},
        }
    )
    points = plan_grid(spec)
    assert len(points) == 2 and len({p.arch["d_model"] for p in points}) == 2
    for p in points:
        assert p.train == {"lr": 4e-3, "batch_size": 8}
        assert p.arch["parametrization"] == "mup" and p.arch["base_d_model"] == 32  # the searched size
        assert p.transfer["lr_from_search"] == str(search) and p.transfer["lr_seeds"] == 2
    # standard: matched under its own parametrisation, used unchanged, no base shapes
    spec = load_study_file({**spec.model_dump(), "base": BASE})
    assert {(p.train["lr"], p.arch["base_d_model"]) for p in plan_grid(spec)} == {(3e-2, None)}


def test_lr_from_search_errors_name_the_problem(tmp_path):
    search = _fake_search(tmp_path, [({**BASE, **ARCHS["a"], "d_model": 32, "d_ff": 96}, 1e-2, 2.0, 0)])
    study = {"base": BASE, "architectures": {"b": ARCHS["b"]}, "sizes": {"values": [2e4]}, "tokens": [1000]}
    with pytest.raises(UserError, match="no completed trial of this architecture under parametrization=standard"):
        plan_grid(load_study_file({**study, "train": {"lr": {"from_search": str(search)}}}))
    with pytest.raises(SpaceError, match=r"train.lr: give a number or \{from_search: DIR\}"):
        plan_grid(load_study_file({**study, "train": {"lr": {"from": str(search)}}}))
    with pytest.raises(UserError, match="no trials.parquet"):
        plan_grid(load_study_file({**study, "train": {"lr": {"from_search": str(tmp_path / "nope")}}}))


def test_a_resumed_search_keeps_the_flop_convention_it_was_started_with():
    from archscale.search.resume import with_recorded_convention
    from archscale.spaces.space import space_from_dict

    space = space_from_dict({**FOUR_ACTIVATIONS, "budget": {"kind": "flops_per_token", "value": 2.0e5}})
    assert space.flops_convention == "causal"  # today's default
    old = with_recorded_convention(space, {"budget": {"kind": "flops_per_token", "value": 2.0e5}})
    assert old.flops_convention == "dense"  # run.json from before conventions were recorded
    assert with_recorded_convention(space, {"budget": {"flops_convention": "causal"}}) is space
    assert old.budget.value == space.budget.value and old.budget.kind == space.budget.kind  # nothing else changes
