"""Shape rules: a budget solved along a rule (fixed_ratio, width_only, depth_only), the strays at
small sizes, the refusal below a rule's minimum, and the checks a space file's `shape:` gets at load."""

from __future__ import annotations

import math

import pytest

from archscale.spaces.counting import count
from archscale.spaces.errors import BudgetError, SpaceError
from archscale.spaces.shape_rule import BelowRuleMinimum, ShapeRule, off_rule, strays
from archscale.spaces.shape_solver import solve_on_rule
from archscale.spaces.solver import Budget
from archscale.spaces.space import space_from_dict

CHOICES = {"vocab_size": 256, "seq_len": 64, "norm": "rmsnorm", "position": "rope", "tie_embeddings": True}
FIXED = ShapeRule(rule="fixed_ratio", ffn_ratio=4, head_dim=32, aspect_ratio=64)


def _stray(rule, arch, dim):
    return next(s for s in strays(rule, arch) if s.dim == dim).relative


@pytest.mark.parametrize("activation", ["gelu", "swiglu"])
@pytest.mark.parametrize("params", [8e7, 4e8, 1.6e9])  # at 2e7, 7 vs 8 layers is already a 7% step
def test_fixed_ratio_grows_depth_and_width_together_on_the_rule(params, activation):
    budget = Budget("params", params, 0.02)
    s = solve_on_rule({**CHOICES, "ffn_activation": activation}, budget, FIXED)
    a = s.arch
    assert abs(s.deviation) <= 0.02 and s.counts == count(a)
    assert a.head_dim == 32 and a.n_heads * 32 == a.d_model  # head_dim held: heads follow the width
    assert abs(a.d_model / a.n_layers / 64 - 1) <= 0.05  # on the aspect ratio
    gated = 2 / 3 if activation == "swiglu" else 1.0  # budget.match_gated: 2/3 of the ratio for a gated FFN
    assert abs(a.d_ff / a.d_model / (4 * gated) - 1) <= 0.05
    assert off_rule(FIXED, a) == []


def test_fixed_ratio_sizes_keep_their_shape_where_the_plain_solver_changes_it():
    """Two budgets 4x apart: on the rule the aspect ratio and head_dim stay; the plain solver (fixed
    depth, free width) gives a different aspect ratio and head_dim at each."""
    from archscale.spaces.solver import solve

    on_rule = [solve_on_rule({**CHOICES}, Budget("params", v, 0.02), FIXED).arch for v in (2e7, 8e7)]
    plain = [solve({**CHOICES, "n_layers": 4, "n_heads": 4}, Budget("params", v, 0.02)).arch for v in (2e7, 8e7)]
    assert [a.head_dim for a in on_rule] == [32, 32]
    assert on_rule[1].n_layers > on_rule[0].n_layers and on_rule[1].d_model > on_rule[0].d_model
    assert plain[0].head_dim != plain[1].head_dim and plain[0].d_model / 4 != plain[1].d_model / 4


def test_width_only_holds_depth_and_depth_only_holds_width():
    width = ShapeRule(rule="width_only", ffn_ratio=4, head_dim=16)
    depth = ShapeRule(rule="depth_only", ffn_ratio=4, head_dim=16)
    widths = [solve_on_rule({**CHOICES, "n_layers": 3}, Budget("params", v, 0.02), width).arch for v in (1e6, 4e6)]
    assert [a.n_layers for a in widths] == [3, 3] and widths[1].d_model > widths[0].d_model
    assert all(a.head_dim == 16 and a.n_heads * 16 == a.d_model and off_rule(width, a) == [] for a in widths)
    depths = [solve_on_rule({**CHOICES, "d_model": 128}, Budget("params", v, 0.02), depth).arch for v in (1e6, 4e6)]
    assert [a.d_model for a in depths] == [128, 128] and depths[1].n_layers > depths[0].n_layers
    assert all(a.n_heads == 8 and off_rule(depth, a) == [] for a in depths)


def test_gqa_heads_stay_a_multiple_of_the_kv_heads():
    a = solve_on_rule({**CHOICES, "n_kv_heads": 2}, Budget("params", 3e7, 0.02), FIXED).arch
    assert a.n_kv_heads == 2 and a.n_heads % 2 == 0 and a.d_model == a.n_heads * 32


def test_small_sizes_stray_and_say_by_how_much():
    """At 100K parameters one layer of 3 heads is the nearest whole shape: the rule's dimensions
    stray, and `off_rule` names each one beyond 5% with the achieved and the rule's value."""
    s = solve_on_rule({**CHOICES, "ffn_activation": "gelu"}, Budget("params", 1e5, 0.05), FIXED)
    flags = off_rule(FIXED, s.arch)
    assert flags, s.arch
    aspect = _stray(FIXED, s.arch, "aspect_ratio")
    assert f"aspect_ratio {s.arch.d_model / s.arch.n_layers:.3g} vs 64 ({aspect:+.0%})" in flags


@pytest.mark.parametrize(
    ("rule", "choices", "message"),
    [
        (FIXED, {}, r"fixed_ratio with aspect_ratio 64 needs d_model >= 64 \(one layer\): the budget params 20,000"),
        (
            ShapeRule(rule="width_only", head_dim=32),
            {"n_layers": 1},
            r"width_only with head_dim 32 needs d_model >= 32 \(one head\): the budget params 5,000 gives d_model",
        ),
        (
            ShapeRule(rule="depth_only", head_dim=32),
            {"d_model": 256},
            r"depth_only with d_model 256 needs n_layers >= 1 \(one layer\): the budget params 20,000 gives n_layers",
        ),
    ],
)
def test_below_the_rules_minimum_the_solver_refuses_rather_than_change_shape(rule, choices, message):
    value = 5000 if rule.rule == "width_only" else 20000
    with pytest.raises(BelowRuleMinimum, match=message) as e:
        solve_on_rule({**CHOICES, **choices}, Budget("params", value, 0.02), rule)
    least = float(str(e.value).split("at least ")[1].split(" ")[0].replace(",", ""))
    assert least > value  # the smallest budget the rule honours, stated
    solve_on_rule({**CHOICES, **choices}, Budget("params", least, 0.02), rule)  # and honoured there


