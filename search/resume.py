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

A ladder search (search/ladder.py) resumes from its two studies and trials.parquet alone
(`_resume_ladders`): the ladders are rebuilt from the ladder study's parameters, completed rungs
keep their results, rungs that were training are trained again under their own numbers, and
missing rungs and ladders are run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from archscale.search.proposals import Proposal, SpaceProposals, TrialPlan
from archscale.search.results import ResultsWriter, write_json
from archscale.spaces.errors import BudgetError, UserError
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
    return SearchOptions(**{k: v for k, v in args.items() if k in SearchOptions.__dataclass_fields__})


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
    from archscale.search.run import run_trials
    from archscale.search.searcher import ProposalSearcher
    from archscale.search.storage import is_journal, repair_journal

    out = Path(out).resolve()
    if not (out / "run.json").exists():
        raise FileNotFoundError(f"{out}: not a results directory (no run.json)")
    run = json.loads((out / "run.json").read_text())
    if run.get("kind") not in ("search", "ladder-search"):
        raise UserError(f"{out}: resume works on searches; this directory holds a {run.get('kind')}")
    opts = _options(out, run, trials, address, storage, progress)
    space, study_spec, plan = prepare(opts)
    if is_journal(study_spec.storage) and (message := repair_journal(study_spec.storage)):
        say(message)
    if run["kind"] == "ladder-search":
        _resume_ladders(out, run, opts, space, study_spec, plan, say)
        return summarize(out)
    run_id = run.get("run_id")
    requested = opts.trials * opts.seeds
    experiments = _ray_experiments(out)

    if experiments:
        _restore(experiments[-1], opts, say)
    elif (out / "trials.parquet").exists():
        say(f"{out / 'ray'}: no Ray experiment folder; {FROM_STUDY}")

    study = study_spec.open()
    unfinished = sync_with_study(out, study, space, plan, run_id)
    owned = len(own_trials(study, run_id, out))
    total = len(unfinished) + max(0, requested - owned)
    if total:
        name = f"search-{len(experiments) + 1}" if experiments else "search"
        proposals = ReplayProposals(space, plan, unfinished, then=SpaceProposals(space, plan))
        searcher = ProposalSearcher(proposals, study_spec, out, run_id=run_id)
        max_tokens = plan.target_tokens or int(plan.tokens_per_param * space.budget.value)
        run_trials(searcher, study_spec, opts, out, total=total, max_tokens=max_tokens, experiment=name)
        sync_with_study(out, study_spec.open(), space, plan, run_id, replay=False)
    _record_resume(out, run, opts.trials, experiments)
    return summarize(out)


def _ray_experiments(out: Path) -> list[Path]:
    """This directory's Ray experiments in the order they ran: search, search-2, search-3, ..."""
    return sorted((out / "ray").glob("search*"), key=lambda p: (len(p.name), p.name))


def _record_resume(out: Path, run: dict[str, Any], trials: int, experiments: list[Path]) -> None:
    """run.json: the trial count now asked for, and one more entry in its resume history."""
    run["args"]["trials"] = trials
    run.setdefault("resumed", []).append({"trials": trials, "experiments": len(experiments)})
    write_json(out / "run.json", run)


def _resume_ladders(out: Path, run: dict[str, Any], opts, space, study_spec, plan, say: Callable[[str], None]) -> None:
    """A ladder search (search/ladder.py) resumes from its two studies and trials.parquet alone:
    the ladders are rebuilt from the ladder study's parameters, completed rungs keep their results,
    rungs that were training are trained again under their own numbers (from the start: Ray's
    experiment is not restored, since its searcher state would replay proposals out of step with
    the studies), missing rungs and ladders are run, and `--validate-top` runs if it had not."""
    from archscale.search.ladder import LadderProposals
    from archscale.search.options import ladder_plan, ladder_study
    from archscale.search.run import run_trials
    from archscale.search.searcher import ProposalSearcher

    ladder = ladder_plan(opts)
    proposals = LadderProposals(space, plan, ladder, ladder_study(opts, study_spec), opts.trials, out)
    proposals.restore_ladders()
    study = study_spec.open()
    run_id = run.get("run_id")
    unfinished = sync_with_study(out, study, space, plan, run_id, rebuild=proposals.proposal_for)
    proposals.restore_rungs(study, ResultsWriter(out).trials, unfinished)
    experiments = _ray_experiments(out)
    total = len(unfinished) + len(proposals.queue) + max(0, opts.trials - proposals.started) * ladder.rungs
    say(
        f"{out}: ladder search: {len(proposals.ladders)} of {opts.trials} ladders asked, "
        f"{sum(lad['told'] for lad in proposals.ladders.values())} told; {len(unfinished)} rung(s) to train "
        f"again, {len(proposals.queue)} not started; {FROM_STUDY}"
    )
    try:
        if total:
            searcher = ProposalSearcher(
                ReplayProposals(space, plan, unfinished, then=proposals, rebuild=proposals.proposal_for),
                study_spec,
                out,
                run_id=run_id,
            )
            top = space.budget.value * ladder.ratio ** (ladder.rungs - 1)
            max_tokens = plan.target_tokens or int(plan.tokens_per_param * top)
            name = f"search-{len(experiments) + 1}" if experiments else "search"
            run_opts = dataclasses.replace(opts, scheduler="none")
            run_trials(searcher, study_spec, run_opts, out, total=total, max_tokens=max_tokens, experiment=name)
            sync_with_study(out, study_spec.open(), space, plan, run_id, replay=False, rebuild=proposals.proposal_for)
    finally:
        proposals.close()
    _record_resume(out, run, opts.trials, experiments)
    if opts.validate_top and not (out / "validation.parquet").exists() and "validation" not in run:
        from archscale.search.validate import validate_top

        validate_top(proposals, opts, opts.validate_top, opts.validate_compute)


