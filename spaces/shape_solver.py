"""Solve a budget along a shape rule (`spaces.shape_rule`): the size on the rule, within the tolerance.

On the rule the shape is one number (d_model, or n_layers for `depth_only`); the budget fixes it
exactly only if heads, layers and d_ff could be fractional. `solve_on_rule` first finds that exact
point (the *ideal*: counts interpolated between whole layers, heads and d_ff taken as real) and
refuses a budget whose smallest honourable shape (one head of `head_dim`, one layer) is already
above it (`BelowRuleMinimum`). Then it walks the whole shapes near the rule (d_model a multiple of
head_dim x n_kv_heads, whole layers, d_ff a multiple of `d_ff_multiple`), gives each the d_ff
within the budget's tolerance closest to the rule's ratio, and keeps the one whose largest stray
from the rule (|log achieved / target| over the held dimensions) is smallest (to 2%; then the one
closest to the budget).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from archscale.spaces.arch import ArchConfig
from archscale.spaces.errors import BudgetError, validation_problem
from archscale.spaces.shape_rule import BelowRuleMinimum, ShapeRule
from archscale.spaces.solver import MAX_CANDIDATES, Budget, Solution, _arch_defaults, _fast_count


def solve_on_rule(
    choices: dict[str, Any], budget: Budget, rule: ShapeRule, *, match_gated: bool = True, d_ff_multiple: int = 8
) -> Solution:
    """The architecture for `choices` on `rule` whose `budget.kind` count is within tolerance
    (module docstring). Raises BelowRuleMinimum below the rule's smallest size, BudgetError when no
    whole shape lands within the tolerance."""
    fields = {**_arch_defaults(), **{k: v for k, v in choices.items() if v is not None}}
    H, kv, m = rule.head_dim, choices.get("n_kv_heads"), d_ff_multiple
    step = H * (kv or 1)  # n_heads = d_model / head_dim must be a multiple of n_kv_heads
    ratio = rule.ffn_target(fields, match_gated)
    lo_count, hi_count = budget.value * (1 - budget.tolerance), budget.value * (1 + budget.tolerance)

    def shape(d: float, layers: float) -> dict[str, Any]:
        heads = d / H if isinstance(d, float) else d // H
        return {**fields, "d_model": d, "n_layers": layers, "n_heads": heads, "head_dim": H, "n_kv_heads": kv or heads}

    def counted(f: dict[str, Any], d_ff: float) -> float:
        return _fast_count({**f, "d_ff": d_ff}, budget.flops_convention)[budget.kind]

    check_minimum(rule, fields, budget, step, ratio, shape, counted)
    best: tuple[tuple[int, float, float], dict[str, Any]] | None = None
    nearest: list[float] = []
    for d, layer_options in _candidates(rule, fields, step):
        smallest = None
        for layers in layer_options:
            f = shape(d, layers)
            c1, c2 = counted(f, m), counted(f, 2 * m)
            smallest = c1 if smallest is None else min(smallest, c1)
            slope = (c2 - c1) / m
            c0 = c1 - slope * m
            k_lo, k_hi = max(1, math.ceil((lo_count - c0) / slope / m)), math.floor((hi_count - c0) / slope / m)
            if k_lo > k_hi:
                nearest.append(c0 + slope * max(m, round(ratio * d / m) * m))
                continue
            d_ff = min(max(round(ratio * d / m), k_lo), k_hi) * m
            f = {**f, "d_ff": d_ff}
            achieved = counted(f, d_ff)
            if not lo_count <= achieved <= hi_count:
                nearest.append(achieved)
                continue
            stray = abs(math.log(d_ff / (ratio * d)))
            if rule.aspect_ratio is not None:
                stray = max(stray, abs(math.log(d / layers / rule.aspect_ratio)))
            # strays within 2% of each other count as equal: then the count closest to the budget wins
            score = (math.floor(stray / 0.02), stray, abs(achieved / budget.value - 1))
            if best is None or score < best[0]:
                best = (score, f)
        if smallest is not None and smallest > hi_count:
            break
    else:
        raise BudgetError(
            f"{budget.describe()} is above the largest shape the rule {rule.describe()} reaches here "
            f"({MAX_CANDIDATES} sizes); lower the budget"
        )
    if best is None:
        below = max((a for a in nearest if a < budget.value), default=None)
        above = min((a for a in nearest if a > budget.value), default=None)
        near = ", ".join(f"{a:,.0f}" for a in (below, above) if a is not None) or "none"
        raise BudgetError(
            f"no whole shape on the rule {rule.describe()} lands within ±{budget.tolerance:.1%} of "
            f"{budget.kind} = {budget.value:,.0f} (nearest on the rule: {near}); widen budget.tolerance"
        )
    f = best[1]
    try:
        arch = ArchConfig(**f)
    except ValidationError as e:
        key, message = validation_problem(e)
        raise BudgetError(f"the shape on the rule is invalid: {f'{key}: ' if key else ''}{message}") from None
    except ValueError as e:
        raise BudgetError(f"the shape on the rule is invalid: {e}") from None
    counts = _fast_count(f, budget.flops_convention)
    return Solution(arch=arch, counts=counts, deviation=counts[budget.kind] / budget.value - 1)


def _candidates(rule: ShapeRule, fields: dict[str, Any], step: int):
    """(d_model, the n_layers to try there) near the rule, in increasing size."""
    if rule.rule == "depth_only":
        d = fields["d_model"]
        if d % step:
            raise BudgetError(
                f"shape rule depth_only holds d_model {d}, which is not a multiple of head_dim {rule.head_dim}"
                + (f" x n_kv_heads {step // rule.head_dim}" if step != rule.head_dim else "")
                + f"; give arch.d_model a multiple of {step}"
            )
        for layers in range(1, MAX_CANDIDATES + 1):
            yield d, (layers,)
        return
    for k in range(1, MAX_CANDIDATES + 1):
        d = k * step
        if rule.rule == "width_only":
            yield d, (fields["n_layers"],)
        else:
            exact = d / rule.aspect_ratio  # the whole depths around it: the closest ffn_ratio may need one more or less
            yield d, sorted({max(1, n) for n in range(math.floor(exact) - 1, math.ceil(exact) + 2)})


def on_rule(rule: ShapeRule, fields: dict[str, Any], ratio: float, shape, counted):
    """The count at a point x on the rule (d_model, or n_layers under depth_only), with real heads
    and d_ff and the count interpolated between whole layers."""

    def at(x: float) -> float:
        d, layers = (float(fields["d_model"]), x) if rule.rule == "depth_only" else (x, _layers(rule, fields, x))
        whole = math.floor(layers)
        below = counted(shape(d, whole), ratio * d)
        above = counted(shape(d, whole + 1), ratio * d)
        return below + (layers - whole) * (above - below)

    return at


def ideal(rule: ShapeRule, fields: dict[str, Any], budget: Budget, ratio: float, shape, counted) -> float:
    """The exact point on the rule that spends the budget: d_model (n_layers under depth_only)."""
    at = on_rule(rule, fields, ratio, shape, counted)
    lo, hi = (0.0, 1e5) if rule.rule == "depth_only" else (1e-3, 1e7)
    for _ in range(80):  # bisection: the count grows along the rule
        mid = (lo + hi) / 2 if rule.rule == "depth_only" else math.sqrt(lo * hi)
        lo, hi = (mid, hi) if at(mid) < budget.value else (lo, mid)
    return lo


def _layers(rule: ShapeRule, fields: dict[str, Any], d: float) -> float:
    return d / rule.aspect_ratio if rule.aspect_ratio is not None else float(fields["n_layers"])


def check_minimum(rule: ShapeRule, fields: dict[str, Any], budget: Budget, step: int, ratio: float, shape, counted):
    """Refuse (BelowRuleMinimum) a budget below the smallest shape the rule can honour: one head of
    head_dim (x n_kv_heads), and one layer under fixed_ratio (d_model >= aspect_ratio) and depth_only."""
    if rule.rule == "depth_only":
        dim, least, held, why = "n_layers", 1.0, f"d_model {fields['d_model']}", "one layer"
    else:
        dim, least, held, why = "d_model", float(step), f"head_dim {rule.head_dim}", "one head"
        if step != rule.head_dim:
            held, why = (
                f"head_dim {rule.head_dim} and n_kv_heads {step // rule.head_dim}",
                f"{step // rule.head_dim} heads",
            )
        if rule.aspect_ratio is not None and rule.aspect_ratio > least:
            least, held, why = float(rule.aspect_ratio), f"aspect_ratio {rule.aspect_ratio:g}", "one layer"
    smallest = on_rule(rule, fields, ratio, shape, counted)(least)
    if smallest <= budget.value * (1 + budget.tolerance):
        return
    gives = ideal(rule, fields, budget, ratio, shape, counted)
    raise BelowRuleMinimum(
        f"shape rule {rule.rule} with {held} needs {dim} >= {least:g} ({why}): the budget {budget.kind} "
        f"{budget.value:,.0f} gives {dim} {gives:.3g} on the rule; give a budget of at least {smallest:,.0f} "
        + (
            "or a smaller arch.d_model"
            if rule.rule == "depth_only"
            else "or a smaller shape.head_dim or shape.aspect_ratio"
        )
    )
