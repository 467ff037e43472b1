"""Resume's wrapper strategy: interrupted trials trained again under their own numbers, then the wrapped strategy.

`search resume` finds trials still RUNNING in the record study (the driver died while they
trained); each is rebuilt by the wrapped strategy (`rebuild`) and proposed again with its own
Optuna trial number, so a completed trial is never repeated and none is counted twice. Then every
call goes to the wrapped strategy.
"""

from __future__ import annotations

from typing import Any

from archscale.search.proposals import Proposal
from archscale.search.strategies.contract import ProposalStrategy
from archscale.spaces.record import TrialStatus


class ReplayProposals(ProposalStrategy):
    """`numbers` (record-study trials) again first, then `then`."""

    name = "replay"

    def __init__(self, numbers: list[int], then: ProposalStrategy):
        self.pending = list(numbers)
        self.then = then
        self.early_stopping = then.early_stopping
        self.ray_restorable = then.ray_restorable

    @property
    def total(self) -> int:
        return len(self.pending) + self.then.total

    def max_tokens(self) -> int:
        return self.then.max_tokens()

    def propose(self, study: Any) -> Proposal | str | None:
        base = getattr(study, "_study", study)  # the searcher may hand a wrapper that tags new trials
        while self.pending:
            number = self.pending.pop(0)
            storage = base._storage
            t = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(base._study_id, number))
            if t.state.is_finished():
                continue
            proposal = self.then.rebuild(t)
            if proposal is not None:
                return proposal
        return self.then.propose(study)

    def reported(self, number: int, report: Any) -> None:
        self.then.reported(number, report)

    def finished(self, number: int, status: TrialStatus, report: Any) -> None:
        self.then.finished(number, status, report)

    def state(self) -> dict[str, Any]:
        return {"pending": list(self.pending), "then": self.then.state()}

    def restore(self, state: dict[str, Any]) -> None:
        self.pending = list(state.get("pending", self.pending))
        self.then.restore(state.get("then", {}))

    def resume(
        self, record: Any, own: dict[int, Any], rows: dict[int, dict[str, Any]], replaying: list[int]
    ) -> str | None:
        return self.then.resume(record, own, rows, replaying)

    def rebuild(self, trial: Any) -> Proposal | None:
        return self.then.rebuild(trial)

    def close(self) -> None:
        self.then.close()

    def record(self) -> dict[str, Any]:
        return self.then.record()

    def conclude(self, opts: Any) -> dict[str, Any]:
        return self.then.conclude(opts)
