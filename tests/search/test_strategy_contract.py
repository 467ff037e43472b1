"""The proposal-strategy contract (search/strategies/contract.py), run against every strategy.

Each strategy is driven through the one `ProposalSearcher` exactly as Ray Tune drives it (suggest,
then on_trial_complete with the trial's last report), with a real Optuna journal study in
tmp_path and outcomes drawn from a known law; no Ray cluster, no training. A new strategy gets
every test here by adding one line to `FACTORIES` (and `test_every_registered_strategy_is_tested`
fails until it does).
"""

from __future__ import annotations

import dataclasses
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import polars as pl
import pytest
from ray.tune.search import Searcher

from archscale.search.proposals import TrialPlan
from archscale.search.resume import own_trials, sync_with_study
from archscale.search.searcher import ProposalSearcher
from archscale.search.storage import StudySpec
from archscale.search.strategies import STRATEGIES
from archscale.search.strategies.grid import GridProposals
from archscale.search.strategies.ladder import LadderProposals
from archscale.search.strategies.ladder_plan import LadderPlan
from archscale.search.strategies.replay import ReplayProposals
from archscale.search.strategies.space import SpaceProposals
from archscale.search.study import load_study_file, plan_grid
from archscale.search.trial import TrialReport
from archscale.spaces.record import TrialStatus
from archscale.spaces.space import space_from_dict
from tests.helpers import FOUR_ACTIVATIONS

RUN_ID = "contract"
SPACE = {**FOUR_ACTIVATIONS, "name": "contract"}
OFFSET = {"relu": 0.0, "swiglu": -0.1, "gelu": 0.05, "geglu": -0.05}  # each activation's level in the law


def _record(root: Path) -> StudySpec:
    return StudySpec(str(root / "optuna.journal"), "contract", ["eval_loss"], sampler="random", seed=0)


def _space_strategy(root: Path):
    plan = TrialPlan(target_tokens=4096, seeds=2)
    return SpaceProposals(space_from_dict(SPACE), plan, trials=6)


def _grid_strategy(root: Path):
    spec = load_study_file(
        {
            "base": {"vocab_size": 256, "seq_len": 32, "n_layers": 1, "n_heads": 2},
            "architectures": {"a": {"ffn_activation": "relu"}, "b": {"ffn_activation": "swiglu"}},
            "sizes": {"values": [12000, 24000, 36000]},
            "tokens": [4096],
        }
    )
    return GridProposals(plan_grid(spec), TrialPlan())


def _ladder_strategy(root: Path):
    ladder = LadderPlan(rungs=3, ratio=2.0, target_compute=1e12, prune_margin=10.0)
    ladders = StudySpec(str(root / "optuna.journal"), "contract-ladders", ["predicted_loss"], sampler="random")
    return LadderProposals(space_from_dict(SPACE), TrialPlan(tokens_per_param=4), ladder, ladders, 3, root)


#: strategy name -> a factory building it, identically, in a results directory (one line per strategy)
FACTORIES: dict[str, Callable[[Path], Any]] = {
    "space": _space_strategy,
    "grid": _grid_strategy,
    "ladder": _ladder_strategy,
}


def test_every_registered_strategy_is_tested():
    assert set(FACTORIES) == set(STRATEGIES)
    for name, factory in FACTORIES.items():
        assert type(factory(Path("/nonexistent"))).name == name


def _outcome(number: int, proposal: dict[str, Any], pattern: bool) -> TrialReport:
    """A deterministic last report: completed with a loss from a known law, or (with `pattern`)
    pruned (a last report still running) or failed, by the trial's number."""
    counts = proposal["counts"] or {}
    base = {"trial_number": number, "seed": proposal["seed"], "target_tokens": proposal["target_tokens"]}
    if proposal["error"]:
        return TrialReport(**base, status=TrialStatus.FAILED, error=proposal["error"])
    compute = counts["flops_per_token"] * proposal["target_tokens"]
    loss = 1.5 + 3.0 * (compute / 1e9) ** -0.3 + OFFSET[proposal["arch"]["ffn_activation"]]
    kind = number % 5 if pattern else 0
    if kind == 3:
        half = proposal["target_tokens"] // 2
        return TrialReport(**base, status=TrialStatus.RUNNING, tokens=half, compute=compute / 2, eval_loss=loss + 0.5)
    if kind == 4:
        return TrialReport(**base, status=TrialStatus.FAILED, error="diverged: non-finite loss at step 3")
    tokens = proposal["target_tokens"]
    return TrialReport(**base, status=TrialStatus.COMPLETED, tokens=tokens, compute=compute, eval_loss=loss)


