"""`archscale quickstart`: from nothing to a search, a scaling study, fits and a report, on a laptop.

    DIR/search/    activation x position-coding search at one parameter budget, ASHA on tokens
    DIR/seeds/     the two best architectures again with 2 more seeds (spread, not a single curve)
    DIR/scaling/   those two and the original transformer (relu, sinusoidal, post-LayerNorm) at 4 sizes
    DIR/report.html and DIR/plots/*.png

Everything is real: real training on the built-in corpus (the Python standard library's source),
a real local Ray, a real Optuna study on disk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The original transformer (Vaswani et al. 2017): standard parametrisation, its own learning rate
# (it was not searched, so the search has none to transfer), embeddings scaled by sqrt(d_model).
BASELINE = {
    "ffn_activation": "relu",
    "position": "sinusoidal",
    "norm": "layernorm",
    "norm_position": "post",
    "n_kv_heads": 4,
    "parametrization": "standard",
    "embedding_scale": "sqrt_d_model",
    "train": {"lr": 5e-3},
}


@dataclass(frozen=True)
class Plan:
    trials: int
    tokens: int  # per search trial
    eval_every: int
    sizes: tuple[int, ...]  # parameter budgets of the scaling study
    tokens_per_param: float
    scaling_seeds: int = 2  # per size, so every fitted number rests on replicated design units


FULL = Plan(
    trials=12, tokens=400_000, eval_every=50_000, sizes=(40_000, 80_000, 160_000, 320_000), tokens_per_param=3.0
)
SMALL = Plan(trials=12, tokens=60_000, eval_every=20_480, sizes=(30_000, 50_000, 80_000, 120_000), tokens_per_param=0.6)


def quickstart(out: str | Path, *, small: bool = False, address: str | None = None, say=print) -> dict[str, Any]:
    from archscale.search.options import BudgetOptions, ExecutionOptions, SearchOptions, StrategyOptions
    from archscale.search.run import run_search
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
            budget=BudgetOptions(tokens=plan.tokens, train=train),
            strategy=StrategyOptions(scheduler="asha", objectives=["eval_loss", "kv_cache_bytes_per_token"], seed=0),
            execution=ExecutionOptions(address=address),
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
    say(
        f"[3/4] scaling study: the two best (learning rate transferred from the search by muP) and the original "
        f"transformer at {len(plan.sizes)} sizes x {plan.scaling_seeds} seeds"
    )
    base = _search_base(out / "search")
    run_study(
        {
            "name": "scaling",
            "base": {"head_dim": base.get("head_dim", 16)},  # muP transfer: head_dim fixed across widths
            "from_search": {"dir": str(out / "search"), "top_k": 2, "use_train": False},
            "architectures": {"baseline": {**base, **BASELINE}},
            "sizes": {"kind": "params", "values": list(plan.sizes)},
            "tokens_per_param": plan.tokens_per_param,
            "seeds": plan.scaling_seeds,  # seeds at every size: the power law is fitted on design units
            # the searched architectures: the best lr of the search, transferred to each size by muP
            "train": {
                "eval_every_tokens": plan.eval_every,
                "lr": {"from_search": str(out / "search")},
                "batch_size": 16,
            },
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
    from archscale.search.options import ExecutionOptions, SearchOptions, StrategyOptions

    return SearchOptions(
        space="", out=str(out), strategy=StrategyOptions(scheduler="none"), execution=ExecutionOptions(address=address)
    )


def _search_base(search_dir: Path) -> dict[str, Any]:
    import json

    arch = json.loads((search_dir / "run.json").read_text())["space"]["arch"]
    return {k: v["value"] for k, v in arch.items() if v.get("value") is not None}


def analyse(out: Path) -> dict[str, Any]:
    """Fits, report and plots for a quickstart directory; returns what was found."""
    from archscale.analysis import quickstart_findings
    from archscale.analysis.present.charts import NoData, build_chart, save_chart
    from archscale.analysis.present.report import write_report

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

    found = quickstart_findings(dirs[:2], dirs[2], bootstrap=200)
    return {
        "out": str(out),
        "report": str(report),
        "plots": written,
        **found,
        "storage": str(out / "search" / "optuna.journal"),
    }


def describe(findings: dict[str, Any]) -> str:
    """What the quickstart found, in a few lines a person reads: the same verdicts the report leads
    with (``archscale.analysis.verdicts_text``: the best architecture with its interval and n, which
    differences are resolved and which are within noise with the seeds that would resolve them,
    which fits are identified and what they predict), then where the report and plots are."""
    from archscale.analysis.compare.verdicts import verdicts
    from archscale.analysis.present.verdict_text import verdicts_text

    out = Path(findings["out"])
    lines = [f"done in {findings['wall_s']:.0f} s"]
    text = findings.get("verdicts_text")
    if text is None:
        dirs = [out / name for name in ("search", "seeds", "scaling") if (out / name).is_dir()]
        text = verdicts_text(verdicts(dirs)) if dirs else "no results to judge"  # as the report computes them
    lines.append(text)
    lines.append(
        "(the scaling study trained the two searched architectures at every size with the search's best "
        "learning rate transferred by muP; the baseline, never searched, used 5e-3 under the standard "
        "parametrisation)"
    )
    lines.append(f"report: {findings['report']}  (open it in a browser; it works offline)")
    lines.append(f"plots: {', '.join(findings['plots'])}")
    lines.append(f"dashboard: archscale dashboard {out / 'search'}")
    return "\n".join(lines)
