"""`archscale quickstart`: from nothing to a search, a scaling study, fits and a report, on a laptop.

    DIR/search/    activation x position-coding search at one parameter budget, ASHA on tokens
    DIR/seeds/     the two best architectures again with 2 more seeds (spread, not a single curve)
    DIR/scaling/   those two and the original transformer (relu, sinusoidal, post-LayerNorm) at 4 sizes
    DIR/report.html and DIR/plots/*.png

Everything is real: real training on the built-in corpus (the Python standard library's source),
a real local Ray, a real Optuna study on disk.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASELINE = {
    "ffn_activation": "relu",
    "position": "sinusoidal",
    "norm": "layernorm",
    "norm_position": "post",
    "n_kv_heads": 4,
}


@dataclass(frozen=True)
class Plan:
    trials: int
    tokens: int  # per search trial
    eval_every: int
    sizes: tuple[int, ...]  # parameter budgets of the scaling study
    tokens_per_param: float


FULL = Plan(
    trials=12, tokens=400_000, eval_every=50_000, sizes=(40_000, 80_000, 160_000, 320_000), tokens_per_param=3.0
)
SMALL = Plan(trials=12, tokens=60_000, eval_every=20_480, sizes=(30_000, 50_000, 80_000, 120_000), tokens_per_param=0.6)


def quickstart(out: str | Path, *, small: bool = False, address: str | None = None, say=print) -> dict[str, Any]:
    from archscale.search.run import SearchOptions, run_search
    from archscale.search.study import run_study

    plan = SMALL if small else FULL
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: not empty; the quickstart writes a fresh directory (choose another --out)")
    started = time.monotonic()
    train = {"eval_every_tokens": plan.eval_every}

    say(
        f"[1/4] searching activation x position coding at 120K parameters: {plan.trials} trials, "
        f"{plan.tokens:,} tokens each, ASHA early stopping"
    )
    run_search(
        SearchOptions(
            space="quickstart",
            out=str(out / "search"),
            trials=plan.trials,
            tokens=plan.tokens,
            scheduler="asha",
            objectives=["eval_loss", "kv_cache_bytes_per_token"],
            train=train,
            address=address,
            seed=0,
        )
    )
    budget = 120_000
    say("[2/4] the two best architectures again with 2 more seeds")
    run_study(
        {
            "name": "seeds",
            "from_search": {"dir": str(out / "search"), "top_k": 2},
            "sizes": {"kind": "params", "values": [budget]},
            "tokens": [plan.tokens],
            "seeds": 2,
            "first_seed": 1,
            "train": train,
        },
        out / "seeds",
        _opts(out / "seeds", address),
    )
    say(f"[3/4] scaling study: the two best and the original transformer at {len(plan.sizes)} sizes")
    # one learning rate for every architecture and size here, so the baseline is not handicapped
    run_study(
        {
            "name": "scaling",
            "from_search": {"dir": str(out / "search"), "top_k": 2, "use_train": False},
            "architectures": {"baseline": {**_search_base(out / "search"), **BASELINE}},
            "sizes": {"kind": "params", "values": list(plan.sizes)},
            "tokens_per_param": plan.tokens_per_param,
            "train": {"eval_every_tokens": plan.eval_every, "lr": 5e-3, "batch_size": 16},
        },
        out / "scaling",
        _opts(out / "scaling", address),
    )
    say("[4/4] fits, Pareto front, report and plots")
    import warnings

    with warnings.catch_warnings():  # numpy's divide/NaN warnings from degenerate bootstrap resamples
        warnings.simplefilter("ignore", RuntimeWarning)
        findings = analyse(out)
    findings["wall_s"] = round(time.monotonic() - started, 1)
    return findings


def _opts(out: Path, address: str | None):
    from archscale.search.run import SearchOptions

    return SearchOptions(space="", out=str(out), scheduler="none", address=address)


def _search_base(search_dir: Path) -> dict[str, Any]:
    import json

    arch = json.loads((search_dir / "run.json").read_text())["space"]["arch"]
    return {k: v["value"] for k, v in arch.items() if v.get("value") is not None}


def analyse(out: Path) -> dict[str, Any]:
    """Fits, report and plots for a quickstart directory; returns what was found."""
    import polars as pl

    from archscale.analysis.charts import NoData, build_chart, save_chart
    from archscale.analysis.fits import fit_groups
    from archscale.analysis.report import write_report

    dirs = [out / "search", out / "seeds", out / "scaling"]
    report = write_report(dirs, out / "report.html")
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    written = []
    for name, kind, source, x in (
        ("scaling", "scaling", dirs[2], "compute"),
        ("pareto", "pareto", dirs[0], "kv_cache_bytes_per_token"),  # the search's cost objective
        ("curves", "curves", dirs[0], "compute"),
    ):
        try:
            written.append(str(save_chart(build_chart(source, kind, x=x), plots / f"{name}.png")))
        except NoData:
            pass

    search = pl.concat([pl.read_parquet(d / "trials.parquet") for d in dirs[:2]], how="diagonal_relaxed")
    by_arch = (
        search.filter(pl.col("status") == "completed")
        .group_by("label")
        .agg(pl.col("eval_loss").mean().alias("mean"), pl.col("eval_loss").std().alias("std"), pl.len().alias("seeds"))
        .sort("mean")
    )
    scaling = pl.read_parquet(dirs[2] / "trials.parquet").filter(pl.col("status") == "completed")
    fits = fit_groups(scaling, by="group", law="power", x="compute", bootstrap=200)
    exponents = {  # alpha only where the runs identify and bound it; else why (fits.LawFit)
        name: {
            "alpha": None if "alpha" in fit.undetermined() or not fit.identified else fit.params["alpha"],
            "ci": fit.ci().get("alpha"),
            "n_runs": fit.n_runs,
            "interval": fit.interval_note,
            "why_not": fit.not_identified or fit.undetermined().get("alpha", ""),
        }
        for name, fit in fits.items()
    }
    largest = scaling.filter(pl.col("params") == pl.col("params").max().over("group")).sort("eval_loss")
    winner = by_arch.row(0, named=True) if by_arch.height else None
    holds, gap = None, None
    if winner is not None and largest.height:
        holds = largest.row(0, named=True)["group"] == winner["label"]
        mine = largest.filter(pl.col("group") == winner["label"])
        if mine.height:
            gap = float(mine["eval_loss"][0] - largest["eval_loss"][0])  # 0 when the winner holds
    return {
        "out": str(out),
        "report": str(report),
        "plots": written,
        "best": winner,
        "ranking": by_arch.to_dicts(),
        "exponents": exponents,
        "largest_size": largest.select("group", "params", "eval_loss").to_dicts(),
        "winner_holds_at_largest": holds,
        "winner_gap_at_largest": gap,
        "seed_std": winner.get("std") if winner else None,
        "storage": str(out / "search" / "optuna.journal"),
    }


def describe(findings: dict[str, Any]) -> str:
    """What the quickstart found, in a few lines a person reads."""
    lines = [f"done in {findings['wall_s']:.0f} s"]
    best = findings.get("best")
    if best:
        spread = f" ± {best['std']:.3f}" if best.get("std") is not None and not math.isnan(best["std"]) else ""
        lines.append(
            f"best architecture: {best['label']}  eval loss {best['mean']:.3f}{spread} nats/byte "
            f"over {best['seeds']} seed(s)"
        )
    for name, e in findings.get("exponents", {}).items():
        if e.get("alpha") is None:
            lines.append(
                f"loss ∝ compute^-alpha for {name}: alpha not determined by {e['n_runs']} runs: {e['why_not']}"
            )
            continue
        ci = e.get("ci")
        ci_text = f" (95% CI {ci[0]:.2f} to {ci[1]:.2f}; {e['interval']})" if ci else ""
        lines.append(f"fitted loss ∝ compute^-alpha for {name}: alpha = {e['alpha']:.3f}{ci_text}")
    holds = findings.get("winner_holds_at_largest")
    if holds is not None:
        top = findings["largest_size"][0]
        line = (
            "the search winner holds" if holds else "the search winner does NOT hold"
        ) + f" at the largest size: best there is {top['group']} ({top['eval_loss']:.3f} at {top['params']:,} params)"
        gap, std = findings.get("winner_gap_at_largest"), findings.get("seed_std")
        if not holds and gap is not None:
            line += f"; the winner is {gap:.3f} behind"
            if std is not None and not math.isnan(std):
                line += (", within" if gap <= 2 * std else ", beyond") + f" twice its seed spread ({2 * std:.3f})"
        lines.append(line + " (one seed per size in the scaling study)")
    lines.append(f"report: {findings['report']}  (open it in a browser; it works offline)")
    lines.append(f"plots: {', '.join(findings['plots'])}")
    lines.append(f"dashboard: archscale dashboard {Path(findings['out']) / 'search'}")
    return "\n".join(lines)
