"""The space file's schema: axes (a value, choices or a range, with `when`), the budget, and constraints.

Pydantic models with unknown keys refused; `spaces.space.load_space` turns their errors into
`SpaceError`s naming the file and the key, and `spaces.checks` adds the rules that span fields.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from archscale.spaces.counting import DEFAULT_FLOPS_CONVENTION, FLOPS_CONVENTIONS
from archscale.spaces.shape_rule import ShapeRule
from archscale.spaces.solver import BUDGET_KINDS

Scalar = Union[bool, int, float, str]
BUDGET_AXES = ("ffn_ratio", "aspect_ratio")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Axis(_Strict):
    """One axis: a fixed `value`, categorical `choices`, or an int/float range `low`..`high`."""

    value: Scalar | None = None
    choices: list[Scalar | None] | None = (
        None  # null: the field's None (attention_window: full attention; expert_capacity_factor: dropless)
    )
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = None
    type: Literal["int", "float"] | None = None
    when: dict[str, Scalar | list[Scalar]] | None = None  # active only when every named field matches
    default: Scalar | None = None  # the value when inactive (otherwise ArchConfig's default)

    @model_validator(mode="after")
    def _one_kind(self) -> Axis:
        kinds = [self.value is not None, self.choices is not None, self.low is not None or self.high is not None]
        if sum(kinds) != 1:
            raise ValueError("give exactly one of value, choices, or low/high")
        if self.choices is not None and not self.choices:
            raise ValueError("choices must not be empty")
        if kinds[2]:
            if self.low is None or self.high is None:
                raise ValueError("a range needs both low and high")
            if not self.low <= self.high:
                raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log range needs low > 0")
        return self

    @property
    def is_int_range(self) -> bool:
        if self.type is not None:
            return self.type == "int"
        return _is_int(self.low) and _is_int(self.high) and (self.step is None or _is_int(self.step))


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class BudgetSpec(_Strict):
    kind: Literal[BUDGET_KINDS] = "params"  # type: ignore[valid-type]  # the solver's kinds
    value: float = Field(gt=0)
    tolerance: float = Field(0.01, gt=0, lt=1)
    free: list[Literal["d_model", "d_ff", "n_layers"]] = ["d_model", "d_ff"]
    ffn_ratio: Axis = Axis(value=4)
    match_gated: bool = True  # gated FFNs get 2/3 of the ratio, so they hold the same parameters
    aspect_ratio: Axis | None = None  # d_model / n_layers, when n_layers is free
    head_dim_multiple: int = Field(8, ge=1)
    d_model_multiple: int = Field(8, ge=1)
    d_ff_multiple: int = Field(8, ge=1)
    # how attention is charged in this space's every FLOP count (its budget and its trials' compute):
    # causal (the keys a query sees) or dense (masked entries too); see spaces/counting.py
    flops_convention: Literal[FLOPS_CONVENTIONS] = DEFAULT_FLOPS_CONVENTION  # type: ignore[valid-type]

    @field_validator("ffn_ratio", "aspect_ratio", mode="before")
    @classmethod
    def _axis(cls, v: Any) -> Any:
        return _as_axis(v)

    @model_validator(mode="after")
    def _check(self) -> BudgetSpec:
        if "n_layers" in self.free and self.aspect_ratio is None:
            raise ValueError("free includes n_layers, so give aspect_ratio (d_model / n_layers)")
        return self


class Constraint(_Strict):
    forbid: dict[str, Scalar | list[Scalar]]  # this combination of values is never sampled


class SpaceFile(_Strict):
    name: str = "space"
    description: str = ""
    arch: dict[str, Axis] = {}
    train: dict[str, Axis] = {}
    budget: BudgetSpec | None = None
    shape: ShapeRule | None = None  # how the shape scales with the budget (spaces/shape_rule.py); None: solved afresh
    constraints: list[Constraint] = []

    @field_validator("arch", "train", mode="before")
    @classmethod
    def _axes(cls, v: Any) -> Any:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError(f"expected a mapping of field: axis, got {type(v).__name__}")
        return {k: _as_axis(a) for k, a in v.items()}


def _as_axis(v: Any) -> Any:
    if isinstance(v, (bool, int, float, str)):
        return {"value": v}
    if isinstance(v, list):
        return {"choices": v}
    return v


def as_list(v: Any) -> list[Any]:
    """A `when` or `forbid` value (one value or a list of them) as a list."""
    return v if isinstance(v, list) else [v]
