"""`--validate-top K`: check a ladder search's predictions against real training at a held-out scale.

The K architectures with the lowest predicted loss are trained for real at a compute larger than
every rung (default: 4x the largest rung's compute), as a scaling study in DIR/validate. Each is
then compared with its prediction at the compute it actually spent: the error, whether the 95%
interval covered the actual loss, whether the predicted winner was the actual winner, and which
architecture plain small-scale search (the best rung 0) would have chosen. Written to
DIR/validation.parquet and returned.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from archscale.search.ladder import LadderProposals, at_target
from archscale.search.proposals import GridPoint, GridProposals
from archscale.search.results import write_atomically
from archscale.search.storage import StudySpec
from archscale.spaces.errors import UserError


def validate_top(proposals: LadderProposals, opts: Any, k: int, compute: float | None = None) -> dict[str, Any]:
    """Train the top `k` predicted architectures at `compute` (default 4x the top rung's) and
    compare with their predictions (see the module docstring)."""
    import polars as pl

    from archscale.search.run import run_trials
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
    finalists = [i for _, i in ranked[:k]]
    held_out = dataclasses.replace(proposals.ladder, target_compute=compute, target_params=None)
    points = []
    for i in finalists:
        lad = proposals.ladders[i]
        sample, _ = at_target(proposals.space, proposals.plan, held_out, lad["params"])
        tokens = proposals.plan.tokens_for(sample.counts.params)
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
    spec = StudySpec(
        storage=str(out / "optuna.journal"),
        study_name="archscale-validate",
        objectives=["eval_loss"],
        sampler="random",
        seed=opts.seed,
    )
    searcher = ProposalSearcher(GridProposals(points, proposals.plan), spec, out)
    run_trials(
        searcher,
        spec,
        dataclasses.replace(opts, scheduler="none"),
        out,
        total=len(points),
        max_tokens=max(p.tokens for p in points),
        experiment="validate",
    )
    actual = pl.read_parquet(out / "trials.parquet").sort("trial_id")
    rows = []
    for i, row in zip(finalists, actual.iter_rows(named=True), strict=True):
        lad = proposals.ladders[i]
        spent = row["compute"] or compute
        pred = fit.predict(i, spent)
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
                "covered": None if loss is None or not math.isfinite(pred[1]) else bool(pred[1] <= loss <= pred[2]),
                "error": None if loss is None else pred[0] - loss,
                "rung0_loss": lad["rungs"][0][1],
            }
        )
    done = [r for r in rows if r["actual_loss"] is not None]
    small_scale = min(
        (lad for lad in proposals.ladders.values() if 0 in lad.get("rungs", {})), key=lambda lad: lad["rungs"][0][1]
    )
    summary = {
        "compute": compute,
        "validated": rows,
        "predicted_winner": min(done, key=lambda r: r["predicted_loss"])["label"] if done else None,
        "actual_winner": min(done, key=lambda r: r["actual_loss"])["label"] if done else None,
        "small_scale_winner": small_scale["label"],
        "coverage": (sum(bool(r["covered"]) for r in done) / len(done)) if done else None,
    }
    frame = pl.DataFrame(rows, infer_schema_length=None)
    write_atomically(Path(opts.out).resolve() / "validation.parquet", frame.write_parquet)
    return summary
