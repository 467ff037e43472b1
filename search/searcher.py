"""The one Ray Tune `Searcher` of archscale: proposals from a strategy, outcomes to Optuna and the results files.

Why not stock `OptunaSearch`: it tells Optuna COMPLETE with the last reported value even when ASHA
stopped the trial early, so the sampler learns from partial-budget losses as if they were final;
it cannot sample with our define-by-run space program, and it does not give us the trial number
that ties results files to the study. Here:

- `suggest` takes the next `Proposal` from the strategy (`search/strategies/`, behind the contract
  in `strategies/contract.py`: Optuna sampling a space, a planned grid, ladders of sizes), writes
  its trials.parquet row at once, and hands Ray its config.
- `on_trial_result` records every evaluation: a curve row, and an Optuna intermediate value
  (single objective).
- `on_trial_complete` decides the trial's status once (`trial.ended_as`) and records it in both
  places: Optuna COMPLETE (full budget reached), PRUNED (stopped early: the tokens reached go to
  the `tokens` user attribute) or FAIL (error, divergence, infeasible budget, dead worker), and the
  same status with the final result in trials.parquet.

The searcher is the only writer of the results directory during a run; its `ResultsWriter` is
passed in (or reopened from `out` after Ray restores a pickled searcher).

User attributes it puts on each Optuna trial (what optuna-dashboard shows): `label` (the
architecture, as in the report), `status` and `status_reason` (why it ended: completed at N tokens,
pruned at N of M tokens, or the error), and `run_id` (the results directory that asked for it: with
several drivers sharing one study, each resumes and reconciles only its own trials).
"""

from __future__ import annotations

import logging
import math
import pickle
from pathlib import Path
from typing import Any

from ray.tune import Stopper
from ray.tune.search import Searcher

from archscale.search.proposals import Proposal
from archscale.search.results import DiskFullError, ResultsWriter, disk_nearly_full, no_space
from archscale.search.storage import COST_OBJECTIVES, StudySpec
from archscale.search.strategies.contract import WAIT, ProposalStrategy
from archscale.search.trial import TrialReport, ended_as
from archscale.spaces.record import TrialStatus, new_trial_row

WORKER_DIED = "the trial's worker died and Ray's retries were used up (see the Ray experiment folder)"


class ProposalSearcher(Searcher):
    run_id: str | None = None  # searchers pickled before run ids existed

    def __init__(
        self,
        proposals: ProposalStrategy,
        study: StudySpec,
        out: str | Path,
        writer: ResultsWriter | None = None,
        run_id: str | None = None,
    ):
        super().__init__(metric="eval_loss", mode="min")
        self.proposals = proposals
        self.study_spec = study
        self.out = str(out)
        self.run_id = run_id
        self.ray_to_optuna: dict[str, int] = {}
        self._writer = writer
        self._study = None

    # the study and the writer hold open handles and locks: reopened lazily after pickling
    @property
    def study(self):
        if self._study is None:
            self._study = self.study_spec.open()
        return self._study

    @property
    def writer(self) -> ResultsWriter:
        if self._writer is None:
            self._writer = ResultsWriter(Path(self.out))
        return self._writer

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_study": None, "_writer": None}

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"ray_to_optuna": self.ray_to_optuna, "proposals": self.proposals.state()}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.ray_to_optuna.update(state["ray_to_optuna"])
        self.proposals.restore(state.get("proposals", {}))

    # ---- Ray Searcher interface ------------------------------------------------------------------
    # Each callback runs under `_guard`: a full disk (results files or a journal study on it) stops
    # the search with one DiskFullError (raised by `run_trials` after Ray has wound down, see
    # `StopOnWriteFailure`), never a traceback from inside Ray per trial.
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.out in WRITE_FAILURES:
            return Searcher.FINISHED
        return self._guard(self._suggest, trial_id)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._guard(self._on_trial_result, trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self._guard(self._on_trial_complete, trial_id, result, error)

    def _guard(self, callback, *args):
        if self.out in WRITE_FAILURES:
            return None
        try:
            return callback(*args)
        except Exception as e:
            if not (no_space(e) or disk_nearly_full(Path(self.out))):
                raise
            path = e.path if isinstance(e, DiskFullError) else Path(self.out) / "trials.parquet"
            WRITE_FAILURES[self.out] = e if isinstance(e, DiskFullError) else DiskFullError(path)
            logging.getLogger("ray").setLevel(logging.CRITICAL)  # Ray's own writes fail next: one error is enough
            return Searcher.FINISHED if callback == self._suggest else None

    def _suggest(self, trial_id: str) -> dict[str, Any] | None:
        proposal = self.proposals.propose(_Tagged(self.study, self.run_id) if self.run_id else self.study)
        if proposal is None:
            return Searcher.FINISHED
        if proposal == WAIT:
            return None  # Ray asks again later
        self.ray_to_optuna[trial_id] = proposal.number
        self.writer.add_trial(_row(proposal))
        arch = proposal.arch_config
        self._set_attr(proposal.number, "label", arch.label if arch else "(infeasible)")
        return proposal.to_config()

    def _set_attr(self, number: int, key: str, value: Any) -> None:
        storage = self.study._storage
        storage.set_trial_user_attr(
            storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number), key, value
        )

    def _on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        number = self.ray_to_optuna.get(trial_id)
        if number is None:
            return
        report = TrialReport.from_result(result)
        if report.status != TrialStatus.RUNNING:
            return
        self.writer.add_curve(number, report.__dict__)
        loss = report.final_loss
        if len(self.study_spec.objectives) == 1 and loss is not None:
            storage = self.study._storage
            optuna_id = storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
            storage.set_trial_intermediate_value(optuna_id, int(report.tokens), float(loss))
        self.proposals.reported(number, report)

    def _on_trial_complete(self, trial_id: str, result: dict[str, Any] | None, error: bool) -> None:
        import optuna

        number = self.ray_to_optuna.get(trial_id)
        if number is None:
            return
        last = TrialReport.from_result(result) if result and "trial_number" in result else None
        status = ended_as(last, worker_error=error)
        storage = self.study._storage
        optuna_id = storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
        if storage.get_trial(optuna_id).state.is_finished():
            return  # already told (e.g. a restored driver replaying a completion)
        if status == TrialStatus.PRUNED:  # Ray skips on_trial_result for the result that stopped the trial
            self._on_trial_result(trial_id, result)
        values = None
        if status == TrialStatus.COMPLETED:
            values = [_objective_value(o, last) for o in self.study_spec.objectives]
            if not all(v is not None and math.isfinite(v) for v in values):
                status, values = TrialStatus.FAILED, None
        fields = _final_fields(last, error)
        if status == TrialStatus.FAILED and not fields.get("error"):
            fields["error"] = "no finite objective value at the end of training"
        if status == TrialStatus.FAILED and no_space(OSError(str(fields.get("error")))):
            # the trial could not save its checkpoint: not its own fault, so not told failed
            raise DiskFullError(Path(self.out) / "ray", out=Path(self.out))
        # the study first: it is the source of truth `resume` rebuilds trials.parquet from
        storage.set_trial_user_attr(optuna_id, "tokens", int(last.tokens) if last else 0)
        if fields.get("error"):
            storage.set_trial_user_attr(optuna_id, "error", str(fields["error"])[:2000])
        storage.set_trial_user_attr(optuna_id, "status", status.value)
        storage.set_trial_user_attr(optuna_id, "status_reason", status_reason(status, last, fields.get("error")))
        if values is not None:
            self.study.tell(number, values)
        else:
            state = optuna.trial.TrialState.PRUNED if status == TrialStatus.PRUNED else optuna.trial.TrialState.FAIL
            self.study.tell(number, state=state)
        self.writer.finish_trial(number, status, **fields)
        self.proposals.finished(number, status, last)


