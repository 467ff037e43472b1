"""`archscale search resume DIR [--trials K2]`: finish an interrupted search, or extend a finished one.

The source of truth is the Optuna study plus the results files, not Ray's experiment folder, which
can be lost with a node or left unreadable by a crash (a truncated `tuner.pkl`: ray#58179).

1. A journal-file study whose last record was torn by the crash is repaired first
   (`storage.repair_journal`: every complete record kept, with a message).
2. When the last Ray experiment folder is there and readable, `Tuner.restore` continues it:
   unfinished trials restart from their last checkpoint (the trainer resumes exactly). When it is
   missing or corrupt, archscale says so and goes on without it: nothing below depends on it.
3. This directory's own trials (user attribute `run_id`; with several drivers on one study, the
   others' trials are never touched) are read from the study:
   - finished there (COMPLETE, PRUNED, FAIL): trials.parquet is brought in line (status, loss);
   - still RUNNING (the driver died while they trained, or asked them after Ray's last
     experiment checkpoint): they are trained again under the same Optuna trial number with the
     same proposal, replayed from the trial's own parameters (`optuna.trial.FixedTrial`), so a
     completed trial is never repeated and none is counted twice;
   - a trial asked but killed before its parameters were recorded cannot be replayed: it is told
     FAIL ("interrupted") and recorded so.
4. If the study then holds fewer of this directory's trials than requested (or `--trials K2` asks
   for more), new ones are proposed in the same study until the count is reached, in a new Ray
   experiment `search-2`, `search-3`, ...

Every strategy resumes the same way: the one built for a first run (`run.strategy_for`) is
told what the directory holds (`ProposalStrategy.resume`), rebuilds interrupted trials
(`rebuild`) and continues. A strategy whose proposals must follow its studies (the ladder
search: `ray_restorable = False`) skips step 2 and resumes from its studies and trials.parquet
alone (search/strategies/ladder_resume.py).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from archscale.search.proposals import Proposal, TrialPlan
from archscale.search.results import ResultsWriter, write_json
from archscale.spaces.errors import UserError
from archscale.spaces.record import TrialStatus

INTERRUPTED = "interrupted: the driver stopped before this trial's proposal was recorded"
FROM_STUDY = "resuming from the Optuna study and the results files"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _options(
    out: Path, run: dict[str, Any], trials: int | None, address: str | None, storage: str | None, progress: bool
):
    from archscale.search.options import SearchOptions

    args = dict(run["args"])
    args.update(out=str(out), address=address or args.get("address"), progress=progress)
    if storage:
        args["storage"] = storage
    elif args.get("storage") and "***" in args["storage"]:
        raise UserError(
            f"{out}: the study storage URL had a password, which run.json does not keep; "
            "pass it again with --storage URL (or give the password through PGPASSWORD / ~/.pgpass)"
        )
    if trials is not None:
        if trials < int(args["trials"]):
            raise UserError(f"--trials: {trials} is fewer than the {args['trials']} this search already asked for")
        args["trials"] = trials
    return SearchOptions.from_args(args)


def with_recorded_convention(space: Any, run: dict[str, Any]) -> Any:
    """The space with the FLOP convention its first run counted in (run.json's budget), so a resumed
    or extended search never mixes conventions; a run.json from before conventions were recorded
    counted the dense way."""
    import dataclasses

    recorded = (run.get("budget") or {}).get("flops_convention", "dense")
    if space.budget is None or space.budget.flops_convention == recorded:
        return space
    return dataclasses.replace(space, budget=dataclasses.replace(space.budget, flops_convention=recorded))


def resume_search(
    out: str | Path,
    trials: int | None = None,
    address: str | None = None,
    progress: bool = True,
    storage: str | None = None,
    say: Callable[[str], None] = _say,
) -> dict[str, Any]:
    from archscale.search.options import prepare
    from archscale.search.results import summarize
    from archscale.search.run import strategy_for
    from archscale.search.runner import run_trials
    from archscale.search.searcher import ProposalSearcher
    from archscale.search.storage import is_journal, repair_journal
    from archscale.search.strategies.replay import ReplayProposals

    out = Path(out).resolve()
    if not (out / "run.json").exists():
        raise FileNotFoundError(f"{out}: not a results directory (no run.json)")
    run = json.loads((out / "run.json").read_text())
    if run.get("kind") not in ("search", "ladder-search"):
        raise UserError(f"{out}: resume works on searches; this directory holds a {run.get('kind')}")
    opts = _options(out, run, trials, address, storage, progress)
    space, study_spec, plan = prepare(opts)
    space = with_recorded_convention(space, run)
    if is_journal(study_spec.storage) and (message := repair_journal(study_spec.storage)):
        say(message)
    run_id = run.get("run_id")
    strategy = strategy_for(opts, space, plan, study_spec)
    experiments = _ray_experiments(out)
    if experiments and strategy.ray_restorable:
        _restore(experiments[-1], opts, say)
    elif (out / "trials.parquet").exists() and strategy.ray_restorable:
        say(f"{out / 'ray'}: no Ray experiment folder; {FROM_STUDY}")

    study = study_spec.open()
    unfinished = sync_with_study(out, study, plan, run_id, rebuild=strategy.rebuild)
    found = strategy.resume(study, own_trials(study, run_id, out), ResultsWriter(out).trials, unfinished)
    if found:
        say(f"{out}: {found}; {len(unfinished)} trial(s) to train again; {FROM_STUDY}")
    replay = ReplayProposals(unfinished, then=strategy)
    if replay.total:
        name = f"search-{len(experiments) + 1}" if experiments else "search"
        searcher = ProposalSearcher(replay, study_spec, out, run_id=run_id)
        try:
            run_trials(searcher, study_spec, opts.execution, out, opts.strategy.scheduler, experiment=name)
            sync_with_study(out, study_spec.open(), plan, run_id, replay=False, rebuild=strategy.rebuild)
        finally:
            strategy.close()
    else:
        strategy.close()
    _record_resume(out, run, opts.trials, experiments)
    strategy.conclude(opts)
    return summarize(out)


def _ray_experiments(out: Path) -> list[Path]:
    """This directory's Ray experiments in the order they ran: search, search-2, search-3, ..."""
    return sorted((out / "ray").glob("search*"), key=lambda p: (len(p.name), p.name))


def _record_resume(out: Path, run: dict[str, Any], trials: int, experiments: list[Path]) -> None:
    """run.json: the trial count now asked for, and one more entry in its resume history."""
    run["args"]["trials"] = trials
    run.setdefault("resumed", []).append({"trials": trials, "experiments": len(experiments)})
    write_json(out / "run.json", run)


def _restore(experiment: Path, opts, say: Callable[[str], None]) -> bool:
    """Continue Ray's last experiment when its state is readable; say why not otherwise."""
    from ray import tune

    from archscale.clusters.connect import connect
    from archscale.search.runner import quiet_tune
    from archscale.search.runner import trainable as runner_trainable

    if not (experiment / "tuner.pkl").exists():
        say(f"{experiment}: Ray's experiment state is missing; {FROM_STUDY}")
        return False
    problem = ray_state_problem(experiment)
    if problem:
        say(f"{experiment}: Ray's experiment state is unreadable ({problem}); {FROM_STUDY}")
        return False
    quiet_tune()
    execution = opts.execution
    connect(execution.address)
    trainable = runner_trainable(execution)  # several workers per trial too, as the first run had
    try:
        tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True, resume_errored=True)
        with contextlib.redirect_stdout(sys.stderr):
            tuner.fit()
    except Exception as e:  # a truncated tuner.pkl (ray#58179), a corrupt experiment state, ...
        what = f"{type(e).__name__}: {e}".strip().splitlines()[0][:300]
        say(f"{experiment}: Ray's experiment state is unreadable ({what}); {FROM_STUDY}")
        return False
    return True


