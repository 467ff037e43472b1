"""`--validate-top K`: check a ladder search's predictions against real training at a held-out scale.

The K architectures with the lowest predicted loss are trained for real at a compute larger than
every rung (default: 4x the largest rung's compute), as a scaling study in DIR/validate, each on
the same `--validate-seeds S` seeds. Each is then compared with its prediction at the compute it
actually spent: the error, whether the 95% interval for the mean of its S runs (the law's interval
widened by the run-to-run noise / sqrt(S), `one_run_interval`) covered the actual mean, and whether
the predicted winner was the actual winner, judged against the seed noise (`winner_verdict`:
confirmed, refuted, or no noise estimate with one seed). The architecture plain small-scale search
would have chosen (the best rung 0) is trained at the same scale too when it is not among the K,
and so is the started-from search's winner (`--start-with`), so every search's choice is judged on
the same runs. Written to DIR/validation.parquet and returned.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path
from typing import Any

from archscale.analysis import one_run_interval, summarize_validation
from archscale.search.results import write_atomically
from archscale.search.storage import StudySpec
from archscale.search.strategies.grid import GridPoint, GridProposals
from archscale.search.strategies.ladder_plan import at_target
from archscale.spaces.errors import UserError


def validate_top(proposals: Any, opts: Any, k: int, compute: float | None = None) -> dict[str, Any]:
    """Train the top `k` predicted architectures of `proposals` (a finished `LadderProposals`) at
    `compute` (default 4x the top rung's) and compare with their predictions (see the module
    docstring). `opts`: the search's SearchOptions."""
    import polars as pl

    from archscale.search.runner import run_trials
    from archscale.search.searcher import ProposalSearcher

    fit = proposals.fit
    ranked = sorted(
        (
            (fit.predict(i, lad["target_compute"])[0], i)
            for i, lad in proposals.ladders.items()
            if fit is not None and lad["state"] == "done" and fit.predict(i, lad["target_compute"]) is not None
        ),
    )
    if not ranked:
        import json

        reason = "no architecture has an identified prediction to check (see search status)"
        run_json = Path(opts.out).resolve() / "run.json"
        run = json.loads(run_json.read_text())
        run["validation"] = {"skipped": reason}
        from archscale.search.results import write_json

        write_json(run_json, run)
        return {"validated": [], "reason": reason}
    top_rung = max(c for lad in proposals.ladders.values() for c, _ in lad.get("rungs", {}).values())
    compute = compute or 4 * top_rung
    if compute <= top_rung:
        raise UserError(f"--validate-compute: {compute:.3g} FLOPs is not above the largest rung ({top_rung:.3g})")
    finalists: list[int] = []
    for _, i in ranked:  # one per architecture: Optuna may propose the same one twice
        if len(finalists) < k and proposals.ladders[i]["arch_id"] not in {
            proposals.ladders[j]["arch_id"] for j in finalists
        }:
            finalists.append(i)
    # plain small-scale search's choice (the best rung 0) is trained too, so "which search picked the
    # actual winner" is answered among the same architectures, not only among the predicted top K
    small_scale = min(
        (i for i, lad in proposals.ladders.items() if 0 in lad.get("rungs", {}) and lad.get("params") is not None),
        key=lambda i: proposals.ladders[i]["rungs"][0][1],
    )
    if proposals.ladders[small_scale]["arch_id"] not in {proposals.ladders[j]["arch_id"] for j in finalists}:
        finalists.append(small_scale)
    started = _started_best(proposals)  # --start-with: the small search's own winner is judged on the same runs
    if started is not None and proposals.ladders[started]["arch_id"] not in {
        proposals.ladders[j]["arch_id"] for j in finalists
    }:
        finalists.append(started)
    held_out = dataclasses.replace(proposals.ladder, target_compute=compute, target_params=None)
    seeds = [proposals.plan.base_seed + s for s in range(proposals.ladder.validate_seeds)]
    points = []
    for i in finalists:
        lad = proposals.ladders[i]
        sample, _ = at_target(proposals.space, proposals.plan, held_out, lad["params"])
        tokens = proposals.plan.tokens_for(sample.counts)
        for seed in seeds:  # every finalist on the same seeds: the winner check is paired by design
            points.append(
                GridPoint(
                    group=lad["label"],
                    arch=sample.arch.to_dict(),
                    counts=sample.counts.to_dict(),
                    tokens=tokens,
                    seed=seed,
                    size_kind="compute",
                    size=compute,
                    train=dict(sample.train),
                )
            )
    out = Path(opts.out).resolve() / "validate"
    out.mkdir(parents=True, exist_ok=True)
    spec = StudySpec(
        storage=str(out / "optuna.journal"),
        study_name="archscale-validate",
        objectives=["eval_loss"],
        sampler="random",
        seed=opts.strategy.seed,
    )
    searcher = ProposalSearcher(GridProposals(points, proposals.plan), spec, out)
    run_trials(searcher, spec, opts.execution, out, scheduler="none", experiment="validate")
    actual = pl.read_parquet(out / "trials.parquet").sort("trial_id")
    runs = list(actual.iter_rows(named=True))
    rows = []
    for n, i in enumerate(finalists):
        lad = proposals.ladders[i]
        mine = runs[n * len(seeds) : (n + 1) * len(seeds)]
        losses = [r["eval_loss"] if r["status"] == "completed" else None for r in mine]
        done = [x for x in losses if x is not None]
        spent = next((r["compute"] for r in mine if r["compute"]), compute)
        pred = fit.predict(i, spent) if i in fit.laws and fit.laws[i].identified else None
        pred = pred or (None, math.nan, math.nan)
        run_lo, run_hi = one_run_interval(pred, fit, runs=max(len(done), 1))
        loss = sum(done) / len(done) if done else None
        rows.append(
            {
                "ladder_id": i,
                "label": lad["label"],
                "compute": spent,
                "actual_loss": loss,  # the mean over the seeds that completed
                "losses": losses,
                "seeds": len(done),
                "actual_sd": statistics.stdev(done) if len(done) > 1 else None,
                "predicted_loss": pred[0],
                "lo": pred[1],
                "hi": pred[2],
                "run_lo": run_lo,  # the interval for the mean of `seeds` runs
                "run_hi": run_hi,
                "covered": None if loss is None or not math.isfinite(run_lo) else bool(run_lo <= loss <= run_hi),
                "error": None if loss is None or pred[0] is None else pred[0] - loss,
                "rung0_loss": lad["rungs"][0][1],
                "predicted_top": i in finalists[:k],
                "small_scale_pick": proposals.ladders[i]["arch_id"] == proposals.ladders[small_scale]["arch_id"],
                "started_best": started is not None and lad["arch_id"] == proposals.ladders[started]["arch_id"],
            }
        )
    summary = {"compute": compute, **summarize_validation(rows)}
    frame = pl.DataFrame(rows, infer_schema_length=None)
    write_atomically(Path(opts.out).resolve() / "validation.parquet", frame.write_parquet)
    return summary


def _started_best(proposals: Any) -> int | None:
    """The ladder started (`--start-with`) from the small search's best architecture, if it ran."""
    best = None
    attrs_of = {t.number: t.user_attrs for t in proposals.study.get_trials(deepcopy=False)}
    for i, lad in proposals.ladders.items():
        attrs = attrs_of.get(i, {})
        if "source_trial" in attrs and lad["state"] == "done" and lad.get("params") is not None:
            rank = attrs.get("start_rank", 0)
            if best is None or rank < best[0]:
                best = (rank, i)
    return None if best is None else best[1]
