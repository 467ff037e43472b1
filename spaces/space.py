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
from archscale.spaces.errors import (
    BudgetError,
    SpaceError,
    UserError,
    load_mapping,
    validation_error,
    validation_problem,
)
from archscale.spaces.schema import BUDGET_AXES, Axis, BudgetSpec, Constraint, SpaceFile, as_list
from archscale.spaces.shape_rule import ShapeRule, shape_stand_in
from archscale.spaces.shape_solver import solve_on_rule
from archscale.spaces.solver import BUDGET_KINDS, MAX_CANDIDATES, Budget, Solution, solve

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
    budget_from: str | None = None  # the flag that gave the budget (--budget-params); None: the file's budget
    _solved: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.budget is None and self.spec.budget is not None:
            b = self.spec.budget
            self.budget = Budget(b.kind, b.value, b.tolerance, b.flops_convention)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_solved": {}}  # the solve cache is rebuilt, not shipped to workers or checkpoints

    @property
    def budget_where(self) -> str:
        """Where the budget was given, for errors: the flag, or the file and its key."""
        return self.budget_from or f"{self.path or '<space>'}: budget.value"

    @property
    def name(self) -> str:
        return self.spec.name

    def with_budget(
        self, kind: str, value: float, tolerance: float | None = None, given_as: str | None = None
    ) -> Space:
        """A copy whose budget is overridden: errors about it name `given_as` (the --budget-* flag
        that gave it), by default where this space's budget was given (a ladder's rungs)."""
        if kind not in BUDGET_KINDS:
            raise SpaceError(self.path, "budget.kind", f"got {kind!r}; allowed: {', '.join(BUDGET_KINDS)}")
        given_as = given_as or self.budget_where
        if not value > 0:
            raise UserError(f"{given_as}: must be > 0, got {value:g}")
        tol = tolerance if tolerance is not None else (self.budget.tolerance if self.budget else 0.01)
        budget = Budget(kind, float(value), tol, self.flops_convention)  # type: ignore[arg-type]
        return Space(self.spec, self.path, budget, given_as)

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
            except ValidationError as e:
                key, message = validation_problem(e)
                raise BudgetError(f"invalid architecture: {f'{key}: ' if key else ''}{message}") from None
            return Sample(arch, train, {**choices, **budget_axes}, count(arch, self.flops_convention), 0.0)
        key = (self.budget, tuple(sorted(choices.items(), key=str)), tuple(sorted(budget_axes.items())))
        if key not in self._solved:  # one solve per distinct choice of the solved fields
            self._solved[key] = self._solve(choices, budget_axes)
        solution = self._solved[key]
        if isinstance(solution, BudgetError):
            raise type(solution)(str(solution))  # BelowRuleMinimum stays itself
        return Sample(solution.arch, train, {**choices, **budget_axes}, solution.counts, solution.deviation)

    def _choices_problem(self, choices: dict[str, Any], b: BudgetSpec) -> str | None:
        """Why these choices are invalid at any size (`qk_norm` without a norm, more experts per token
        than experts, ...), or None: ArchConfig's own rules, checked on the choices with stand-in
        shapes for the solved fields, so the error names the rule rather than a solved architecture."""
        n_heads = choices.get("n_heads", ArchConfig.model_fields["n_heads"].default)
        if self.spec.shape is not None:  # a shape on the rule stands in for the solved one
            return self._probe_problem({**shape_stand_in(self.spec.shape, choices), **choices})
        if "d_model" in b.free:
            head_dim = 2 * b.head_dim_multiple  # even, as on the solver's grid
        else:  # the solver's head_dim for a fixed d_model
            head_dim = choices.get("d_model", ArchConfig.model_fields["d_model"].default) // max(1, n_heads)
        head_dim = choices.get("head_dim") or head_dim
        stand_in = {"d_model": n_heads * head_dim, "d_ff": 4 * n_heads * head_dim}
        probe = {**{k: v for k, v in stand_in.items() if k in b.free}, "head_dim": head_dim, **choices}
        if "n_layers" in b.free:
            probe["n_layers"] = 1
        return self._probe_problem(probe)

    def _probe_problem(self, probe: dict[str, Any]) -> str | None:
        try:
            ArchConfig(**probe)
        except ValidationError as e:
            key, message = validation_problem(e)
            return f"{self.path or '<space>'}: invalid architecture: {f'{key}: ' if key else ''}{message}"
        return None

    def _solve(self, choices: dict[str, Any], budget_axes: dict[str, Any]) -> Solution | BudgetError:
        """The solver's architecture for these choices, or the error (naming where the budget was given)."""
        b = self.spec.budget or BudgetSpec(value=self.budget.value)
        problem = self._choices_problem(choices, b)
        if problem is not None:
            return BudgetError(problem)
        if self.spec.shape is not None:
            try:
                return solve_on_rule(
                    choices, self.budget, self.spec.shape, match_gated=b.match_gated, d_ff_multiple=b.d_ff_multiple
                )
            except BudgetError as e:
                return type(e)(f"{self.budget_where}: {e}")
        try:
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
        except BudgetError as e:
            return BudgetError(f"{self.budget_where}: {e}")
        if "d_model" in b.free:
            n_heads = choices.get("n_heads", ArchConfig.model_fields["n_heads"].default)
            step = b.d_model_multiple if choices.get("head_dim") else b.head_dim_multiple * n_heads
            if solution.arch.d_model >= MAX_CANDIDATES * step:  # the solver's largest width: the budget is beyond it
                more = "" if "n_layers" in b.free else ", or free n_layers"
                return BudgetError(
                    f"{self.budget_where}: {self.budget.describe()} is above the largest architecture these "
                    f"choices reach at ffn_ratio {budget_axes.get('ffn_ratio', 4.0)} (d_model at most "
                    f"{MAX_CANDIDATES * step:,}); lower the budget{more}"
                )
        return solution


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
        raise validation_error(e, path, allowed_keys=_allowed_keys) from None
    check_semantics(spec, path)
    return Space(spec, str(path) if path else None)


def _allowed_keys(loc: tuple) -> str:
    top = ["name", "description", "arch", "train", "budget", "shape", "constraints"]
    if len(loc) == 1:
        return ", ".join(top)
    if loc[0] == "budget" and len(loc) == 2:
        return ", ".join(BudgetSpec.model_fields)
    if loc[0] == "shape" and len(loc) == 2:
        return ", ".join(ShapeRule.model_fields)
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
