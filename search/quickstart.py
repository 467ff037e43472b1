"""`archscale quickstart`: the question the tool exists for, answered on a laptop in minutes.

    DIR/search/    activation x position coding x KV heads at a small parameter budget, ASHA on tokens
    DIR/ladder/    a ladder search started with the search's best three (`--start-with`): each trained
                   at three sizes, a joint scaling-law fit, the architecture predicted best at a target
                   size four times the largest rung's compute, with its interval and probability of
                   being best; then the top two (and the small search's winner) trained for real at
                   the target on two seeds (`--validate-top 2 --validate-seeds 2`): ladder/validate/
    DIR/report.html and DIR/plots/*.png

It closes by saying whether the small-scale winner and the target-scale winner agree and whether
the held-out runs confirmed the prediction (judged against their seed noise). Everything is real:
real training on the built-in corpus (the Python standard library's source), a real local Ray, a
real Optuna study on disk. The same two runs from the command line are in docs/guide.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Plan:
    trials: int  # search trials at `budget`
    budget: int  # parameters of the small search
    tokens: int  # per search trial
    eval_every: int
    ladders: int  # architectures in the ladder search, the first `start_top` from the search
    start_top: int
    rung0: int  # parameters of the smallest rung (rungs: rung0, 2 rung0, 4 rung0)
    tokens_per_param: float  # the ladder's and the held-out runs' tokens rule
    target: int  # parameters at the target (trained by the same rule: 4x the top rung's compute)
    validate_top: int = 2
    validate_seeds: int = 2
    prune_margin: float = 1.0  # nats: few ladders, so every one is carried to the top rung (no rung-0 pruning)


FULL = Plan(
    trials=12, budget=40_000, tokens=200_000, eval_every=25_000, ladders=5, start_top=3, rung0=20_000,
    tokens_per_param=6.0, target=160_000,
)  # fmt: skip
SMALL = Plan(
    trials=8, budget=40_000, tokens=60_000, eval_every=20_480, ladders=3, start_top=2, rung0=20_000,
    tokens_per_param=1.0, target=160_000,
)  # fmt: skip


def quickstart(out: str | Path, *, small: bool = False, address: str | None = None, say=print) -> dict[str, Any]:
    from archscale.search.options import BudgetOptions, ExecutionOptions, SearchOptions, StrategyOptions
    from archscale.search.run import run_search, run_strategy, start_search
    from archscale.search.strategies.ladder_plan import LadderPlan

    plan = SMALL if small else FULL
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: not empty; the quickstart writes a fresh directory (choose another --out)")
    started = time.monotonic()
    execution = ExecutionOptions(address=address)

    say(
        f"[1/4] searching activation x position coding x KV heads at {plan.budget // 1000}K parameters: "
        f"{plan.trials} trials, {plan.tokens:,} tokens each, ASHA early stopping"
    )
    run_search(
        SearchOptions(
            space="quickstart",
            out=str(out / "search"),
            trials=plan.trials,
            budget=BudgetOptions(
                budget_kind="params",
                budget_value=plan.budget,
                tokens=plan.tokens,
                train={"eval_every_tokens": plan.eval_every},
            ),  # fmt: skip
            strategy=StrategyOptions(scheduler="asha", objectives=["eval_loss", "kv_cache_bytes_per_token"], seed=0),
            execution=execution,
        )
    )
    rungs = ", ".join(f"{plan.rung0 * 2**r // 1000}K" for r in range(3))
    say(
        f"[2/4] ladder search for the best at {plan.target // 1000}K parameters: the search's best {plan.start_top} "
        f"and {plan.ladders - plan.start_top} more, each at {rungs} parameters ({plan.tokens_per_param:g} tokens "
        "per parameter), one scaling law fitted to all"
    )
    ladder = SearchOptions(
        space="quickstart",
        out=str(out / "ladder"),
        trials=plan.ladders,
        budget=BudgetOptions(budget_kind="params", budget_value=plan.rung0, tokens_per_param=plan.tokens_per_param),
        strategy=StrategyOptions(
            scheduler="none",
            seed=0,
            ladder=LadderPlan(
                rungs=3,
                ratio=2.0,
                target_params=plan.target,
                prune_margin=plan.prune_margin,
                validate_top=plan.validate_top,
                validate_seeds=plan.validate_seeds,
                start_with=str(out / "search"),
                start_top=plan.start_top,
            ),  # fmt: skip
        ),
        execution=execution,
    )
    searcher, study = start_search(ladder)
    run_strategy(
        searcher,
        study,
        ladder,
        before_conclude=lambda: say(
            f"[3/4] held-out check: the predicted top {plan.validate_top} and the small-scale winner trained "
            f"for real at {plan.target // 1000}K parameters on {plan.validate_seeds} seeds"
        ),
    )
    say("[4/4] fits, verdicts, Pareto front, report and plots")
    import warnings

    with warnings.catch_warnings():  # numpy's divide/NaN warnings from degenerate bootstrap resamples
        warnings.simplefilter("ignore", RuntimeWarning)
        findings = analyse(out)
    findings["wall_s"] = round(time.monotonic() - started, 1)
    return findings


def analyse(out: Path) -> dict[str, Any]:
    """Fits, report and plots for a quickstart directory; returns what was found (`ladder_story`)."""
    from archscale.analysis import ladder_story
    from archscale.analysis.present.charts import NoData, build_chart, save_chart
    from archscale.analysis.present.report import write_report

    search, ladder = out / "search", out / "ladder"
    report = write_report([search, ladder], out / "report.html")
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    written = []
    predictions = _ladder_chart(ladder)  # the fitted laws, their rungs and the held-out runs
    if predictions is not None:
        written.append(str(save_chart(predictions, plots / "ladder.png")))
    for name, kind, source, x in (
        ("pareto", "pareto", search, "kv_cache_bytes_per_token"),  # the search's cost objective
        ("curves", "curves", search, "compute"),
    ):
        try:
            written.append(str(save_chart(build_chart(source, kind, x=x), plots / f"{name}.png")))
        except NoData:
            pass
    return {
        "out": str(out),
        "report": str(report),
        "plots": written,
        **ladder_story(search, ladder),
        "storage": str(search / "optuna.journal"),
    }


def _ladder_chart(ladder: Path) -> Any:
    """The ladder search's laws with the held-out runs (None when nothing was predicted)."""
    import polars as pl

    from archscale.analysis.present.predictions import ladder_chart

    predictions = pl.read_parquet(ladder / "predictions.parquet")
    if not (predictions["status"] == "predicted").any():
        return None
    held = ladder / "validation.parquet"
    held_out = pl.read_parquet(held) if held.exists() else None
    return ladder_chart(predictions, pl.read_parquet(ladder / "trials.parquet"), held_out)


