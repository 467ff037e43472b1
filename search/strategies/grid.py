"""The grid strategy (a scaling study): every planned grid point in order, then nothing more.

Every point is planned and solved before anything runs (`search/study.py::plan_grid`); each
becomes one Optuna trial with no sampled parameters (its architecture and plan are user
attributes), so trial numbers tie the results files to the study exactly as for a search.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archscale.search.proposals import Proposal, TrialPlan
from archscale.search.strategies.contract import ProposalStrategy


@dataclass(frozen=True)
class GridPoint:
    """One planned trial of a scaling study."""

    group: str
    arch: dict[str, Any]
    counts: dict[str, Any]
    tokens: int
    seed: int
    size_kind: str
    size: float
    train: dict[str, Any]
    # where a transferred lr came from (`from_search.transferred_lr`): search dir, trial, base lr and shapes;
    # recorded as the Optuna trial's user attributes. None when the lr was given.
    transfer: dict[str, Any] | None = None
    lr_factor: float | None = None  # a study's lr sweep (`lr_sweep.factors`): this point's lr / the transferred lr

    def __getitem__(self, key: str) -> Any:  # point["tokens"], as plan_grid's dict rows read before
        return getattr(self, key)


class GridProposals(ProposalStrategy):
    """The planned grid points in order; a point's tokens are the study's (given, or by its rule)."""

    name = "grid"

    def __init__(self, points: list[GridPoint], plan: TrialPlan):
        self.points = points
        self.plan = plan
        self.next_index = 0

    @property
    def total(self) -> int:
        return len(self.points) - self.next_index

    def max_tokens(self) -> int:
        return max((p.tokens for p in self.points), default=1)

    def propose(self, study: Any) -> Proposal | None:
        if self.next_index >= len(self.points):
            return None
        index, point = self.next_index, self.points[self.next_index]
        self.next_index += 1
        trial = study.ask()
        for key in ("group", "arch", "counts", "seed", "size"):
            trial.set_user_attr(key, getattr(point, key))
        trial.set_user_attr("target_tokens", point.tokens)
        trial.set_user_attr("grid_index", index)
        for key, value in (point.transfer or {}).items():
            trial.set_user_attr(key, value)
        if point.lr_factor is not None:
            trial.set_user_attr("lr_factor", point.lr_factor)
        return self._proposal(trial.number, point)

    def _proposal(self, number: int, point: GridPoint) -> Proposal:
        return Proposal(
            number=number,
            seed=point.seed,
            arch=point.arch,
            counts=point.counts,
            train={**self.plan.train_defaults, **point.train, "tokens": point.tokens, "seed": point.seed},
            data=self.plan.data,
            target_tokens=point.tokens,
            group=point.group,
            planned=(point.size_kind, point.size),
            lr_factor=point.lr_factor,
        )

    def state(self) -> dict[str, Any]:
        return {"next_index": self.next_index}

    def restore(self, state: dict[str, Any]) -> None:
        self.next_index = int(state.get("next_index", self.next_index))

    def resume(
        self, record: Any, own: dict[int, Any], rows: dict[int, dict[str, Any]], replaying: list[int]
    ) -> str | None:
        self.next_index = max((int(t.user_attrs.get("grid_index", -1)) for t in own.values()), default=-1) + 1
        return None

    def rebuild(self, trial: Any) -> Proposal | None:
        index = trial.user_attrs.get("grid_index")
        return None if index is None else self._proposal(trial.number, self.points[int(index)])
