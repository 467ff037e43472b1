"""`archscale search resume DIR [--trials K2]`: finish an interrupted search, or extend a finished one.

What is restored, and from where:
1. `ray.tune.Tuner.restore(DIR/ray/<experiment>)` restores Ray Tune's experiment state as last
   checkpointed by the driver: finished trials stay finished, unfinished ones restart from their
   last checkpoint (the trainer resumes exactly), and the search algorithm keeps generating trials
   up to the requested count. The searcher's own state (the Ray-to-Optuna trial map) is restored
   from its saved file; the Optuna study reconnects from its storage, which holds every ask/tell;
   seed replicas still waiting in the study are asked next.
2. ASHA's rung records are restored with the experiment state; the Pareto-stopping scheduler's
   curves of finished trials are not (it starts empty after a resume, so it stops less, never wrongly).
3. Reconciliation: an Optuna trial still RUNNING after the restored run (asked by the killed
   driver after Ray's last experiment checkpoint, so Ray never knew it) is told FAIL and recorded
   as failed with "interrupted", never silently dropped nor counted twice.
4. If the results hold fewer trials than requested (or `--trials K2` asks for more), a new Ray
   experiment `search-2`, `search-3`, ... continues the same study until the count is reached.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from archscale.search.results import ResultsWriter, write_json
from archscale.spaces.errors import UserError
from archscale.spaces.record import TrialStatus


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
            "pass it again with --storage URL"
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
) -> dict[str, Any]:
    from archscale.search.options import prepare
    from archscale.search.results import summarize
    from archscale.search.run import run_trials

    out = Path(out).resolve()
    if not (out / "run.json").exists():
        raise FileNotFoundError(f"{out}: not a results directory (no run.json)")
    run = json.loads((out / "run.json").read_text())
    if run.get("kind") != "search":
        raise UserError(f"{out}: resume works on searches; this directory holds a {run.get('kind')}")
    opts = _options(out, run, trials, address, storage, progress)
    space, study, plan = prepare(opts)
    requested = opts.trials * opts.seeds
    experiments = sorted((out / "ray").glob("search*"), key=lambda p: (len(p.name), p.name))

    if experiments and (experiments[-1] / "tuner.pkl").exists():
        _restore(experiments[-1], opts)
    _reconcile(out, study)

    done = len(ResultsWriter(out).trials)
    if done < requested:
        from archscale.search.proposals import SpaceProposals
        from archscale.search.searcher import ProposalSearcher

        name = f"search-{len(experiments) + 1}" if experiments else "search"
        searcher = ProposalSearcher(SpaceProposals(space, plan), study, out)
        max_tokens = plan.target_tokens or int(plan.tokens_per_param * space.budget.value)
        run_trials(searcher, study, opts, out, total=requested - done, max_tokens=max_tokens, experiment=name)
        _reconcile(out, study)
    run["args"]["trials"] = opts.trials
    run.setdefault("resumed", []).append({"trials": opts.trials, "experiments": len(experiments)})
    write_json(out / "run.json", run)
    return summarize(out)


def _restore(experiment: Path, opts) -> None:
    from ray import tune

    from archscale.clusters.connect import connect
    from archscale.search.run import trial_resources
    from archscale.search.trial import run_trial

    connect(opts.address)
    trainable = tune.with_resources(run_trial, trial_resources(opts.cpus_per_trial, opts.gpus_per_trial))
    tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True, resume_errored=True)
    with contextlib.redirect_stdout(sys.stderr):
        tuner.fit()


def _reconcile(out: Path, study_spec) -> None:
    """Make trials.parquet and the study agree after an interruption (see the module docstring)."""
    import optuna

    study = study_spec.open()
    writer = ResultsWriter(out)  # the run above has ended: this is the directory's only writer now
    states = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number, t in states.items():
        if t.state == optuna.trial.TrialState.RUNNING:
            study.tell(number, state=optuna.trial.TrialState.FAIL)
            writer.finish_trial(
                number, TrialStatus.FAILED, error="interrupted: the driver stopped before Ray recorded this trial"
            )
    for number, row in list(writer.trials.items()):
        t = states.get(number)
        if row["status"] != TrialStatus.RUNNING or t is None:
            continue
        if t.state == optuna.trial.TrialState.COMPLETE:
            writer.finish_trial(number, TrialStatus.COMPLETED, eval_loss=t.values[0])
        elif t.state == optuna.trial.TrialState.PRUNED:
            writer.finish_trial(number, TrialStatus.PRUNED)
        else:
            writer.finish_trial(number, TrialStatus.FAILED, error=row.get("error") or "interrupted")
    writer.flush()
