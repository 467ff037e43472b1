"""`--validate-top K`: check a ladder search's predictions against real training at a held-out scale.

The K architectures with the lowest predicted loss are trained for real at a compute larger than
every rung (default: 4x the largest rung's compute), as a scaling study in DIR/validate. Each is
then compared with its prediction at the compute it actually spent: the error, whether the 95%
interval for one run (the law's interval widened by the run-to-run noise, `one_run_interval`)
covered the actual loss, and whether the predicted winner was the actual winner. The
architecture plain small-scale search would have chosen (the best rung 0) is trained at the same
scale too when it is not among the K, so both searches' choices are judged on the same runs. Written to
DIR/validation.parquet and returned.
"""

from __future__ import annotations

import dataclasses
import math
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
    held_out = dataclasses.replace(proposals.ladder, target_compute=compute, target_params=None)
    points = []
    for i in finalists:
        lad = proposals.ladders[i]
        sample, _ = at_target(proposals.space, proposals.plan, held_out, lad["params"])
        tokens = proposals.plan.tokens_for(sample.counts)
        points.append(
            GridPoint(
                group=lad["label"],
                arch=sample.arch.to_dict(),
                counts=sample.counts.to_dict(),
                tokens=tokens,
                seed=proposals.plan.base_seed,
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
    rows = []
    for i, row in zip(finalists, actual.iter_rows(named=True), strict=True):
        lad = proposals.ladders[i]
        spent = row["compute"] or compute
        pred = fit.predict(i, spent) if i in fit.laws and fit.laws[i].identified else None
        pred = pred or (None, math.nan, math.nan)
        run_lo, run_hi = one_run_interval(pred, fit)
        loss = row["eval_loss"] if row["status"] == "completed" else None
        rows.append(
            {
                "ladder_id": i,
                "label": lad["label"],
                "compute": spent,
                "actual_loss": loss,
                "predicted_loss": pred[0],
                "lo": pred[1],
                "hi": pred[2],
                "run_lo": run_lo,
                "run_hi": run_hi,
                "covered": None if loss is None or not math.isfinite(run_lo) else bool(run_lo <= loss <= run_hi),
                "error": None if loss is None or pred[0] is None else pred[0] - loss,
                "rung0_loss": lad["rungs"][0][1],
                "predicted_top": i in finalists[:k],
                "small_scale_pick": proposals.ladders[i]["arch_id"] == proposals.ladders[small_scale]["arch_id"],
            }
        )
    summary = {"compute": compute, **summarize_validation(rows)}
    frame = pl.DataFrame(rows, infer_schema_length=None)
    write_atomically(Path(opts.out).resolve() / "validation.parquet", frame.write_parquet)
    return summary
