"""The proposal-strategy contract: what the one `ProposalSearcher` asks of every strategy.

A strategy decides which trials a run trains: their architectures, sizes, token budgets and seeds.
The searcher (`search/searcher.py`) owns everything else: the Ray Tune callbacks, the results
files, telling the record study each trial's outcome. Adding a strategy is one class implementing
`ProposalStrategy`, one line in `STRATEGIES` (`search/strategies/__init__.py`) and one line in the
contract suite's registry (`tests/search/test_strategy_contract.py`), which then runs every
contract test against it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from archscale.search.proposals import Proposal
from archscale.spaces.record import TrialStatus

#: `propose` returns this when it has nothing to run now but will once running trials finish.
WAIT = "wait"


class ProposalStrategy(ABC):
    """Where a run's trials come from. The contract, written once:

    Lifecycle. The run builds the strategy (`search/run.py::strategy_for`, the same for a first run
    and for `search resume`), calls `resume` once when it continues a results directory, then hands
    it to a `ProposalSearcher` (a first run writes `record()` into run.json). Ray Tune then drives
    it through the searcher: `propose` whenever a trial slot is free, `finished` once per trial that
    ended. After Ray has wound down the run calls `close`, then `conclude`. Every call runs on the
    driver, one at a time (no locking needed).

    The record study. `propose(study)` is handed the Optuna study that records every trained trial
    (its trial number is `trial_id` in the results files). The strategy asks it for exactly one
    trial per proposal (`study.ask()`; the searcher's wrapper tags it with the run's `run_id`),
    records on it whatever it needs to rebuild the proposal later (user attributes, or sampled
    parameters), and returns a `Proposal` carrying that trial's number. It never tells the record
    study an outcome: the searcher does, before calling `finished`. A strategy may keep a study of
    its own (the ladder strategy's ladder study, told predicted losses); that one it tells itself.

    Sizes. The strategy decides each trial's size and its token budget; the budget is always
    `TrialPlan.tokens_for(counts)` of the trial's counts (one rule), unless the strategy plans
    explicit tokens (a study grid, whose file states them). `max_tokens()` is an upper bound on every
    `Proposal.target_tokens` it will propose (ASHA's horizon comes from it: an underestimate
    would stop every trial at the horizon and record it pruned). `early_stopping` says whether a
    scheduler may stop its trials early (False when trials of different sizes are compared).

    Counting. `total` is the most proposals it will still make (Ray's `num_samples`, the progress
    count; it may make fewer, as the ladder strategy skips a duplicate or pruned ladder's rungs).
    After that many, `propose` returns None ("nothing more"), also on later calls; it returns
    `WAIT` when it has nothing to run until running trials finish (a ladder's larger rungs
    wait for its rung 0). It must not return WAIT when no trial it proposed is still running.

    Outcomes. `reported(number, report)` is called at every evaluation of a running trial it
    proposed (a `TrialReport` whose status is running), after the searcher recorded it.
    `finished(number, status, report)` is called once per trial the strategy proposed,
    with the status the searcher recorded (`TrialStatus.COMPLETED`, `PRUNED` or `FAILED`) and the
    trial's last `TrialReport` (None when the worker died before reporting). Numbers it did not
    propose (replayed trials of another strategy) are ignored. Every status must be handled: a
    strategy that waits for a trial must stop waiting when it failed or was pruned.

    Persistence. `state()` returns plain, picklable data and `restore(state)` continues from it
    (Ray's searcher checkpoint, `Searcher.save/restore`). `search resume` does not rely on Ray: it
    calls `resume(record, own, rows, replaying)` on a freshly built strategy with the record study,
    this directory's own trials in it (number -> FrozenTrial), the trials.parquet rows by number and
    the numbers that will be trained again; the strategy rebuilds its state from those (and from
    its own files in the results directory) so that it proposes what the interrupted one would
    have proposed next. `rebuild(trial)` returns the proposal a record-study trial was asked with
    (None if it cannot be rebuilt: it is then recorded failed), used to train interrupted trials
    again under their own numbers; resume may call it before `resume`. The results directory
    is the strategy's to write into for its own state (the ladder's predictions.parquet), but
    trials.parquet and curves.parquet are the searcher's alone.
    """

    #: the name `--strategy` and run.json use (the registry key in `STRATEGIES`)
    name: ClassVar[str]
    #: whether a scheduler (ASHA, Pareto stopping) may stop this strategy's trials early
    early_stopping: ClassVar[bool] = True
    #: whether `search resume` may first continue Ray's last experiment (`Tuner.restore`, which
    #: replays the pickled searcher); False when proposals must follow the studies instead
    ray_restorable: ClassVar[bool] = True

    @property
    @abstractmethod
    def total(self) -> int:
        """The most proposals this strategy will still make."""

    @abstractmethod
    def max_tokens(self) -> int:
        """An upper bound on the token budget of every trial it will propose."""

    @abstractmethod
    def propose(self, study: Any) -> Proposal | str | None:
        """One trial asked of `study` (a `Proposal`), `WAIT`, or None when it has nothing more."""

    def reported(self, number: int, report: Any) -> None:
        """A running trial it proposed reported an evaluation (a running `TrialReport`)."""
        return None

    def finished(self, number: int, status: TrialStatus, report: Any) -> None:
        """A trial it proposed ended with `status` (recorded); `report` is its last TrialReport or None."""
        return None

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Plain data that `restore` continues from."""

    @abstractmethod
    def restore(self, state: dict[str, Any]) -> None:
        """Continue from `state()` of an identically built strategy."""

    @abstractmethod
    def resume(
        self, record: Any, own: dict[int, Any], rows: dict[int, dict[str, Any]], replaying: list[int]
    ) -> str | None:
        """Rebuild the state of an interrupted run from its record study and results files; one
        line on what it found, for the user (or None)."""

    @abstractmethod
    def rebuild(self, trial: Any) -> Proposal | None:
        """The proposal a record-study trial was asked with, or None."""

    def close(self) -> None:
        """The run's trials have all ended (or the run stopped): settle anything still waiting."""
        return None

    def record(self) -> dict[str, Any]:
        """What run.json records about this strategy, over the run's own keys (plain JSON data)."""
        return {}

    def conclude(self, opts: Any) -> dict[str, Any]:
        """Work the strategy owes the run after `close` (`opts`: its SearchOptions); what to add to
        the run's summary."""
        return {}