def describe(findings: dict[str, Any]) -> str:
    """What the quickstart found, in lines a person reads: the small search's verdicts (as the report
    leads with them: ``verdicts_text``), the architecture predicted best at the target with its
    interval and probability of being best, the held-out check, and two closing lines: do the
    small-scale and target-scale winners agree, and did the held-out runs confirm the prediction."""
    from archscale.analysis.compare.verdicts import verdicts
    from archscale.analysis.present.verdict_text import verdicts_text

    out = Path(findings["out"])
    lines = [f"done in {findings['wall_s']:.0f} s", "", "at the small budget (the search):"]
    lines.append(verdicts_text(verdicts([out / "search"])) if (out / "search").is_dir() else "no search results")
    lines += ["", "at the target (the ladder search):", *_target_lines(findings), ""]
    lines += _closing_lines(findings)
    lines.append(f"report: {findings['report']}  (open it in a browser; it works offline)")
    lines.append(f"plots: {', '.join(findings['plots'])}")
    lines.append(f"dashboard: archscale dashboard {out / 'search'}")
    return "\n".join(lines)


def _target_lines(f: dict[str, Any]) -> list[str]:
    win = f.get("predicted_winner")
    if win is None:
        return [f"no prediction: {f.get('why_no_prediction')}; see `archscale search status {f['out']}/ladder`"]
    lines = [
        f"predicted best at {win['target_compute']:.3g} FLOPs ({win['target_params']:,.0f} parameters): "
        f"{win['label']}, loss {win['predicted_loss']:.3f} (95% [{win['lo']:.3f}, {win['hi']:.3f}], "
        f"law: {win['law']}), {_p_best(win)}"
    ]
    lines += [
        f"  then {p['label']}: {p['predicted_loss']:.3f} [{p['lo']:.3f}, {p['hi']:.3f}], {_p_best(p)}"
        for p in f["predicted"][1:4]
    ]
    v = f.get("validation")
    if v:
        for r in v["validated"]:
            if r["actual_loss"] is None:
                lines.append(f"  held out {r['label']}: no run completed")
                continue
            inside = "inside" if r["covered"] else ("outside" if r["covered"] is False else "no interval for")
            lines.append(
                f"  held out {r['label']}: mean of {r['seeds']} seeds {r['actual_loss']:.3f}, {inside} its 95% "
                f"interval [{r['run_lo']:.3f}, {r['run_hi']:.3f}]"
            )
    return lines


def _p_best(p: dict[str, Any]) -> str:
    if p.get("p_best") is None:  # ladder_p_best needs the joint fit's bootstrap refits
        return f"no P(best): the '{p.get('law')}' fit has too few bootstrap refits to draw it from"
    return f"P(best) {p['p_best']:.2f} +- {p['p_best_mc_se']:.2f}"


def _closing_lines(f: dict[str, Any]) -> list[str]:
    best, win = f.get("best"), f.get("predicted_winner")
    if best is None or win is None:
        agree = "The small-scale and target-scale winners cannot be compared: one of them is missing (see above)."
    elif f["agree"]:
        agree = f"The small-scale winner and the predicted target-scale winner agree: {best['label']}."
    else:
        agree = (
            f"The small-scale winner ({best['label']}) is not the architecture predicted best at the target "
            f"({win['label']}): choosing at the small budget would have picked another architecture."
        )
    check = (f.get("validation") or {}).get("winner_check") or {}
    verdict = check.get("verdict")
    if verdict == "confirmed":
        held = f"The held-out runs confirmed the prediction: {check['why']}."
    elif verdict == "within noise":
        held = f"The held-out runs neither confirm nor refute the prediction: {check['why']}."
    elif verdict == "refuted":
        held = f"The held-out runs refuted the prediction: {check['why']}."
    elif verdict == "no noise estimate":
        held = f"The held-out runs cannot judge the prediction: {check['why']}."
    elif f.get("validation") is None:
        held = "No held-out check: there was no prediction to check (see above)."
    else:
        held = f"No held-out verdict: {check.get('why')}."
    return [agree, held, ""]