def test_the_ideal_size_named_in_the_refusal_is_the_exact_point_on_the_rule():
    """'gives d_model X': X is where the budget lands on the rule with real heads, layers and d_ff."""
    with pytest.raises(BelowRuleMinimum) as e:
        solve_on_rule({**CHOICES}, Budget("params", 20000, 0.02), FIXED)
    d = float(str(e.value).split("gives d_model ")[1].split(" ")[0])
    assert 16 < d < 64
    # at d_model = d on the rule: n_layers = d / 64 < 1 and the count interpolates between 0 and 1 layer
    f = {**CHOICES, "ffn_activation": "gelu", "d_model": d, "n_heads": d / 32, "head_dim": 32, "d_ff": 4 * d}
    from types import SimpleNamespace

    from archscale.spaces.solver import _arch_defaults

    zero, one = (
        count(SimpleNamespace(**{**_arch_defaults(), **f, "n_kv_heads": d / 32, "n_layers": n})) for n in (0, 1)
    )
    assert zero.params + (d / 64) * (one.params - zero.params) == pytest.approx(20000, rel=0.01)


def test_depth_only_refuses_a_width_that_is_not_whole_heads():
    with pytest.raises(BudgetError, match="d_model 100, which is not a multiple of head_dim 32"):
        solve_on_rule(
            {**CHOICES, "d_model": 100}, Budget("params", 1e6, 0.02), ShapeRule(rule="depth_only", head_dim=32)
        )


SPACE = {
    "name": "shaped",
    "arch": {**CHOICES, "ffn_activation": {"choices": ["relu", "swiglu"]}},
    "budget": {"kind": "params", "value": 2e6, "tolerance": 0.02},
    "shape": {"rule": "fixed_ratio", "ffn_ratio": 4, "head_dim": 32, "aspect_ratio": 64},
}


def test_a_space_with_a_shape_rule_samples_on_the_rule():
    space = space_from_dict(SPACE)
    for seed in range(4):
        s = space.sample_random(seed)
        assert s.arch.head_dim == 32 and s.arch.d_model == 32 * s.arch.n_heads
        assert abs(s.deviation) <= 0.02
        assert math.isclose(s.arch.d_model / s.arch.n_layers, 64, rel_tol=0.3)
    with pytest.raises(BelowRuleMinimum, match="budget.value: shape rule fixed_ratio"):
        space.with_budget("params", 20000).sample_random(0)


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"shape": {"rule": "fixed_ratio", "head_dim": 32}}, "shape", "give aspect_ratio"),
        ({"shape": {"rule": "width_only", "head_dim": 32, "aspect_ratio": 8}}, "shape", "remove aspect_ratio"),
        ({"shape": {"rule": "cube", "head_dim": 32}}, "shape.rule", "'fixed_ratio', 'width_only' or 'depth_only'"),
        ({"shape": {"rule": "width_only", "head_dim": 32, "wide": 1}}, "shape.wide", "allowed here: rule, ffn_ratio"),
        ({"shape": {"rule": "width_only", "head_dim": 0}}, "shape.head_dim", "greater than or equal to 1"),
        ({"arch": {**SPACE["arch"], "n_heads": 4}}, "arch.n_heads", "set by the shape rule fixed_ratio"),
        ({"arch": {**SPACE["arch"], "head_dim": 16}}, "arch.head_dim", "set by the shape rule"),
        ({"budget": {**SPACE["budget"], "free": ["d_model", "d_ff"]}}, "budget.free", "decides this (shape.rule)"),
        ({"budget": {**SPACE["budget"], "ffn_ratio": 3}}, "budget.ffn_ratio", "shape.ffn_ratio"),
    ],
)
def test_a_bad_shape_block_is_refused_at_load_naming_the_key(change, key, words):
    with pytest.raises(SpaceError) as e:
        space_from_dict({**SPACE, **change}, "space.yaml")
    assert str(e.value).startswith(f"space.yaml: {key}: ") and words in str(e.value), str(e.value)


def test_a_space_without_a_rule_solves_as_before():
    plain = {k: v for k, v in SPACE.items() if k != "shape"}
    s = space_from_dict({**plain, "arch": {**plain["arch"], "n_heads": 4}}).sample_random(0)
    assert s.arch.n_layers == 2 and s.arch.n_heads == 4  # ArchConfig's n_layers, width solved at fixed heads


def test_space_show_names_the_rule_and_what_strays_from_it():
    from typer.testing import CliRunner

    from archscale.search.cli import app

    runner = CliRunner()
    on_rule = runner.invoke(app, ["space", "show", "ladder_fixed_ratio", "--samples", "2"], env={"COLUMNS": "300"})
    assert on_rule.exit_code == 0, on_rule.output
    assert "shape rule fixed_ratio (head_dim 16, ffn_ratio 4, aspect_ratio 16)" in on_rule.output
    assert "off the rule" not in on_rule.output  # 100K parameters: 3 layers of 48, on the rule
    rung3 = runner.invoke(app, ["space", "show", "ladder_fixed_ratio", "--budget-params", "8e5", "--samples", "2"])
    assert rung3.exit_code == 0 and "off the rule:" in rung3.output and "aspect_ratio 13.7 vs 16 (-14%)" in rung3.output
