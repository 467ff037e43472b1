"""Shape rules: how an architecture's shape scales with its budget (`shape:` in a space or study file).

    shape: {rule: fixed_ratio, ffn_ratio: 4, head_dim: 32, aspect_ratio: 64}

Without a rule the budget solver picks a fresh shape per size (head_dim = d_model / n_heads, d_ff
closest to the ratio), so the sizes of a ladder or a study differ in shape as well as in size. Under
a rule every size holds `head_dim` (n_heads = d_model / head_dim) and the FFN ratio, and:

- `fixed_ratio`: depth and width grow together at `aspect_ratio` = d_model / n_layers;
- `width_only`: depth is held (the space's `n_layers`), width grows;
- `depth_only`: width is held (the space's `d_model`), depth grows.

The budget picks the size along the rule (`spaces.shape_solver.solve_on_rule`): among the shapes
that land within the budget's tolerance, the one that strays least from the rule. Rounding (whole
heads, whole layers, d_ff a multiple of `d_ff_multiple`) makes small sizes stray; `strays` says by
how much, and a size below the rule's minimum (`minimum`) is refused, not bent to another shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

from archscale.spaces import variants
from archscale.spaces.errors import BudgetError

#: a dimension that strays more than this from its rule is flagged (report, `shape_flags`)
STRAY_FLAG = 0.05


@dataclass(frozen=True)
class RuleFacts:
    """What a rule does: the dimensions that grow with the budget and the ArchConfig fields it sets
    (which a space file may therefore not give)."""

    grows: tuple[str, ...]
    sets: tuple[str, ...]
    held: tuple[str, ...]  # the dimensions compared with the rule (`strays`)
    summary: str


RULES: dict[str, RuleFacts] = {
    "fixed_ratio": RuleFacts(
        grows=("d_model", "n_layers"),
        sets=("d_model", "n_layers", "n_heads", "head_dim", "d_ff"),
        held=("head_dim", "ffn_ratio", "aspect_ratio"),
        summary="depth and width grow together at aspect_ratio = d_model / n_layers",
    ),
    "width_only": RuleFacts(
        grows=("d_model",),
        sets=("d_model", "n_heads", "head_dim", "d_ff"),
        held=("head_dim", "ffn_ratio"),
        summary="depth held (the space's n_layers), width grows",
    ),
    "depth_only": RuleFacts(
        grows=("n_layers",),
        sets=("n_layers", "n_heads", "head_dim", "d_ff"),
        held=("head_dim", "ffn_ratio"),
        summary="width held (the space's d_model), depth grows",
    ),
}
RuleName = Literal[tuple(RULES)]
RULE_NAMES: tuple[str, ...] = get_args(RuleName)


class BelowRuleMinimum(BudgetError):
    """The budget is below the smallest size the shape rule can honour (refused before any work)."""


class ShapeRule(BaseModel):
    """A space's or study's shape rule (module docstring). Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: RuleName  # type: ignore[valid-type]
    ffn_ratio: PositiveFloat = 4.0  # d_ff / d_model (x 2/3 for a gated FFN under budget.match_gated)
    head_dim: int = Field(ge=1)  # held at every size: n_heads = d_model / head_dim
    aspect_ratio: PositiveFloat | None = None  # d_model / n_layers: fixed_ratio only

    @model_validator(mode="after")
    def _aspect(self) -> ShapeRule:
        if self.rule == "fixed_ratio" and self.aspect_ratio is None:
            raise ValueError("rule fixed_ratio holds d_model / n_layers: give aspect_ratio")
        if self.rule != "fixed_ratio" and self.aspect_ratio is not None:
            raise ValueError(f"rule {self.rule} does not hold an aspect ratio: remove aspect_ratio")
        return self

    @property
    def facts(self) -> RuleFacts:
        return RULES[self.rule]

    def ffn_target(self, fields: Any, match_gated: bool = True) -> float:
        """The d_ff / d_model the rule aims at for this architecture: `ffn_ratio`, x 2/3 for a gated
        FFN under `match_gated`, over the FFNs one token runs through (a MoE's top-k + shared experts)."""
        gated = variants.ACTIVATIONS[_get(fields, "ffn_activation")].gated
        active = variants.ffn_shape(_Fields(fields)).active
        return self.ffn_ratio * (2 / 3 if gated and match_gated else 1.0) / max(1, active)

    def describe(self) -> str:
        held = f"head_dim {self.head_dim}, ffn_ratio {self.ffn_ratio:g}"
        if self.aspect_ratio is not None:
            held += f", aspect_ratio {self.aspect_ratio:g}"
        return f"{self.rule} ({held})"


