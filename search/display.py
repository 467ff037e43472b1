"""How a search's or study's summary reads in a terminal: counts, best trials, a ladder search's predicted ranking.

`emit(summary, as_json)` prints what `search/status.py::status` returns, as one JSON line or as
rich tables. Display only: every number comes from the summary.
"""

from __future__ import annotations

import json

import typer


def emit(summary: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    requested = f" of {summary['requested']} requested" if summary.get("requested") else ""
    console.print(
        f"[bold]{summary['out']}[/]: {summary['trials']} trials{requested}: "
        + ", ".join(f"{n} {s}" for s, n in sorted(summary["by_status"].items()))
        + (f" in {summary['wall_s']:.0f}s" if "wall_s" in summary else "")
    )
    if summary.get("best"):
        table = Table(title="best completed trials")
        for col in ("trial", "architecture", "seed", "eval_loss", "params", "tokens"):
            table.add_column(col)
        for b in summary["best"]:
            table.add_row(
                str(b["trial_id"]),
                b["label"],
                str(b["seed"]),
                f"{b['eval_loss']:.4f}",
                f"{b['params']:,}",
                f"{b['tokens']:,}",
            )
        console.print(table)
    if "ladder" in summary:
        emit_ladders(console, summary)
    elif summary.get("pareto"):
        console.print(f"Pareto front: trials {', '.join(str(p['trial_id']) for p in summary['pareto'])}")
    if summary.get("study"):
        study = summary["study"]
        console.print(
            f"study {summary['study_name']}: {study['trials']} trials from {study['drivers']} driver(s): "
            + ", ".join(f"{n} {s}" for s, n in sorted(study["by_state"].items()))
        )


def emit_ladders(console, summary: dict) -> None:
    """A ladder search: the ranking predicted at the target beside the small-scale ranking."""
    from rich.table import Table

    ladder = summary["ladder"]
    target = ladder.get("target_compute") or ladder.get("target_params")
    unit = "FLOPs" if ladder.get("target_compute") else "params"
    small = {r["ladder_id"]: i + 1 for i, r in enumerate(summary["small_scale"])}
    table = Table(title=f"predicted at the target ({target:.3g} {unit}; risk {ladder.get('risk')})")
    for col in ("rank", "architecture", "predicted loss", "95% interval", "alpha", "rung-0 loss", "small-scale rank"):
        table.add_column(col)
    for i, r in enumerate(summary["predicted"]):
        table.add_row(
            str(i + 1),
            r["label"],
            f"{r['predicted_loss']:.4f}",
            f"{r['lo']:.4f} to {r['hi']:.4f}",
            f"{r['alpha']:.3f}",
            f"{r['rung0_loss']:.4f}",
            str(small.get(r["ladder_id"], "-")),
        )
    console.print(table)
    if any(r.get("law") == "no floor (E = 0)" for r in summary["predicted"]):
        console.print(
            "law: no floor (E = 0): the ladders show no flattening, so each is a straight line in log-log; "
            "if the loss flattens before the target, these predictions are optimistic (docs/guide.md)"
        )
    for r in summary["predicted"]:
        for c in r.get("crossings") or []:
            if c["overtakes"]:
                console.print(f"{r['label']} overtakes {c['other']} above {c['compute']:.3g} FLOPs")
    for r in summary["not_predicted"]:
        console.print(f"no prediction for {r['label'] or r['ladder_id']}: {r['status']}: {r['reason']}")
    for line in summary.get("off_rule") or []:  # rungs >5% off the space's shape rule (docs/spaces.md)
        console.print(f"off the shape rule: {line}")
    if summary.get("validation_skipped"):
        console.print(f"--validate-top: skipped: {summary['validation_skipped']}")
    check = summary.get("validation")
    if check:
        table = Table(title="checked against real training at a held-out scale")
        for col in ("architecture", "compute", "predicted", "95% interval", "actual", "covered"):
            table.add_column(col)
        for r in check["rows"]:
            actual = "-" if r["actual_loss"] is None else f"{r['actual_loss']:.4f}"
            table.add_row(
                r["label"],
                f"{r['compute']:.3g}",
                f"{r['predicted_loss']:.4f}",
                f"{r['lo']:.4f} to {r['hi']:.4f}",
                actual,
                str(r["covered"]),
            )
        console.print(table)
        console.print(
            f"predicted winner {check['predicted_winner']}; actual winner {check['actual_winner']}; "
            f"small-scale search would have chosen {check['small_scale_winner']}"
        )
