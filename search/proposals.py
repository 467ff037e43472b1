"""Where trials come from: a proposal strategy feeds the one searcher (`search/searcher.py`).

Two strategies, one contract:

- `SpaceProposals`: a search. Optuna's sampler proposes choices define-by-run from a space file;
  the space solves them to the budget. Seed replicas are enqueued Optuna trials with the same
  parameters and a `seed` user attribute.
- `GridProposals`: a scaling study. Every grid point is planned and solved before anything runs;
  each becomes one Optuna trial with no sampled parameters (its architecture and plan are user
  attributes), so trial numbers tie the results files to the study exactly as for a search.

The contract (written once, here): `propose(study)` asks the study for one trial, records on it
whatever identifies the proposal (user attributes), and returns a `Proposal`; `WAIT` when it has
nothing to run until running trials finish; or None when it has nothing more to propose.
`finished(number, status, report)` is called once per trial after the searcher has recorded its
outcome (the searcher's `TrialStatus` and last `TrialReport`, or None). Both run on the driver,
one call at a time. `state()` and `restore(state)` carry what a restored driver needs to continue
(plain, picklable data). A third strategy, `search/ladder.py::LadderProposals`, trains each
proposed architecture as a ladder of sizes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

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
    ladder: tuple[int, int] | None = None  # a ladder search's (ladder_id, rung); see search/ladder.py

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


#: `propose` returns this when it has nothing to run now but will once running trials finish.
WAIT = "wait"


class Proposals(Protocol):
    def propose(self, study: Any) -> Proposal | str | None: ...
    def finished(self, number: int, status: Any, report: Any) -> None: ...
    def state(self) -> dict[str, Any]: ...
    def restore(self, state: dict[str, Any]) -> None: ...


class SpaceProposals:
    """A search: Optuna samples the space; infeasible samples become failed trials with the reason."""

    def __init__(self, space: Space, plan: TrialPlan):
        self.space = space
        self.plan = plan

    def propose(self, study: Any) -> Proposal:
        trial = study.ask()
        seed = int(trial.user_attrs.get("seed", self.plan.base_seed))
        error, arch, train, counts = None, None, {}, None
        try:
            sample = self.space.sample(trial)
            arch, train, counts = sample.arch.to_dict(), dict(sample.train), sample.counts.to_dict()
            trial.set_user_attr("arch", arch)
            trial.set_user_attr("counts", counts)
            trial.set_user_attr("budget_deviation", sample.deviation)
        except (BudgetError, ValueError) as e:
            error = f"infeasible: {e}"
        trial.set_user_attr("seed", seed)
        if "replica_of" not in trial.user_attrs and arch is not None:
            for s in range(1, self.plan.seeds):  # seed replicas: same parameters, another seed
                study.enqueue_trial(
                    trial.params, user_attrs={"seed": self.plan.base_seed + s, "replica_of": trial.number}
                )
        tokens = self.plan.tokens_for(counts) if counts else 0
        trial.set_user_attr("target_tokens", tokens)
        return Proposal(
            number=trial.number,
            seed=seed,
            arch=arch,
            counts=counts,
            train={**self.plan.train_defaults, **train, "tokens": tokens, "seed": seed},
            data=self.plan.data,
            target_tokens=tokens,
            group=self.plan.group,
            error=error,
        )

    def finished(self, number: int, status: Any, report: Any) -> None:
        pass

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        pass


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
    # where a transferred lr came from (`study.transferred_lr`): search dir, trial, base lr and shapes;
    # recorded as the Optuna trial's user attributes. None when the lr was given.
    transfer: dict[str, Any] | None = None

    def __getitem__(self, key: str) -> Any:  # point["tokens"], as plan_grid's dict rows read before
        return getattr(self, key)


class GridProposals:
    """A scaling study: the planned grid points in order, then nothing more."""

    def __init__(self, points: list[GridPoint], plan: TrialPlan):
        self.points = points
        self.plan = plan
        self.next_index = 0

    def propose(self, study: Any) -> Proposal | None:
        if self.next_index >= len(self.points):
            return None
        point = self.points[self.next_index]
        self.next_index += 1
        trial = study.ask()
        for key in ("group", "arch", "counts", "seed", "size"):
            trial.set_user_attr(key, getattr(point, key))
        trial.set_user_attr("target_tokens", point.tokens)
        for key, value in (point.transfer or {}).items():
            trial.set_user_attr(key, value)
        return Proposal(
            number=trial.number,
            seed=point.seed,
            arch=point.arch,
            counts=point.counts,
            train={**self.plan.train_defaults, **point.train, "tokens": point.tokens, "seed": point.seed},
            data=self.plan.data,
            target_tokens=point.tokens,
            group=point.group,
            planned=(point.size_kind, point.size),
        )

    def finished(self, number: int, status: Any, report: Any) -> None:
        pass

    def state(self) -> dict[str, Any]:
        return {"next_index": self.next_index}

    def restore(self, state: dict[str, Any]) -> None:
        self.next_index = int(state.get("next_index", self.next_index))


def active_params(counts: Any) -> int:
    """`active_params` of a counts dict or `Counts` (results written before it existed: `params`)."""
    try:
        return int(counts["active_params"])
    except (KeyError, AttributeError):
        return int(counts["params"])
