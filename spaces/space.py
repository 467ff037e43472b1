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

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from archscale.spaces.arch import ArchConfig
from archscale.spaces.checks import check_semantics
from archscale.spaces.choosers import Chooser, OptunaChooser, RandomChooser
from archscale.spaces.counting import DEFAULT_FLOPS_CONVENTION, Counts, FlopsConvention, count
from archscale.spaces.errors import BudgetError, SpaceError, load_mapping
from archscale.spaces.schema import BUDGET_AXES, Axis, BudgetSpec, Constraint, SpaceFile, as_list
from archscale.spaces.solver import BUDGET_KINDS, Budget, solve

__all__ = [
    "Axis",
    "BudgetSpec",
    "Chooser",
    "Constraint",
    "OptunaChooser",
    "RandomChooser",
    "Sample",
    "Space",
    "SpaceFile",
    "load_space",
    "resolve_space_path",
    "shipped_spaces",
    "space_from_dict",
]

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
            b = self.spec.budget
            self.budget = Budget(b.kind, b.value, b.tolerance, b.flops_convention)

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
        return Space(self.spec, self.path, Budget(kind, float(value), tol, self.flops_convention))  # type: ignore[arg-type]

    @property
    def flops_convention(self) -> FlopsConvention:
        """How this space's FLOP counts charge attention: its budget's setting, else the default."""
        return self.budget.flops_convention if self.budget else DEFAULT_FLOPS_CONVENTION

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
                banned = as_list(c.forbid[name])
                allowed = [a for a in allowed if a not in banned]
        return allowed

    def _resolve(self, choices: dict[str, Any], budget_axes: dict[str, Any], train: dict[str, Any]) -> Sample:
        for c in self.spec.constraints:  # constraints between fixed or range values
            if all(k in choices for k in c.forbid) and _matches(c.forbid, choices):
                raise BudgetError(f"constraints: the combination {c.forbid} is forbidden")
        train = {**train, "flops_convention": self.flops_convention}  # the trainer counts compute the same way
        if self.budget is None:
            try:
                arch = ArchConfig(**choices)
            except ValueError as e:
                raise BudgetError(f"invalid architecture: {e}") from None
            return Sample(arch, train, {**choices, **budget_axes}, count(arch, self.flops_convention), 0.0)
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


def _matches(conditions: dict[str, Any], known: dict[str, Any]) -> bool:
    return all(k in known and known[k] in as_list(v) for k, v in conditions.items())


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
    check_semantics(spec, path)
    return Space(spec, str(path) if path else None)


def _allowed_keys(loc: tuple) -> str:
    top = ["name", "description", "arch", "train", "budget", "constraints"]
    if len(loc) == 1:
        return ", ".join(top)
    if loc[0] == "budget" and len(loc) == 2:
        return ", ".join(BudgetSpec.model_fields)
    return ", ".join(Axis.model_fields)


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
