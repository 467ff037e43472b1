"""Solve the free dimensions of an architecture so its count lands on a budget.

Given every sampled choice, the solver picks `d_model` (and `n_layers` through an aspect ratio,
when free) from a grid that respects divisibility (head_dim a multiple of `head_dim_multiple`,
which also keeps it even for RoPE), then sets `d_ff` (a multiple of `d_ff_multiple`) so the count
hits the budget. Every count is affine in `d_ff`, so `d_ff` is solved in closed form per
candidate. Among the candidates within tolerance it keeps the one whose `d_ff / d_model` is closest
(in log space) to the requested FFN ratio: the budget is the hard constraint, the ratio the target.
Under ffn_type=moe the ratio is that of the FFN width one token uses, (top-k + shared experts) x
expert_d_ff / d_model, and `d_ff` is the experts' width unless `expert_d_ff` is fixed (then no
count reads d_ff, which is set to expert_d_ff, and d_model alone meets the budget), so a dense and
a MoE architecture of one budget and ratio get the same per-token FFN width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal, get_args

from archscale.spaces import variants
from archscale.spaces.arch import ArchConfig
from archscale.spaces.counting import DEFAULT_FLOPS_CONVENTION, Counts, FlopsConvention, count
from archscale.spaces.errors import BudgetError

# active_params: what one token uses (= params unless ffn_type=moe), so dense and MoE FFNs compare
# at equal per-token size
BudgetKind = Literal["params", "non_embedding_params", "flops_per_token", "active_params"]
BUDGET_KINDS: tuple[str, ...] = get_args(BudgetKind)
MAX_CANDIDATES = 4096


@dataclass(frozen=True)
class Budget:
    kind: BudgetKind
    value: float
    tolerance: float = 0.01
    flops_convention: FlopsConvention = DEFAULT_FLOPS_CONVENTION  # how every count of the run charges attention

    def describe(self) -> str:
        convention = f", {self.flops_convention} attention" if self.kind == "flops_per_token" else ""
        return f"{self.kind} = {self.value:,.0f} (±{self.tolerance:.1%}{convention})"


@dataclass(frozen=True)
class Solution:
    arch: ArchConfig
    counts: Counts
    deviation: float  # achieved / budget - 1


def _arch_defaults() -> dict[str, Any]:
    return {name: f.default for name, f in ArchConfig.model_fields.items()}


def _fast_count(fields: dict[str, Any], flops_convention: FlopsConvention) -> Counts:
    """`count` on a plain namespace: the same arithmetic without pydantic validation (hot loop)."""
    return count(SimpleNamespace(**fields), flops_convention)  # type: ignore[arg-type]


def solve(
    choices: dict[str, Any],
    budget: Budget,
    *,
    free: tuple[str, ...] = ("d_model", "d_ff"),
    ffn_ratio: float = 4.0,
    match_gated: bool = True,
    aspect_ratio: float | None = None,
    head_dim_multiple: int = 8,
    d_model_multiple: int = 8,
    d_ff_multiple: int = 8,
) -> Solution:
    """Return the architecture for `choices` whose `budget.kind` count is within tolerance.

    `free` names the solved dimensions among d_model, d_ff and n_layers (n_layers needs an
    `aspect_ratio` = d_model / n_layers). Gated FFNs scale the ratio by 2/3 when `match_gated`,
    so they hold the parameters of a non-gated FFN of the same ratio. Raises BudgetError with the
    feasible range when nothing fits.
    """
    fields = {**_arch_defaults(), **{k: v for k, v in choices.items() if v is not None}}
    gated = variants.ACTIVATIONS[fields["ffn_activation"]].gated
    ratio = ffn_ratio * (2 / 3 if gated and match_gated else 1.0)
    solve_d_model, solve_d_ff, solve_layers = ("d_model" in free), ("d_ff" in free), ("n_layers" in free)
    if solve_layers and not aspect_ratio:
        raise BudgetError("budget.free: n_layers is free but no aspect_ratio (d_model / n_layers) is given")
    n_heads = fields["n_heads"]
    fields["n_kv_heads"] = fields.get("n_kv_heads") or n_heads
    fixed_head_dim = choices.get("head_dim")
    # FFNs of width d_ff one token runs through: the ratio targets their total width
    shape = variants.ffn_shape(SimpleNamespace(**fields))
    # a MoE with a fixed expert_d_ff reads no d_ff: then d_model alone meets the budget (active_ffns = 0)
    fixed_experts = fields["ffn_type"] == "moe" and fields.get("expert_d_ff") is not None
    active_ffns = 0 if fixed_experts else shape.active
    ratio /= max(1, active_ffns)

    def shapes():
        """Candidate (d_model, head_dim, n_layers) in increasing size."""
        if not solve_d_model:
            d = fields["d_model"]
            yield d, fixed_head_dim or d // n_heads, _layers(d)
            return
        for i in range(1, MAX_CANDIDATES + 1):
            if fixed_head_dim:
                d = i * d_model_multiple
                yield d, fixed_head_dim, _layers(d)
            else:
                hd = i * head_dim_multiple
                yield n_heads * hd, hd, _layers(n_heads * hd)

    def _layers(d: int) -> int:
        return max(1, round(d / aspect_ratio)) if solve_layers else fields["n_layers"]

    target = budget.value
    best: tuple[float, dict[str, Any], Counts] | None = None
    smallest: tuple[float, dict[str, Any]] | None = None
    nearest: list[tuple[float, dict[str, Any]]] = []
    for d, hd, layers in shapes():
        f = {**fields, "d_model": d, "head_dim": hd, "n_layers": layers}
        if solve_d_ff:
            m = d_ff_multiple
            c1 = _fast_count({**f, "d_ff": m}, budget.flops_convention)[budget.kind]
            c2 = _fast_count({**f, "d_ff": 2 * m}, budget.flops_convention)[budget.kind]
            slope = (c2 - c1) / m
            if slope > 0:
                d_ff = max(m, round((target - (c1 - slope * m)) / slope / m) * m)
            else:  # no count reads d_ff (a MoE with a fixed expert_d_ff): d_model alone meets the budget
                d_ff = f["expert_d_ff"]
            f["d_ff"] = d_ff
            lowest = c1
        elif "d_ff" not in choices:
            f["d_ff"] = max(d_ff_multiple, round(ratio * d / d_ff_multiple) * d_ff_multiple)
            lowest = None
        else:
            lowest = None
        counts = _fast_count(f, budget.flops_convention)
        achieved = counts[budget.kind]
        lowest = achieved if lowest is None else lowest
        if smallest is None:
            smallest = (lowest, f)
        deviation = achieved / target - 1
        nearest.append((achieved, f))
        if abs(deviation) <= budget.tolerance:
            score = abs(math.log(f["d_ff"] / (ratio * d))) if solve_d_ff and active_ffns > 0 else abs(deviation)
            if best is None or score < best[0]:
                best = (score, f, counts)
        if lowest > target * (1 + budget.tolerance):
            break

    if best is None:
        raise BudgetError(_infeasible_message(budget, smallest, nearest))
    _, f, counts = best
    try:
        arch = ArchConfig(**f)
    except ValueError as e:
        raise BudgetError(f"the solved architecture is invalid: {e}") from None
    return Solution(arch=arch, counts=counts, deviation=counts[budget.kind] / target - 1)


def _infeasible_message(budget: Budget, smallest, nearest) -> str:
    kind = budget.kind
    if smallest is not None and smallest[0] > budget.value * (1 + budget.tolerance):
        f = smallest[1]
        return (
            f"{kind} budget {budget.value:,.0f} is below the smallest architecture these choices allow: "
            f"{smallest[0]:,.0f} at d_model={f['d_model']}, n_layers={f['n_layers']}; feasible range is "
            f">= {smallest[0]:,.0f} (raise the budget, or choose fewer layers, a smaller vocab or seq_len)"
        )
    below = [a for a, _ in nearest if a < budget.value]
    above = [a for a, _ in nearest if a > budget.value]
    lo = f"{max(below):,.0f}" if below else "none"
    hi = f"{min(above):,.0f}" if above else "none"
    return (
        f"no architecture lands within ±{budget.tolerance:.1%} of {kind} = {budget.value:,.0f}: "
        f"the nearest achievable are {lo} below and {hi} above (free d_ff or d_model, or widen the tolerance)"
    )
