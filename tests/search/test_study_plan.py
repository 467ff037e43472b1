"""Scaling-study grids are planned (solved and counted) before anything runs; no Ray needed."""

import numpy as np
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


def _u_runs(fields, optimum=4e-3, curvature=0.08, lrs=(1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2), seeds=(0, 1), noise=0.0):
    """Runs of one architecture on a U in log lr with its minimum at `optimum` (seeded noise)."""
    rng = np.random.default_rng(7)
    return [
        (fields, lr, 2.0 + curvature * np.log(lr / optimum) ** 2 + noise * rng.standard_normal(), seed)
        for lr in lrs
        for seed in seeds
    ]


def test_lr_from_search_transfers_the_fitted_optimum_with_the_base_shapes(tmp_path):
    mup = {**BASE, **ARCHS["b"], "parametrization": "mup", "d_model": 32, "d_ff": 96}
    other = {**mup, "ffn_activation": "gelu"}
    search = _fake_search(
        tmp_path,
        [
            *_u_runs(mup, optimum=5e-3, lrs=(1e-3, 2.5e-3, 1e-2, 2.5e-2)),  # the optimum lies between the lrs tried
            (other, 2e-2, 1.0, 0),  # a different architecture: never used for "b"
            *_u_runs({**mup, "parametrization": "standard"}, optimum=3e-2, lrs=(1e-2, 2e-2, 4e-2, 8e-2)),
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
        assert p.train["lr"] == pytest.approx(5e-3, rel=1e-6) and p.train["batch_size"] == 8
        assert p.arch["parametrization"] == "mup" and p.arch["base_d_model"] == 32  # the searched size
        # the base head_dim and d_ff travel with it: each size is measured from the searched shape
        assert p.arch["base_d_ff"] == 96 and p.arch["base_head_dim"] == 32 // BASE["n_heads"]
        t = p.transfer
        assert t["lr_from_search"] == str(search) and t["lr_source"] == "fit" and t["lr_seeds"] == 2
        assert t["lr_distinct"] == 4 and t["lr_runs"] == 8 and t["lr_best_trial"] == 2.5e-3  # nearest tried
        assert t["lr_lo"] == pytest.approx(5e-3, rel=1e-6) == pytest.approx(t["lr_hi"], rel=1e-6)  # no noise
        assert p.lr_factor is None
    # standard: matched under its own parametrisation, used unchanged, no base shapes
    spec = load_study_file({**spec.model_dump(), "base": BASE})
    assert {(round(p.train["lr"], 9), p.arch["base_d_model"]) for p in plan_grid(spec)} == {(3e-2, None)}


def test_lr_from_search_refuses_an_unidentified_optimum_unless_the_study_sweeps_lr(tmp_path):
    """Two learning rates (the best seed-averaged of them a noisy pick) identify no optimum: the study
    is refused with what to run; with an lr sweep the best seed-averaged lr is used and checked."""
    mup = {**BASE, **ARCHS["b"], "parametrization": "mup", "d_model": 32, "d_ff": 96}
    search = _fake_search(
        tmp_path,
        [(mup, 1e-2, 2.0, 0), (mup, 1e-2, 3.2, 1), (mup, 4e-3, 2.4, 0), (mup, 4e-3, 2.5, 1)],
    )
    study = {
        "base": {**BASE, "parametrization": "mup"},
        "architectures": {"b": ARCHS["b"]},
        "sizes": {"values": [2e4, 8e4]},
        "tokens": [1000],
        "train": {"lr": {"from_search": str(search)}},
    }
    with pytest.raises(UserError, match=r"lr.from_search: the search tried 2 learning rates for .*--lr-sweep 0.5,1,2"):
        plan_grid(load_study_file(study))
    points = plan_grid(load_study_file({**study, "lr_sweep": {"factors": [0.5, 1, 2]}}))
    assert len(points) == 2 * 3
    assert sorted((p.size, p.lr_factor, p.train["lr"]) for p in points) == sorted(
        (s, f, 4e-3 * f) for s in (2e4, 8e4) for f in (0.5, 1, 2)
    )  # the best seed-averaged lr (mean 2.45 against 2.6), swept around at every size
    assert points[0].transfer["lr_source"].startswith("best trial (the search tried 2 learning rates")


def test_lr_sweeps_are_checked_and_run_every_size_at_every_factor(tmp_path):
    study = {"base": BASE, "architectures": ARCHS, "sizes": {"values": [2e4]}, "tokens": [1000], "seeds": 2}
    points = plan_grid(load_study_file({**study, "train": {"lr": 2e-3}, "lr_sweep": {"factors": [1, 3]}}))
    assert len(points) == 2 * 2 * 2  # architectures x factors x seeds
    assert {(p.group, p.lr_factor, p.train["lr"]) for p in points} == {(g, f, 2e-3 * f) for g in ARCHS for f in (1, 3)}
    for factors, why in [([0.5, 2], "include 1"), ([1, 1, 2], "each factor once"), ([1], "at least 2")]:
        p = tmp_path / f"s{len(why)}.yaml"
        p.write_text(yaml.safe_dump({**study, "lr_sweep": {"factors": factors}}))
        with pytest.raises(UserError, match=f"{p}: lr_sweep.*{why}"):
            load_study_file(p)


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


SHAPE = {"rule": "fixed_ratio", "ffn_ratio": 4, "head_dim": 32, "aspect_ratio": 64}


def test_a_study_with_a_shape_rule_solves_every_size_on_the_rule():
    """head_dim and n_heads = d_model / head_dim at every size, depth and width growing together;
    the same study without the rule holds depth and heads and lets head_dim follow the width."""
    from archscale.spaces.shape_rule import ShapeRule, off_rule

    base = {"vocab_size": 256, "seq_len": 64}
    sizes = {"values": [4e7, 1.6e8, 6.4e8]}
    points = plan_grid(
        load_study_file({"base": base, "architectures": ARCHS, "sizes": sizes, "tokens": [1000], "shape": SHAPE})
    )
    assert len(points) == 2 * 3
    for group in ARCHS:
        archs = [p["arch"] for p in points if p["group"] == group]
        assert all(a["head_dim"] == 32 and a["n_heads"] * 32 == a["d_model"] for a in archs)
        assert all(off_rule(ShapeRule(**SHAPE), a, flag=0.08) == [] for a in archs)
        assert archs[0]["n_layers"] < archs[1]["n_layers"] < archs[2]["n_layers"]
    plain = plan_grid(load_study_file({"base": BASE, "architectures": ARCHS, "sizes": sizes, "tokens": [1000]}))
    assert len({p["arch"]["head_dim"] for p in plain if p["group"] == "a"}) == 3  # the confound the rule removes
    assert {p["arch"]["n_layers"] for p in plain} == {2}


@pytest.mark.parametrize(
    "change,key",
    [
        ({"sizes": {"values": [4e7], "free": ["d_model", "d_ff"]}}, "sizes.free: the shape rule fixed_ratio decides"),
        ({"base": BASE}, "architectures.a.n_layers: at size 40,000,000: is set by the shape rule"),
        ({"sizes": {"values": [2e4]}}, "sizes.values: at size 20,000: shape rule fixed_ratio with aspect_ratio 64"),
    ],
)
def test_a_study_shape_rule_refuses_what_it_cannot_honour(tmp_path, change, key):
    data = {"base": {"vocab_size": 256, "seq_len": 64}, "architectures": ARCHS, "sizes": {"values": [4e7]}}
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump({**data, "tokens": [1000], "shape": SHAPE, **change}))
    with pytest.raises(UserError, match=key):
        plan_grid(load_study_file(p), p)


def test_from_search_of_a_shaped_search_leaves_the_rules_dimensions_to_the_study(tmp_path):
    """A search on a shape rule: its architectures reach the study without the fields the rule set
    (so the study solves them at each size, on its own rule or none)."""
    import json

    import polars as pl

    from archscale.search.from_search import top_architectures
    from archscale.spaces.record import TrialStatus, new_trial_row, trial_schema
    from archscale.spaces.space import space_from_dict

    space = space_from_dict(
        {
            "arch": {"vocab_size": 256, "seq_len": 64, "ffn_activation": {"choices": ["relu", "swiglu"]}},
            "budget": {"kind": "params", "value": 4e7, "tolerance": 0.03},
            "shape": SHAPE,
        }
    )
    rows = []
    for i, activation in enumerate(["relu", "swiglu"]):
        from archscale.search.strategies.ladder_plan import ReplayChooser

        s = space.sample_with(ReplayChooser({"ffn_activation": activation}))
        row = new_trial_row(trial_id=i, seed=0, arch=s.arch, train={}, counts=s.counts, target_tokens=1000)
        rows.append({**row, "status": TrialStatus.COMPLETED.value, "eval_loss": 3.0 + i})
    pl.DataFrame(rows, schema=trial_schema()).write_parquet(tmp_path / "trials.parquet")
    (tmp_path / "run.json").write_text(json.dumps({"space": space.spec.model_dump(mode="json")}))
    top = top_architectures(tmp_path, 2, use_train=False)
    assert len(top) == 2
    for choices in top.values():
        assert not {"d_model", "n_layers", "n_heads", "head_dim", "d_ff"} & set(choices)
    study = {"from_search": {"dir": str(tmp_path), "top_k": 2, "use_train": False}, "tokens": [1000]}
    points = plan_grid(load_study_file({**study, "sizes": {"values": [4e7, 1.6e8]}, "shape": SHAPE}))
    assert len(points) == 4 and all(p["arch"]["head_dim"] == 32 for p in points)


def test_a_shaped_study_from_a_plain_search_drops_the_searchs_heads_and_depth(tmp_path):
    import json

    import polars as pl

    from archscale.spaces.record import TrialStatus, new_trial_row, trial_schema
    from archscale.spaces.space import space_from_dict

    space = space_from_dict(
        {"arch": {**BASE, "n_heads": 4}, "budget": {"kind": "params", "value": 1e5, "tolerance": 0.03}}
    )
    s = space.sample_random(0)
    row = new_trial_row(trial_id=0, seed=0, arch=s.arch, train={}, counts=s.counts, target_tokens=1000)
    rows = [{**row, "status": TrialStatus.COMPLETED.value, "eval_loss": 3.0}]
    pl.DataFrame(rows, schema=trial_schema()).write_parquet(tmp_path / "trials.parquet")
    (tmp_path / "run.json").write_text(json.dumps({"space": space.spec.model_dump(mode="json")}))
    study = {"from_search": {"dir": str(tmp_path), "top_k": 1, "use_train": False}, "tokens": [1000]}
    points = plan_grid(load_study_file({**study, "sizes": {"values": [4e7, 1.6e8]}, "shape": SHAPE}))
    assert [p["arch"]["n_heads"] * 32 for p in points] == [p["arch"]["d_model"] for p in points]
    assert all(p["arch"]["n_kv_heads"] == p["arch"]["n_heads"] for p in points)  # MHA stays MHA, not kv = 4
    assert points[1]["arch"]["n_layers"] > points[0]["arch"]["n_layers"] > 2  # the search's depth 2 is not kept


def test_lr_sweep_flag_errors_are_one_line_before_anything_runs(tmp_path):
    from archscale.search.commands import _factors
    from archscale.search.study import run_study

    study = {"base": BASE, "architectures": ARCHS, "sizes": {"values": [2e4]}, "tokens": [1000]}
    assert _factors("0.5, 1,2") == [0.5, 1.0, 2.0] and _factors(None) is None
    with pytest.raises(UserError, match="--lr-sweep: give positive numbers separated by commas"):
        _factors("half,1")
    for factors, why in [([0.5, 2], "include 1"), ([-1, 1], "greater than 0")]:
        with pytest.raises(UserError, match=f"--lr-sweep: .*{why}"):
            run_study(study, tmp_path / "out", None, lr_sweep=factors)
    assert not (tmp_path / "out").exists()