def ray_state_problem(experiment: Path) -> str | None:
    """What is wrong with Ray's saved experiment state, or None. Checked before `Tuner.restore`
    because Ray, on an unreadable experiment or searcher state, logs a traceback and silently
    starts the whole experiment again (new trials up to the full count): never what resume wants."""
    from ray import cloudpickle

    newest = [
        max(experiment.glob(pattern), key=lambda p: p.stat().st_mtime, default=None)
        for pattern in ("experiment_state-*.json", "searcher-state-*.pkl")
    ]
    for path in [experiment / "tuner.pkl", *newest]:
        if path is None:
            return "no experiment state file"
        try:
            with open(path, "rb") as f:
                json.load(f) if path.suffix == ".json" else cloudpickle.load(f)
        except Exception as e:  # truncated (ray#58179), zero-filled, half-written on a full disk, ...
            return f"{path.name}: {type(e).__name__}: {e}".strip()[:300]
    return None


def own_trials(study, run_id: str | None, out: Path) -> dict[int, Any]:
    """This directory's trials in the study, by number: tagged with its run_id, or in its trials.parquet.
    A directory written before run ids existed owns the whole study (one driver per study then)."""
    import optuna

    rows = ResultsWriter(out).trials
    trials = study.get_trials(deepcopy=False)
    return {
        t.number: t
        for t in trials
        if t.state != optuna.trial.TrialState.WAITING
        and (run_id is None or t.user_attrs.get("run_id") == run_id or t.number in rows)
    }