class _Fields:
    """Attribute access over a dict of ArchConfig fields (what `variants.ffn_shape` reads)."""

    def __init__(self, fields: Any):
        self._f = fields

    def __getattr__(self, name: str) -> Any:
        return _get(self._f, name)


def _get(fields: Any, name: str) -> Any:
    if isinstance(fields, dict):
        if name in fields:
            return fields[name]
        from archscale.spaces.arch import ArchConfig

        return ArchConfig.model_fields[name].default
    return getattr(fields, name)


@dataclass(frozen=True)
class Stray:
    """One dimension of a solved shape against its rule."""

    dim: str
    achieved: float
    target: float
    note: str = ""  # how the target was derived (a gated FFN's 2/3), or ""

    @property
    def relative(self) -> float:
        return self.achieved / self.target - 1

    def text(self) -> str:
        note = f"; {self.note}" if self.note else ""
        return f"{self.dim} {self.achieved:.3g} vs {self.target:.3g} ({self.relative:+.0%}{note})"


def strays(rule: ShapeRule, arch: Any, match_gated: bool = True) -> list[Stray]:
    """Each dimension the rule holds, as achieved by `arch` (an ArchConfig or a dict of its fields)."""
    d, layers = _get(arch, "d_model"), _get(arch, "n_layers")
    head_dim = _get(arch, "head_dim") or d // _get(arch, "n_heads")
    target = rule.ffn_target(arch, match_gated)
    note = "" if math.isclose(target, rule.ffn_ratio) else f"the rule's {rule.ffn_ratio:g} for this FFN"
    out = [Stray("head_dim", head_dim, rule.head_dim), Stray("ffn_ratio", _get(arch, "d_ff") / d, target, note)]
    if rule.aspect_ratio is not None:
        out.append(Stray("aspect_ratio", d / layers, rule.aspect_ratio))
    return out


def off_rule(rule: ShapeRule, arch: Any, match_gated: bool = True, flag: float = STRAY_FLAG) -> list[str]:
    """The dimensions of `arch` that stray more than `flag` from the rule, as text
    ("ffn_ratio 3.5 vs 4 (-12%)"); empty when the shape follows the rule."""
    return [s.text() for s in strays(rule, arch, match_gated) if abs(s.relative) > flag + 1e-12]


def shape_stand_in(rule: ShapeRule, choices: dict[str, Any]) -> dict[str, Any]:
    """A shape on the rule for checking `choices` against ArchConfig's rules before solving."""
    kv = choices.get("n_kv_heads") or 1
    if rule.rule == "depth_only":
        d = _get(choices, "d_model")
        return {"n_heads": max(1, d // rule.head_dim), "head_dim": rule.head_dim, "d_ff": 4 * d, "n_layers": 1}
    d = rule.head_dim * kv
    shape = {"d_model": d, "n_heads": kv, "head_dim": rule.head_dim, "d_ff": 4 * d}
    return shape if rule.rule == "width_only" else {**shape, "n_layers": 1}


def conflicts(rule: ShapeRule, arch_axes: Any, budget_given: set[str]) -> tuple[str, str] | None:
    """(key, message) for a file that gives what its shape rule decides, else None. `arch_axes` are
    the file's arch keys (or a study's fixed fields); `budget_given` the budget/sizes keys it set."""
    for name in rule.facts.sets:
        if name in arch_axes:
            return f"arch.{name}", f"is set by the shape rule {rule.rule} ({_how(rule, name)}); remove it"
    if "expert_d_ff" in arch_axes:
        return "arch.expert_d_ff", f"the shape rule {rule.rule} holds the FFN ratio, so the expert width follows d_ff"
    for name in ("free", "ffn_ratio", "aspect_ratio", "head_dim_multiple", "d_model_multiple"):
        if name in budget_given:
            return name, f"the shape rule {rule.rule} decides this (shape.{_shape_key(name)}); remove it"
    return None


def _how(rule: ShapeRule, name: str) -> str:
    return {
        "d_model": "it grows with the budget",
        "n_layers": "it grows with the budget",
        "n_heads": f"d_model / head_dim {rule.head_dim}",
        "head_dim": f"shape.head_dim = {rule.head_dim}",
        "d_ff": f"ffn_ratio {rule.ffn_ratio:g} x d_model",
    }[name]


def _shape_key(name: str) -> str:
    return {"free": "rule", "head_dim_multiple": "head_dim", "d_model_multiple": "head_dim"}.get(name, name)