def _restore(experiment: Path, opts, say: Callable[[str], None]) -> bool:
    """Continue Ray's last experiment when its state is readable; say why not otherwise."""
    from ray import tune

    from archscale.clusters.connect import connect
    from archscale.search.run import quiet_tune, trial_resources
    from archscale.search.trial import run_trial

    if not (experiment / "tuner.pkl").exists():
        say(f"{experiment}: Ray's experiment state is missing; {FROM_STUDY}")
        return False
    problem = ray_state_problem(experiment)
    if problem:
        say(f"{experiment}: Ray's experiment state is unreadable ({problem}); {FROM_STUDY}")
        return False
    quiet_tune()
    connect(opts.address)
    trainable = tune.with_resources(run_trial, trial_resources(opts.cpus_per_trial, opts.gpus_per_trial))
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
    space,
    plan: TrialPlan,
    run_id: str | None,
    replay: bool = True,
    rebuild: Callable[[Any], Proposal | None] | None = None,
) -> list[int]:
    """Bring trials.parquet in line with the study for this directory's trials; return the numbers of
    those still RUNNING that can be replayed (all of them told FAIL when `replay` is False).
    `rebuild(trial)` gives the proposal a trial was asked with (default: from its parameters)."""
    import optuna

    rebuild = rebuild or functools.partial(replay_proposal, space, plan)
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
        if t.state == states.COMPLETE:
            writer.finish_trial(number, TrialStatus.COMPLETED, eval_loss=t.values[0])
        elif t.state == states.PRUNED:
            writer.finish_trial(number, TrialStatus.PRUNED, tokens=int(t.user_attrs.get("tokens", 0)))
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


def replay_proposal(space, plan: TrialPlan, t) -> Proposal | None:
    """The proposal an Optuna trial was asked with, rebuilt from its parameters (None if it has none yet)."""
    import optuna

    if "seed" not in t.user_attrs or ("arch" not in t.user_attrs and not t.params):
        return None
    seed = int(t.user_attrs["seed"])
    try:
        sample = space.sample(optuna.trial.FixedTrial(dict(t.params), number=t.number))
    except (BudgetError, ValueError) as e:
        error = f"infeasible: {e}"
        return Proposal(t.number, seed, None, None, {}, plan.data, 0, plan.group, error=error)
    arch, counts = sample.arch.to_dict(), sample.counts.to_dict()
    if t.user_attrs.get("arch") not in (None, arch):
        raise UserError(
            f"trial {t.number}: its parameters no longer give the architecture it was asked with "
            "(was the space file changed?); resume needs the same space"
        )
    tokens = plan.tokens_for(counts)
    return Proposal(
        number=t.number,
        seed=seed,
        arch=arch,
        counts=counts,
        train={**plan.train_defaults, **sample.train, "tokens": tokens, "seed": seed},
        data=plan.data,
        target_tokens=tokens,
        group=plan.group,
    )


class ReplayProposals:
    """Trials to train again under their own numbers first (see the module docstring), then new ones."""

    def __init__(self, space, plan: TrialPlan, numbers: list[int], then, rebuild=None):
        self.space, self.plan = space, plan
        self.pending = list(numbers)
        self.then = then
        self.rebuild = rebuild  # trial -> the proposal it was asked with (default: from its parameters)

    def propose(self, study: Any) -> Proposal | None:
        base = getattr(study, "_study", study)  # the searcher may hand a wrapper that tags new trials
        while self.pending:
            number = self.pending.pop(0)
            storage = base._storage
            t = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(base._study_id, number))
            if t.state.is_finished():
                continue
            proposal = self.rebuild(t) if self.rebuild else replay_proposal(self.space, self.plan, t)
            if proposal is not None:
                return proposal
        return self.then.propose(study)

    def finished(self, number: int, status: Any, report: Any) -> None:
        self.then.finished(number, status, report)

    def state(self) -> dict[str, Any]:
        return {"pending": list(self.pending), "then": self.then.state()}

    def restore(self, state: dict[str, Any]) -> None:
        self.pending = list(state.get("pending", self.pending))
        self.then.restore(state.get("then", {}))