def sync_with_study(
    out: Path,
    study,
    plan: TrialPlan,
    run_id: str | None,
    rebuild: Callable[[Any], Proposal | None],
    replay: bool = True,
) -> list[int]:
    """Bring trials.parquet in line with the study for this directory's trials; return the numbers of
    those still RUNNING that can be replayed (all of them told FAIL when `replay` is False).
    `rebuild(trial)` gives the proposal a trial was asked with (the strategy's `rebuild`)."""
    import optuna

    states = optuna.trial.TrialState
    writer = ResultsWriter(out)  # no run is going on: this is the directory's only writer now
    unfinished: list[int] = []
    for number, t in sorted(own_trials(study, run_id, out).items()):
        row = writer.trials.get(number)
        if t.state == states.RUNNING:
            proposal = rebuild(t) if replay else None
            if proposal is not None:
                unfinished.append(number)
                continue
            error = "interrupted: the trial did not finish" if "arch" in t.user_attrs else INTERRUPTED
            study.tell(number, state=states.FAIL)
            t = study._storage.get_trial(t._trial_id)
            row = row or _recorded_row(plan, t, rebuild)
            writer.trials[number] = row
            writer.finish_trial(number, TrialStatus.FAILED, error=row.get("error") or error)
            continue
        if row is None:  # finished in the study, never written here (the driver died in between)
            row = writer.trials[number] = _recorded_row(plan, t, rebuild)
        if row["status"] != TrialStatus.RUNNING:
            continue
        # the study was told first (searcher.py): its tokens are the trial's last, the row's may be older
        tokens = int(t.user_attrs.get("tokens") or row.get("tokens") or 0)
        seen = {"tokens": tokens}
        if row.get("flops_per_token"):
            seen["compute"] = float(row["flops_per_token"]) * tokens
        if t.state == states.COMPLETE:
            writer.finish_trial(number, TrialStatus.COMPLETED, eval_loss=t.values[0], **seen)
        elif t.state == states.PRUNED:
            writer.finish_trial(number, TrialStatus.PRUNED, **seen)
        else:
            writer.finish_trial(number, TrialStatus.FAILED, error=t.user_attrs.get("error") or "interrupted")
    writer.flush()
    return unfinished


def _recorded_row(plan: TrialPlan, t, rebuild: Callable[[Any], Proposal | None]) -> dict[str, Any]:
    from archscale.search.searcher import _row

    proposal = rebuild(t)
    if proposal is None:
        seed = int(t.user_attrs.get("seed", plan.base_seed))
        proposal = Proposal(t.number, seed, None, None, {}, plan.data, 0, plan.group, error=INTERRUPTED)
    return _row(proposal)
