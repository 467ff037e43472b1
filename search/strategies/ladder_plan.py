"""A ladder search's plan: its rungs (sizes) and target, and how an architecture is solved at each.

Rung k's budget is the space's budget x ratio**k, solved by the budget solver with the choices
the ladder's Optuna trial made (`ReplayChooser`); `at_target` solves the same choices at the
target size. Plain data and arithmetic, read by the options (checks), the ladder strategy and
its validation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from archscale.search.proposals import TrialPlan
from archscale.spaces.errors import BudgetError, UserError
from archscale.spaces.space import Space

RISKS = ("mean", "ucb")


@dataclass(frozen=True)
class LadderPlan:
    rungs: int = 3
    ratio: float = 2.0  # each rung's budget is `ratio` times the one below
    risk: str = "mean"
    target_compute: float | None = None
    target_params: float | None = None
    prune_margin: float = 0.05  # nats behind the best rung 0 at which a ladder stops
    validate_top: int = 0  # after the search: train the top K at a held-out larger scale (ladder_validate.py)
    validate_compute: float | None = None  # that scale (default: 4x the largest rung's compute)
    validate_seeds: int = 1  # training seeds per validated architecture (the mean is compared)
    start_with: str | None = None  # a finished search's directory: its top `start_top` are the first ladders
    start_top: int = 3

    def check(self) -> None:
        if self.rungs < 3:
            raise UserError(f"--ladder: at least 3 rungs (a law in compute has 3 parameters), got {self.rungs}")
        if not self.ratio > 1:
            raise UserError(f"--ladder-ratio: must be > 1, got {self.ratio}")
        if self.risk not in RISKS:
            raise UserError(f"--risk: got {self.risk!r}; allowed: {', '.join(RISKS)}")
        if (self.target_compute is None) == (self.target_params is None):
            raise UserError("give exactly one of --target-compute C or --target-params N")
        for name, value in (("--target-compute", self.target_compute), ("--target-params", self.target_params)):
            if value is not None and not value > 0:
                raise UserError(f"{name}: must be > 0, got {value}")
        if self.validate_top < 0:
            raise UserError(f"--validate-top: must be >= 0, got {self.validate_top}")
        if not self.prune_margin >= 0:
            raise UserError(f"--ladder-prune-margin: must be >= 0 nats, got {self.prune_margin}")
        if self.validate_seeds < 1:
            raise UserError(f"--validate-seeds: must be >= 1, got {self.validate_seeds}")
        if self.start_top < 1:
            raise UserError(f"--start-top: must be >= 1, got {self.start_top}")
        if self.validate_compute is not None and not self.validate_compute > 0:
            raise UserError(f"--validate-compute: must be > 0 FLOPs, got {self.validate_compute}")

    def top_budget(self, space: Space) -> float:
        """The largest rung's budget value."""
        return space.budget.value * self.ratio ** (self.rungs - 1)


class ReplayChooser:
    """Answers a space's questions with the values an Optuna trial already chose (same names)."""

    def __init__(self, params: dict[str, Any]):
        self.params = params

    def categorical(self, name: str, choices: list[Any]) -> Any:
        return self.params[name]

    def integer(self, name: str, low: int, high: int, log: bool, step: int) -> int:
        return int(self.params[name])

    def real(self, name: str, low: float, high: float, log: bool, step: float | None) -> float:
        return float(self.params[name])


def rung_space(space: Space, rung: int, ratio: float) -> Space:
    """The space at rung `rung`: its budget times ratio**rung."""
    budget = space.budget
    return space.with_budget(budget.kind, budget.value * ratio**rung, budget.tolerance)


def at_target(space: Space, plan: TrialPlan, ladder: LadderPlan, params: dict[str, Any]) -> tuple[Any, float]:
    """The architecture at the target size (its sample) and the training compute there.

    `--target-params N`: solved at N parameters, trained for the search's tokens rule.
    `--target-compute C`: the budget scale whose solved size, trained by the tokens rule, spends C.
    """
    chooser = ReplayChooser(params)
    if ladder.target_params is not None:
        sample = space.with_budget("params", ladder.target_params, 0.05).sample_with(chooser)
        return sample, sample.counts.flops_per_token * plan.tokens_for(sample.counts)
    budget = space.budget

    def solved(scale: float):
        s = space.with_budget(budget.kind, budget.value * scale, max(budget.tolerance, 0.05)).sample_with(chooser)
        return s, s.counts.flops_per_token * plan.tokens_for(s.counts)

    lo, hi = 0.0, math.log(1e9)
    for _ in range(40):  # bisection on log(scale): compute grows with size
        mid = (lo + hi) / 2
        try:
            _, c = solved(math.exp(mid))
        except BudgetError:
            hi = mid
            continue
        lo, hi = (mid, hi) if c < ladder.target_compute else (lo, mid)
    sample, _ = solved(math.exp((lo + hi) / 2))
    return sample, float(ladder.target_compute)