@dataclass
class Driver:
    """Drives a ProposalSearcher as Ray Tune does: a free slot asks `suggest`; the oldest running
    trial completes when the strategy says WAIT (or when it has nothing more)."""

    searcher: ProposalSearcher
    pattern: bool = False
    running: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    proposed: list[dict[str, Any]] = field(default_factory=list)
    ended: dict[int, TrialStatus] = field(default_factory=dict)
    asked: int = 0

    def step(self) -> bool:
        """One suggest (and, if it waits or is finished, one completion); False when all is done."""
        self.asked += 1
        trial_id = f"ray-{id(self)}-{self.asked}"
        config = self.searcher.suggest(trial_id)
        if isinstance(config, dict):
            self.running.append((trial_id, config))
            self.proposed.append(config)
            return True
        assert config in (None, Searcher.FINISHED)
        if not self.running:
            assert config == Searcher.FINISHED, "WAIT with nothing running would hang the search"
            return False
        self.complete_oldest()
        return True

    def complete_oldest(self) -> None:
        trial_id, config = self.running.pop(0)
        report = _outcome(config["number"], config, self.pattern)
        if config["arch"]:  # an evaluation on the way (what the strategy is `reported`)
            half = {"status": TrialStatus.RUNNING, "tokens": config["target_tokens"] // 2, "eval_loss": 9.0}
            self.searcher.on_trial_result(trial_id, dataclasses.replace(report, **half).to_result())
        self.searcher.on_trial_complete(trial_id, result=report.to_result())
        self.ended[config["number"]] = TrialStatus.PRUNED if report.status == TrialStatus.RUNNING else report.status

    def run(self, steps: int | None = None) -> Driver:
        n = 0
        while (steps is None or n < steps) and self.step():
            n += 1
        return self


def _searcher(strategy, root: Path) -> ProposalSearcher:
    return ProposalSearcher(strategy, _record(root), root, run_id=RUN_ID)


def _signature(config: dict[str, Any]) -> tuple:
    """What must match between a strategy and its restored copy: everything a proposal says."""
    fields = ("number", "seed", "ladder", "planned", "group", "target_tokens", "arch", "counts", "train")
    return tuple(str(config[f]) for f in fields)


@pytest.mark.parametrize("name", FACTORIES)
def test_proposals_are_valid_and_on_budget(name, tmp_path):
    strategy = FACTORIES[name](tmp_path)
    total, horizon = strategy.total, strategy.max_tokens()
    driver = Driver(_searcher(strategy, tmp_path)).run()
    assert 0 < len(driver.proposed) <= total, "no more proposals than announced"
    for config in driver.proposed:
        assert config["arch"] and not config["error"]
        assert 0 < config["target_tokens"] == config["train"]["tokens"] <= horizon
        assert config["train"]["seed"] == config["seed"]
        counts = config["counts"]
        if config["planned"]:  # a study's point: at its planned size
            kind, size = config["planned"]
            assert counts[kind] == pytest.approx(size, rel=0.03)
        else:  # at the space's budget, or a ladder's rung (budget x ratio**rung), tokens by the one rule
            rung = config["ladder"][1] if config["ladder"] else 0
            assert counts["params"] == pytest.approx(12000 * 2.0**rung, rel=0.03)
            assert config["target_tokens"] == strategy.plan.tokens_for(counts)
    assert len({c["number"] for c in driver.proposed}) == len(driver.proposed), "one Optuna trial per proposal"


@pytest.mark.parametrize("name", FACTORIES)
def test_it_refuses_to_propose_past_its_trial_count(name, tmp_path):
    strategy = FACTORIES[name](tmp_path)
    searcher = _searcher(strategy, tmp_path)
    Driver(searcher).run()
    strategy.close()
    assert strategy.total == 0
    for i in range(3):
        assert searcher.suggest(f"late-{i}") == Searcher.FINISHED
    assert strategy.propose(_record(tmp_path).open()) is None


@pytest.mark.parametrize("name", FACTORIES)
def test_it_is_told_every_outcome_and_goes_on(name, tmp_path):
    """Completed, pruned and failed trials: each recorded once, in the study and trials.parquet,
    and the strategy still ends (it stops waiting for a trial that failed or was pruned)."""
    strategy = FACTORIES[name](tmp_path)
    reported = []
    told = strategy.reported
    strategy.reported = lambda number, report: reported.append(number) or told(number, report)
    driver = Driver(_searcher(strategy, tmp_path), pattern=True).run()
    strategy.close()
    # every evaluation told (a pruned trial's last one too, which Ray passes only with its completion)
    assert set(reported) == {c["number"] for c in driver.proposed if c["arch"]}
    assert all(reported.count(n) == 2 for n, s in driver.ended.items() if s == TrialStatus.PRUNED)
    assert set(driver.ended.values()) == {TrialStatus.COMPLETED, TrialStatus.PRUNED, TrialStatus.FAILED}
    states = {TrialStatus.COMPLETED: "COMPLETE", TrialStatus.PRUNED: "PRUNED", TrialStatus.FAILED: "FAIL"}
    record = {t.number: t for t in _record(tmp_path).open().get_trials(deepcopy=False)}
    assert set(record) == set(driver.ended)
    rows = {r["trial_id"]: r for r in pl.read_parquet(tmp_path / "trials.parquet").iter_rows(named=True)}
    for number, status in driver.ended.items():
        assert record[number].state.name == states[status]
        assert record[number].user_attrs["run_id"] == RUN_ID
        assert rows[number]["status"] == status.value
    if isinstance(strategy, LadderProposals):  # its own study: every ladder told, none left running
        assert all(t.state.is_finished() for t in strategy.study.get_trials(deepcopy=False))


def _copy(root: Path, into: Path) -> Path:
    shutil.copytree(root, into)
    return into


@pytest.mark.parametrize("name", FACTORIES)
def test_a_restored_strategy_continues_as_the_original(name, tmp_path):
    """Ray's searcher checkpoint (`state` / `restore`): a freshly built strategy restored from it,
    on a copy of the study, makes the proposals the original makes next (the original with its
    studies reopened, as a restored driver reopens them: the sampler continues from a seed
    derived from the trials so far), then refuses at the same count."""
    first = tmp_path / "first"
    first.mkdir()
    original = Driver(_searcher(FACTORIES[name](first), first), pattern=True).run(steps=4)
    original.searcher.save(str(tmp_path / "searcher.pkl"))
    original.searcher = pickle.loads(pickle.dumps(original.searcher))  # its studies reopened
    second = _copy(first, tmp_path / "second")
    restored = Driver(_searcher(FACTORIES[name](second), second), pattern=True)
    restored.searcher.restore(str(tmp_path / "searcher.pkl"))
    restored.running = list(original.running)  # Ray restores the trials that were running, as they were
    done, ended_before = len(original.proposed), set(original.ended)
    assert pickle.loads(pickle.dumps(original.searcher.proposals.state())) == original.searcher.proposals.state()
    original.run()
    restored.run()
    assert [_signature(c) for c in restored.proposed] == [_signature(c) for c in original.proposed[done:]]
    assert restored.ended == {n: s for n, s in original.ended.items() if n not in ended_before}
    assert restored.searcher.proposals.total == original.searcher.proposals.total == 0


@pytest.mark.parametrize("name", FACTORIES)
def test_resume_from_the_study_continues_as_the_original(name, tmp_path):
    """`search resume` (no Ray state): the driver dies with trials running; a freshly built strategy
    is told what the study and trials.parquet hold, trains the interrupted trials again under
    their own numbers, and ends with the trials an uninterrupted run has."""
    whole = tmp_path / "whole"
    whole.mkdir()
    uninterrupted = Driver(_searcher(FACTORIES[name](whole), whole)).run()
    uninterrupted.searcher.proposals.close()

    died = tmp_path / "died"
    died.mkdir()
    interrupted = Driver(_searcher(FACTORIES[name](died), died)).run(steps=5)
    assert interrupted.running, "the driver must die with trials running"
    strategy = FACTORIES[name](died)
    study = _record(died).open()
    plan = strategy.plan
    replaying = sync_with_study(died, study, plan, RUN_ID, rebuild=strategy.rebuild)
    assert sorted(replaying) == sorted(c["number"] for _, c in interrupted.running)
    from archscale.search.results import ResultsWriter

    strategy.resume(study, own_trials(study, RUN_ID, died), ResultsWriter(died).trials, replaying)
    resumed = Driver(_searcher(ReplayProposals(replaying, then=strategy), died)).run()
    strategy.close()
    replayed = [c for c in resumed.proposed if c["number"] in replaying]
    assert [_signature(c) for c in replayed] == [_signature(c) for _, c in interrupted.running], (
        "interrupted trials are trained again under their own numbers, as they were proposed"
    )

    def trials(root: Path) -> list[tuple]:  # numbers may interleave differently after a resume
        frame = pl.read_parquet(root / "trials.parquet")
        return sorted(frame.select("status", "seed", "ladder_id", "rung", "group").rows(), key=str)

    assert trials(died) == trials(whole)
    counts = {t.state for t in _record(died).open().get_trials(deepcopy=False)}
    assert optuna.trial.TrialState.RUNNING not in counts


def test_asha_horizon_covers_every_trial_budget_with_a_large_vocabulary(tmp_path):
    """Defect: ASHA's max_t was tokens_per_param x budget.value, below every trial's token budget
    when the budget leaves the embeddings out and the vocabulary is large,
    so every trial would have been stopped at max_t and recorded pruned. The horizon now comes from
    the one token rule (`TrialPlan.tokens_for`) through the strategy's `max_tokens`."""
    from archscale.search.schedulers import make_scheduler

    large_vocab = space_from_dict({**SPACE, "arch": {**SPACE["arch"], "vocab_size": 32768}})
    strategy = SpaceProposals(
        large_vocab.with_budget("non_embedding_params", 12000, 0.05), TrialPlan(tokens_per_param=4), 6
    )
    scheduler = make_scheduler("asha", ["eval_loss"], strategy.max_tokens())
    budgets = [c["target_tokens"] for c in Driver(_searcher(strategy, tmp_path)).run().proposed]
    assert budgets and scheduler._max_t > max(budgets), (scheduler._max_t, budgets)
    assert 2 * 4 * 12000 < min(budgets), "the old horizon, 2 x R x budget, was below every trial's budget"


def test_resume_takes_a_completed_trials_tokens_from_the_study(tmp_path):
    """The driver died after telling the study a trial completed but before trials.parquet said so:
    resume finishes the row with the study's tokens (the trial's last), not the row's older ones."""
    from archscale.search.results import ResultsWriter

    strategy = _space_strategy(tmp_path)
    driver = Driver(_searcher(strategy, tmp_path))
    assert driver.step()
    trial_id, config = driver.running.pop(0)
    half = config["target_tokens"] // 2
    report = _outcome(config["number"], config, pattern=False)
    driver.searcher.on_trial_result(
        trial_id, dataclasses.replace(report, status=TrialStatus.RUNNING, tokens=half).to_result()
    )
    driver.searcher.writer.flush()  # the evaluation's row reached trials.parquet
    study = _record(tmp_path).open()  # what the searcher tells first, before the row
    trial = study.trials[config["number"]]
    study._storage.set_trial_user_attr(trial._trial_id, "tokens", config["target_tokens"])
    study.tell(config["number"], [report.eval_loss])
    assert ResultsWriter(tmp_path).trials[config["number"]]["tokens"] == half  # the row is behind

    sync_with_study(tmp_path, study, strategy.plan, RUN_ID, rebuild=strategy.rebuild)
    row = ResultsWriter(tmp_path).trials[config["number"]]
    assert row["status"] == "completed" and row["tokens"] == config["target_tokens"]
    assert row["compute"] == pytest.approx(row["flops_per_token"] * config["target_tokens"])