#: results directory -> the write failure that stopped its search (read by `StopOnWriteFailure`)
WRITE_FAILURES: dict[str, DiskFullError] = {}


class StopOnWriteFailure(Stopper):
    """Ends the whole Ray Tune run once the results of `out` cannot be written (module level, so a
    restored run's unpickled stopper reads the live `WRITE_FAILURES`)."""

    def __init__(self, out: str | Path):
        self.out = str(out)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self.out in WRITE_FAILURES

    def stop_all(self) -> bool:
        return self.out in WRITE_FAILURES


class _Tagged:
    """The study as a proposal strategy sees it: each trial it asks is tagged with the run that asked."""

    def __init__(self, study, run_id: str):
        self._study, self._run_id = study, run_id

    def ask(self, *args, **kwargs):
        trial = self._study.ask(*args, **kwargs)
        trial.set_user_attr("run_id", self._run_id)
        return trial

    def __getattr__(self, name: str):
        return getattr(self._study, name)


def status_reason(status: TrialStatus, last: TrialReport | None, error: str | None) -> str:
    """One line on why a trial ended, for the dashboard (trials.parquet has the same facts in columns)."""
    tokens = int(last.tokens) if last else 0
    if status == TrialStatus.COMPLETED:
        return f"completed: trained {tokens:,} tokens"
    if status == TrialStatus.PRUNED:
        target = f" of {last.target_tokens:,}" if last else ""
        return f"pruned: stopped early by the scheduler at {tokens:,}{target} tokens"
    return f"failed: {error}" if error else "failed"


def _row(proposal: Proposal) -> dict[str, Any]:
    return new_trial_row(
        trial_id=proposal.number,
        seed=proposal.seed,
        arch=proposal.arch_config,
        train=proposal.train,
        counts=proposal.counts_record,
        target_tokens=proposal.target_tokens,
        group=proposal.group,
        planned=proposal.planned,
        ladder=proposal.ladder,
        lr_factor=proposal.lr_factor,
        status=TrialStatus.FAILED if proposal.error else TrialStatus.RUNNING,
        error=proposal.error,
    )


def _final_fields(last: TrialReport | None, worker_error: bool) -> dict[str, Any]:
    """The trials.parquet result columns from a trial's last report."""
    if last is None:
        return {"error": WORKER_DIED if worker_error else "the trial ended without reporting"}
    fields: dict[str, Any] = {"error": WORKER_DIED if worker_error else last.error}
    keys = (
        "tokens",
        "compute",
        "epochs",
        "tokens_per_s",
        "wall_s",
        "eval_bpb",
        "train_loss",
        "attention_backend",
        "run_status",
        "workers",
        "tokens_per_s_per_worker",
        "mfu",
    )
    for key in keys:
        value = getattr(last, key)
        if value is not None:
            fields[key] = value
    if last.eval_loss_by_length:
        fields["eval_loss_by_length"] = last.eval_loss_by_length
    if last.final_loss is not None:
        fields["eval_loss"] = last.final_loss
    return fields


def _objective_value(name: str, report: TrialReport) -> float | None:
    value = getattr(report, name, None)
    if value is None:
        return math.nan if name in COST_OBJECTIVES else None
    return float(value)
