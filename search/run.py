"""A search from its options: the strategy they ask for, run.json, the run, and what the strategy concludes.

    run_search(SearchOptions(space="tiny", out="results/x", trials=12, budget=BudgetOptions(tokens=400_000)))

`strategy_for` is the one place options become a proposal strategy (`search/strategies/`), for a
first run and for `search resume` alike; `start_search` writes run.json and builds the searcher
(always tagged with the directory's `run_id`); `run_search` runs it with `search/runner.py` and
lets the strategy close and conclude (a ladder search's `--validate-top`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from archscale.search.options import BudgetOptions, SearchOptions, ladder_study, prepare
from archscale.search.proposals import TrialPlan
from archscale.search.results import describe_environment, write_json
from archscale.search.runner import EXPERIMENT, run_trials
from archscale.search.storage import StudySpec
from archscale.search.strategies.contract import ProposalStrategy
from archscale.spaces.space import Space

__all__ = ["BudgetOptions", "SearchOptions", "prepare", "run_search", "start_search", "strategy_for"]


def strategy_for(opts: SearchOptions, space: Space, plan: TrialPlan, study: StudySpec) -> ProposalStrategy:
    """The proposal strategy `opts` asks for (a ladder search with a target, else the space
    search), able to propose every trial the options ask for."""
    ladder = opts.strategy.ladder
    if ladder is not None:
        from archscale.search.strategies.ladder import LadderProposals

        return LadderProposals(space, plan, ladder, ladder_study(opts, study), opts.trials, Path(opts.out).resolve())
    from archscale.search.strategies.space import SpaceProposals

    return SpaceProposals(space, plan, opts.trials * opts.budget.seeds)


def start_search(opts: SearchOptions):
    """Check the options, write run.json into a new results directory and build its searcher.
    Returns (searcher, study spec)."""
    from archscale.clusters.connect import redact
    from archscale.search.searcher import ProposalSearcher

    space, study, plan = prepare(opts)
    out = Path(opts.out).resolve()
    if (out / "run.json").exists():
        raise FileExistsError(
            f"{out}: already holds a search (run.json); use `archscale search resume {opts.out}` "
            "to continue or extend it, or choose a new --out"
        )
    ladder = opts.strategy.ladder
    start = None
    if ladder is not None and ladder.start_with:  # checked before anything is written
        from archscale.search.strategies.ladder_start import start_params

        start = start_params(ladder.start_with, space, ladder.start_top)
    out.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:12]
    strategy = strategy_for(opts, space, plan, study)
    run_info = {
        "kind": "search",
        "run_id": run_id,  # tags this directory's trials in a study several drivers share
        "space": space.spec.model_dump(mode="json"),
        "space_file": space.path,
        "budget": asdict(space.budget),
        "args": {**opts.to_args(), "storage": redact(opts.execution.storage)},
        "objectives": [{"name": o, "direction": d} for o, d in zip(study.objectives, study.directions, strict=True)],
        "storage": redact(study.storage) if opts.execution.storage else study.storage,
        "study_name": study.study_name,
        "experiment": str(out / "ray" / EXPERIMENT),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **describe_environment(),
        **strategy.record(),  # a ladder search: its kind, plan, ladder study and objectives
    }
    if start is not None:
        from archscale.search.strategies.ladder_start import enqueue_start

        enqueue_start(strategy.study, start, str(Path(ladder.start_with).resolve()))
        run_info["started_with"] = {
            "dir": str(Path(ladder.start_with).resolve()),
            "architectures": [
                {k: one[k] for k in ("label", "arch_id", "eval_loss", "trial", "tokens", "completed")} for one in start
            ],
        }
    write_json(out / "run.json", run_info)
    return ProposalSearcher(strategy, study, out, run_id=run_id), study


def run_search(opts: SearchOptions) -> dict[str, Any]:
    """Run a search into `opts.out` and return its summary (counts by status, best trials)."""
    searcher, study = start_search(opts)
    return run_strategy(searcher, study, opts)


def run_strategy(
    searcher, study: StudySpec, opts: SearchOptions, experiment: str = EXPERIMENT, before_conclude=None
) -> dict[str, Any]:
    """Run `searcher` to the end, then let its strategy close and conclude (`before_conclude()` is
    called in between: the quickstart announces a ladder search's held-out check); the run's summary."""
    strategy: ProposalStrategy = searcher.proposals
    out = Path(opts.out).resolve()
    try:
        summary = run_trials(searcher, study, opts.execution, out, opts.strategy.scheduler, experiment=experiment)
    finally:
        strategy.close()
    if before_conclude is not None:
        before_conclude()
    summary.update(strategy.conclude(opts))
    return summary
