"""Search-space files: schema, loading with clean errors, and define-by-run sampling.

A space file is YAML with four sections (see docs/spaces.md for the full reference):

    name: tiny
    arch:                     # any ArchConfig field; each value is an axis
      seq_len: 128            #   a fixed value
      n_heads: {choices: [2, 4]}
      n_kv_heads: {choices: [1, 2, 4]}          # filtered to divisors of n_heads when sampled
      rope_theta: {choices: [1e4, 1e5], when: {position: rope}}
    train:                    # training hyperparameters searched jointly
      lr: {low: 1e-3, high: 1e-2, log: true}
    budget: {kind: params, value: 150000, tolerance: 0.01, free: [d_model, d_ff], ffn_ratio: 4}
    constraints:
      - forbid: {norm: none, norm_position: post}

Sampling goes axis by axis in file order (arch, then budget axes, then train) through a
`Chooser`, so Optuna sees a define-by-run program: an axis whose `when` is false is never
suggested, and a categorical axis whose choices are narrowed by an earlier value (a `forbid`
rule, or KV heads that must divide heads) is suggested under a name that carries that value
(`n_kv_heads|n_heads=4`), since an Optuna distribution must not change between trials.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from archscale.spaces.arch import ArchConfig, value_problem
from archscale.spaces.counting import Counts
from archscale.spaces.errors import BudgetError, SpaceError, load_mapping
from archscale.spaces.solver import BUDGET_KINDS, Budget, solve
from archscale.spaces.training import SEARCHABLE_TRAIN_FIELDS

Scalar = Union[bool, int, float, str]
BUDGET_AXES = ("ffn_ratio", "aspect_ratio")

# --------------------------------------------------------------------------------------------
# Schema


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


# --------------------------------------------------------------------------------------------
# Choosers: where a value comes from (an Optuna trial, a random generator, a fixed record)


class Chooser(Protocol):
    def categorical(self, name: str, choices: list[Any]) -> Any: ...
    def integer(self, name: str, low: int, high: int, log: bool, step: int) -> int: ...
    def real(self, name: str, low: float, high: float, log: bool, step: float | None) -> float: ...


class OptunaChooser:
    def __init__(self, trial: Any):
        self.trial = trial

    def categorical(self, name: str, choices: list[Any]) -> Any:
        return self.trial.suggest_categorical(name, choices)

    def integer(self, name: str, low: int, high: int, log: bool, step: int) -> int:
        return self.trial.suggest_int(name, low, high, log=log, step=1 if log else step)

    def real(self, name: str, low: float, high: float, log: bool, step: float | None) -> float:
        return self.trial.suggest_float(name, low, high, log=log, step=None if log else step)


class RandomChooser:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def categorical(self, name: str, choices: list[Any]) -> Any:
        return self.rng.choice(choices)

    def integer(self, name: str, low: int, high: int, log: bool, step: int) -> int:
        if log:
            return int(round(math.exp(self.rng.uniform(math.log(low), math.log(high)))))
        return low + step * self.rng.randint(0, (high - low) // step)

    def real(self, name: str, low: float, high: float, log: bool, step: float | None) -> float:
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        x = self.rng.uniform(low, high)
        return low + round((x - low) / step) * step if step else x


# --------------------------------------------------------------------------------------------
# The space


@dataclass(frozen=True)
class Sample:
    """One sampled point: the solved architecture, its training hyperparameters, and the raw choices."""

    arch: ArchConfig
    train: dict[str, Any]
    choices: dict[str, Any]
    counts: Counts
    deviation: float  # counted budget / requested budget - 1 (0 when there is no budget)


@dataclass
class Space:
    spec: SpaceFile
    path: str | None = None
    budget: Budget | None = field(default=None)

    def __post_init__(self) -> None:
        if self.budget is None and self.spec.budget is not None:
            self.budget = Budget(self.spec.budget.kind, self.spec.budget.value, self.spec.budget.tolerance)

    @property
    def name(self) -> str:
        return self.spec.name

    def with_budget(self, kind: str, value: float, tolerance: float | None = None) -> Space:
        """A copy whose budget is overridden (the CLI's --budget-* flags)."""
        if kind not in BUDGET_KINDS:
            raise SpaceError(self.path, "budget.kind", f"got {kind!r}; allowed: {', '.join(BUDGET_KINDS)}")
        if not value > 0:
            raise SpaceError(self.path, "budget.value", f"must be > 0, got {value}")
        tol = tolerance if tolerance is not None else (self.budget.tolerance if self.budget else 0.01)
        return Space(self.spec, self.path, Budget(kind, float(value), tol))  # type: ignore[arg-type]

    # ---- sampling ----------------------------------------------------------------------------
    def sample(self, trial: Any) -> Sample:
        """Sample define-by-run from an Optuna trial (conditional axes work with any sampler)."""
        return self.sample_with(OptunaChooser(trial))

    def sample_random(self, rng: random.Random | int | None = None) -> Sample:
        """Sample without Optuna, from a `random.Random` (or a seed)."""
        if not isinstance(rng, random.Random):
            rng = random.Random(rng)
        return self.sample_with(RandomChooser(rng))

    def sample_with(self, chooser: Chooser) -> Sample:
        choices: dict[str, Any] = {}
        for name, axis in self.spec.arch.items():
            value = self._draw(chooser, name, axis, choices)
            if value is not None:
                choices[name] = value
        budget_axes: dict[str, Any] = {}
        if self.spec.budget is not None:
            for name in BUDGET_AXES:
                axis = getattr(self.spec.budget, name)
                if axis is not None:
                    budget_axes[name] = self._draw(chooser, name, axis, {**choices, **budget_axes})
        train = {name: self._draw(chooser, name, axis, choices) for name, axis in self.spec.train.items()}
        train = {k: v for k, v in train.items() if v is not None}
        return self._resolve(choices, budget_axes, train)

    def _draw(self, chooser: Chooser, name: str, axis: Axis, known: dict[str, Any]) -> Any:
        if axis.when is not None and not _matches(axis.when, known):
            return axis.default
        if axis.value is not None:
            return axis.value
        if axis.choices is not None:
            allowed = self._allowed(name, list(axis.choices), known)
            if not allowed:
                raise BudgetError(f"{name}: no allowed choice remains after constraints given {known}")
            if len(allowed) == len(axis.choices):
                return chooser.categorical(name, list(axis.choices))
            # narrowed by earlier values: a distinct Optuna name per narrowing keeps distributions fixed
            key = ",".join(f"{k}={known[k]}" for k in self._narrowers(name) if k in known)
            return chooser.categorical(f"{name}|{key}", allowed)
        if axis.is_int_range:
            return chooser.integer(name, int(axis.low), int(axis.high), axis.log, int(axis.step or 1))
        return chooser.real(name, float(axis.low), float(axis.high), axis.log, axis.step)

    def _narrowers(self, name: str) -> list[str]:
        names = ["n_heads"] if name == "n_kv_heads" else []
        for c in self.spec.constraints:
            if name in c.forbid:
                names += [k for k in c.forbid if k != name and k not in names]
        return names

    def _allowed(self, name: str, choices: list[Any], known: dict[str, Any]) -> list[Any]:
        allowed = choices
        if name == "n_kv_heads" and "n_heads" in known:
            allowed = [c for c in allowed if isinstance(c, int) and c > 0 and known["n_heads"] % c == 0]
        for c in self.spec.constraints:
            if name not in c.forbid:
                continue
            others = {k: v for k, v in c.forbid.items() if k != name}
            if all(k in known for k in others) and _matches(others, known):
                banned = _as_list(c.forbid[name])
                allowed = [a for a in allowed if a not in banned]
        return allowed

    def _resolve(self, choices: dict[str, Any], budget_axes: dict[str, Any], train: dict[str, Any]) -> Sample:
        for c in self.spec.constraints:  # constraints between fixed or range values
            if all(k in choices for k in c.forbid) and _matches(c.forbid, choices):
                raise BudgetError(f"constraints: the combination {c.forbid} is forbidden")
        if self.budget is None:
            try:
                arch = ArchConfig(**choices)
            except ValueError as e:
                raise BudgetError(f"invalid architecture: {e}") from None
            from archscale.spaces.counting import count

            return Sample(arch, train, {**choices, **budget_axes}, count(arch), 0.0)
        b = self.spec.budget or BudgetSpec(value=self.budget.value)
        solution = solve(
            choices,
            self.budget,
            free=tuple(b.free),
            ffn_ratio=float(budget_axes.get("ffn_ratio", 4.0)),
            match_gated=b.match_gated,
            aspect_ratio=budget_axes.get("aspect_ratio"),
            head_dim_multiple=b.head_dim_multiple,
            d_model_multiple=b.d_model_multiple,
            d_ff_multiple=b.d_ff_multiple,
        )
        return Sample(solution.arch, train, {**choices, **budget_axes}, solution.counts, solution.deviation)


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _matches(conditions: dict[str, Any], known: dict[str, Any]) -> bool:
    return all(k in known and known[k] in _as_list(v) for k, v in conditions.items())


# --------------------------------------------------------------------------------------------
# Loading


def load_space(path: str | Path) -> Space:
    """Load and validate a space file; every error names the file, the key path and what is allowed."""
    data = load_mapping(path)
    return space_from_dict(data, path)


def space_from_dict(data: dict[str, Any], path: str | Path | None = None) -> Space:
    try:
        spec = SpaceFile.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key; allowed here: {_allowed_keys(err['loc'])}"
        raise SpaceError(path, key, msg) from None
    _check_semantics(spec, path)
    return Space(spec, str(path) if path else None)


def _allowed_keys(loc: tuple) -> str:
    top = ["name", "description", "arch", "train", "budget", "constraints"]
    if len(loc) == 1:
        return ", ".join(top)
    if loc[0] == "budget" and len(loc) == 2:
        return ", ".join(BudgetSpec.model_fields)
    return ", ".join(Axis.model_fields)


def _check_semantics(spec: SpaceFile, path: str | Path | None) -> None:
    fields = ArchConfig.model_fields
    seen: list[str] = []
    for name, axis in spec.arch.items():
        key = f"arch.{name}"
        if name not in fields:
            raise SpaceError(path, key, f"not an ArchConfig field; allowed: {', '.join(fields)}")
        _check_axis_values(path, key, name, axis)
        _check_when(path, key, axis, seen)
        seen.append(name)
    _check_base_shapes(spec, path)
    _check_global_every(spec, path)
    if spec.budget is not None:
        for name in spec.budget.free:
            if name in spec.arch:
                raise SpaceError(
                    path, f"arch.{name}", "is solved by the budget (budget.free); remove it from arch or from free"
                )
        for name in BUDGET_AXES:
            axis = getattr(spec.budget, name)
            if axis is not None:
                for v in _axis_values(axis):
                    if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
                        raise SpaceError(path, f"budget.{name}", f"must be positive numbers, got {v!r}")
                _check_when(path, f"budget.{name}", axis, seen)
    for name, axis in spec.train.items():
        key = f"train.{name}"
        if name not in SEARCHABLE_TRAIN_FIELDS:
            raise SpaceError(
                path, key, f"not a searchable training setting; allowed: {', '.join(SEARCHABLE_TRAIN_FIELDS)}"
            )
        _check_when(path, key, axis, seen)
    for i, c in enumerate(spec.constraints):
        for name, v in c.forbid.items():
            if name not in fields:
                raise SpaceError(
                    path, f"constraints.{i}.forbid.{name}", f"not an ArchConfig field; allowed: {', '.join(fields)}"
                )
            _check_values(path, f"constraints.{i}.forbid.{name}", name, _as_list(v))


def _check_base_shapes(spec: SpaceFile, path: str | Path | None) -> None:
    """base_d_model / base_n_layers only mean something under the parametrisations that read them:
    refuse a space where one is set for a parametrisation it could be sampled with that ignores it."""
    from archscale.spaces import variants

    p_axis = spec.arch.get("parametrization")
    possible = _axis_values(p_axis) if p_axis is not None else ["standard"]
    for name, rule in (("base_d_model", "width"), ("base_n_layers", "depth")):
        axis = spec.arch.get(name)
        if axis is None:
            continue
        when = _as_list((axis.when or {}).get("parametrization", possible))
        ignoring = [p for p in possible if p in when and not getattr(variants.PARAMETRIZATIONS.get(p), rule, True)]
        if ignoring:
            readers = [k for k, v in variants.PARAMETRIZATIONS.items() if getattr(v, rule)]
            raise SpaceError(
                path,
                f"arch.{name}",
                f"only read under parametrization in {{{', '.join(readers)}}}, but this space can sample "
                f"parametrization={ignoring[0]}; fix parametrization, or add when: {{parametrization: {readers}}}",
            )


def _check_global_every(spec: SpaceFile, path: str | Path | None) -> None:
    """global_every is only read with a window: refuse a space that can sample it with attention_window
    null (a `when` naming attention_window is true only for a window, since null is never a known value)."""
    axis = spec.arch.get("global_every")
    if axis is None or "attention_window" in (axis.when or {}):
        return
    window = spec.arch.get("attention_window")
    if window is None or None in _axis_values(window):
        sizes = [v for v in (_axis_values(window) if window is not None else []) if v is not None] or [64]
        raise SpaceError(
            path,
            "arch.global_every",
            "only read with attention_window, which this space can leave null (full attention); "
            f"add when: {{attention_window: {sizes}}} or fix attention_window",
        )


def _axis_values(axis: Axis) -> list[Any]:
    if axis.value is not None:
        return [axis.value]
    if axis.choices is not None:
        return list(axis.choices)
    return [axis.low, axis.high]


def _check_axis_values(path, key: str, name: str, axis: Axis) -> None:
    _check_values(path, key, name, _axis_values(axis) + ([axis.default] if axis.default is not None else []))


def _check_values(path, key: str, name: str, values: list[Any]) -> None:
    """Each value must be one ArchConfig field `name` could hold (its kind comes from the field's type)."""
    for v in values:
        problem = value_problem(name, v)
        if problem is not None:
            raise SpaceError(path, key, problem)


def _check_when(path, key: str, axis: Axis, seen: list[str]) -> None:
    for cond in axis.when or {}:
        if cond not in seen:
            raise SpaceError(
                path,
                f"{key}.when.{cond}",
                f"conditions may only name arch fields listed before this axis; allowed: {', '.join(seen) or '(none)'}",
            )


def shipped_spaces() -> dict[str, Path]:
    """The space files shipped with archscale, by name (`tiny`, `full`, ...)."""
    here = Path(__file__).parent
    return {p.stem: p for p in sorted(here.glob("*.yaml"))}


def resolve_space_path(name_or_path: str | Path) -> Path:
    """A path, or the name of a shipped space (`tiny` or `tiny.yaml`)."""
    p = Path(name_or_path)
    if p.exists():
        return p
    shipped = shipped_spaces()
    if p.stem in shipped and p.parent == Path("."):
        return shipped[p.stem]
    raise SpaceError(p, "", f"file not found (shipped spaces: {', '.join(shipped)})")
