"""What a trial is before it runs: a `Proposal`, and the `TrialPlan` that sets every trial's tokens.

Proposal strategies (`search/strategies/`) make proposals; the searcher records them and hands
Ray `Proposal.to_config()`; the trainable rebuilds the proposal from that config. A trial's token
budget is decided by one rule, `TrialPlan.tokens_for`; `TrialPlan.max_tokens` bounds it over a
space (ASHA's horizon).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from archscale.spaces.arch import ArchConfig
from archscale.spaces.counting import Counts
from archscale.spaces.errors import BudgetError
from archscale.spaces.space import Space


@dataclass(frozen=True)
class Proposal:
    """One trial, fixed before it starts: what Ray's `config` holds (as `to_config()`)."""

    number: int  # the Optuna trial number: `trial_id` in the results files
    seed: int
    arch: dict[str, Any] | None  # ArchConfig fields; None when the proposal is infeasible
    counts: dict[str, Any] | None
    train: dict[str, Any]  # TrainConfig fields for this trial (tokens and seed included)
    data: str
    target_tokens: int
    group: str | None = None  # a study's architecture name
    planned: tuple[str, float] | None = None  # a study's (size kind, planned size)
    error: str | None = None  # infeasible: recorded failed, never trains
    ladder: tuple[int, int] | None = None  # a ladder search's (ladder_id, rung); see search/strategies/ladder.py
    lr_factor: float | None = None  # a study's lr sweep: the trial's lr / the transferred lr

    def to_config(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Proposal:
        planned, ladder = config.get("planned"), config.get("ladder")
        return cls(
            **{**config, "planned": tuple(planned) if planned else None, "ladder": tuple(ladder) if ladder else None}
        )

    @property
    def arch_config(self) -> ArchConfig | None:
        return ArchConfig(**self.arch) if self.arch else None

    @property
    def counts_record(self) -> Counts | None:
        return Counts(**self.counts) if self.counts else None


@dataclass
class TrialPlan:
    """How every trial of a search is trained: length, data, fixed settings, seeds."""

    target_tokens: int | None = None  # fixed tokens per trial, or
    tokens_per_param: float | None = None  # tokens = ratio x active_params (= params for dense)
    data: str = "pystdlib"
    train_defaults: dict[str, Any] = field(default_factory=dict)
    seeds: int = 1
    base_seed: int = 0
    group: str | None = None  # recorded on every row (a search's name within a larger experiment)

    def tokens_for(self, counts: Any) -> int:
        """A trial's tokens: the fixed --tokens, or --tokens-per-param x the parameters one token uses
        (`active_params`, = params for a dense model), so a mixture of experts trains on as many
        tokens as the dense model of its active size and the two compare at equal compute."""
        if self.target_tokens:
            return int(self.target_tokens)
        return int(round(self.tokens_per_param * active_params(counts)))

    def max_tokens(self, space: Space, tries: int = 64) -> int:
        """An upper bound on `tokens_for` over the architectures `space` can propose at its budget:
        the fixed --tokens, or the largest `tokens_for` of `tries` sampled architectures (the same
        rule, so a budget counted without embeddings or by active parameters is bounded by what the
        trials really get; the scheduler puts its horizon at twice this)."""
        if self.target_tokens:
            return int(self.target_tokens)
        rng, largest = random.Random(0), 0
        for _ in range(tries):
            try:
                largest = max(largest, self.tokens_for(space.sample_random(rng).counts))
            except BudgetError:
                continue
        if not largest:
            raise BudgetError(f"no sampled architecture meets {space.budget.describe()}")
        return largest


def active_params(counts: Any) -> int:
    """`active_params` of a counts dict or `Counts` (results written before it existed: `params`)."""
    try:
        return int(counts["active_params"])
    except (KeyError, AttributeError):
        return int(counts["params"])
