"""Does choosing by the predicted loss at scale pick the architecture that wins at scale?

    python benchmarks/bench_predicted.py [--quick] [--json] [--seeds 3] [--out DIR]

For each search seed: a ladder search over FFN activation x position coding x norm placement
(`archscale search run ... --target-compute C --validate-top 3`, 10 architectures, TPE), ladders
of 3 rungs (ratio 2 in parameters, so ~4 in compute: ~20K, ~40K, ~80K parameters; tokens = 8 x
params), target 10x the top rung's compute; then the top 3 predicted architectures, and plain
small-scale search's pick (the best rung 0) if it is not among them, trained for real at a held-out
compute 4x the top rung's (~160K parameters). It prints, over the search seeds: the rank
correlation (Spearman) of predicted and actual loss at the held-out size (beside the same for the
rung-0 loss), the coverage of the 95% intervals, and how often the ladder search's predicted
winner and small-scale search's winner were the actual winner among the validated architectures.
The reference is small-scale search, measured in the same runs.

The sizes are what fits: the issue's example (~20K to ~320K, held out at ~640K) measured at
1-3e10 FLOP/s per trial here would take about 2 hours per search seed, mostly in the held-out runs.
The full run took 1,240 s on this 2-core machine shared with three other jobs (2026-11-24; the
numbers are in docs/guide.md); `--quick` (4 tokens per parameter, 4
architectures, 2 seeds) takes about 6 minutes and only checks that the machinery runs.
With `--out DIR`, each finished search seed's result is kept in DIR/result-SEED.json and not run
again, so an interrupted run continues where it stopped. Numbers go in docs/guide.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

SPACE = {
    "name": "predicted-bench",
    "description": "activation x position coding x norm placement, for bench_predicted.py",
    "arch": {
        "vocab_size": 256,
        "seq_len": 64,
        "n_layers": 2,
        "n_heads": 4,
        "norm": "rmsnorm",
        "norm_position": {"choices": ["pre", "post"]},
        "ffn_activation": {"choices": ["relu", "gelu", "swiglu", "relu2"]},
        "position": {"choices": ["rope", "learned", "none", "alibi"]},
    },
    "train": {"lr": 3.0e-3, "batch_size": 16},
    "budget": {"kind": "params", "value": 20000, "tolerance": 0.03},
}


def spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic) if len(x) >= 3 else float("nan")


def one_search(out: Path, seed: int, quick: bool) -> dict:
    from archscale.search.options import BudgetOptions, ExecutionOptions, SearchOptions, StrategyOptions
    from archscale.search.run import run_search
    from archscale.search.status import status
    from archscale.search.strategies.ladder_plan import LadderPlan

    space = dict(SPACE)
    path = out / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    ratio, tpp = (2.0, 4) if quick else (2.0, 8)
    top_params = space["budget"]["value"] * ratio**2
    target = 6 * top_params * (tpp * top_params) * 10  # ~10x the top rung's compute (C ~ 6 N D)
    opts = SearchOptions(
        space=str(path),
        out=str(out / f"search-{seed}"),
        trials=4 if quick else 10,
        budget=BudgetOptions(tokens_per_param=tpp, train={"eval_every_tokens": 50_000}),
        strategy=StrategyOptions(
            seed=seed,
            sampler="tpe",
            ladder=LadderPlan(rungs=3, ratio=ratio, target_compute=target, validate_top=3),
        ),
        execution=ExecutionOptions(progress=False),
    )
    started = time.monotonic()
    run_search(opts)
    s = status(opts.out)
    v = s.get("validation") or {}
    done = [r for r in v.get("rows", []) if r["actual_loss"] is not None]
    rows = [r for r in done if r["predicted_loss"] is not None]
    return {
        "seed": seed,
        "wall_s": round(time.monotonic() - started, 1),
        "validated": len(rows),
        "spearman": spearman([r["predicted_loss"] for r in rows], [r["actual_loss"] for r in rows]),
        # the reference: how well the small-scale loss (rung 0) ranks the same architectures
        "small_scale_spearman": spearman([r["rung0_loss"] for r in done], [r["actual_loss"] for r in done]),
        "covered": sum(bool(r["covered"]) for r in rows),
        "predicted_picked_winner": v.get("predicted_winner") == v.get("actual_winner") if rows else None,
        "small_scale_picked_winner": v.get("small_scale_winner") == v.get("actual_winner") if rows else None,
        "predicted": len(s.get("predicted", [])),
        "not_predicted": len(s.get("not_predicted", [])),
    }


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v == v]  # drop NaN (fewer than 3 validated)
    return sum(values) / len(values) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes: smaller ladders, 2 search seeds")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seeds", type=int, default=None, help="search seeds (default 3; 2 with --quick)")
    parser.add_argument("--out", default=None, help="keep the results here (default: a temporary directory)")
    args = parser.parse_args()
    seeds = args.seeds or (2 if args.quick else 3)
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-predicted-"))
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in range(seeds):
        kept = out / f"result-{seed}.json"
        if not kept.exists():
            kept.write_text(json.dumps(one_search(out, seed, args.quick)))
        runs.append(json.loads(kept.read_text()))
    validated = sum(r["validated"] for r in runs)
    decided = [r for r in runs if r["predicted_picked_winner"] is not None]
    result = {
        "quick": args.quick,
        "runs": runs,
        "interval_coverage": sum(r["covered"] for r in runs) / validated if validated else None,
        "mean_spearman": _mean([r["spearman"] for r in runs]),
        "mean_small_scale_spearman": _mean([r["small_scale_spearman"] for r in runs]),
        "predicted_search_picked_actual_winner": sum(bool(r["predicted_picked_winner"]) for r in decided),
        "small_scale_search_picked_actual_winner": sum(bool(r["small_scale_picked_winner"]) for r in decided),
        "searches": len(decided),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for r in runs:
            print(
                f"seed {r['seed']}: {r['validated']} validated, spearman {r['spearman']:.2f} "
                f"(small-scale {r['small_scale_spearman']:.2f}), "
                f"{r['covered']}/{r['validated']} covered, predicted winner right: {r['predicted_picked_winner']}, "
                f"small-scale winner right: {r['small_scale_picked_winner']} ({r['wall_s']:.0f}s)"
            )
        print(
            f"interval coverage {result['interval_coverage']}; picked the actual winner: predicted-at-scale "
            f"{result['predicted_search_picked_actual_winner']}/{result['searches']}, small-scale "
            f"{result['small_scale_search_picked_actual_winner']}/{result['searches']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
