"""Search benchmarks (not tests):

1. orchestration overhead: N trials through `run_search` (embedded Ray, Optuna, results files)
   against the same trainings run directly in a process pool of the same width; prints
   wall / ideal, where ideal is the pool's wall time (goal <= 1.10), and where the difference goes:
   Ray start (`ray.init`, timed on its own first), before the first trial starts (Tune setup,
   worker start), inside trials before training (imports, data, model: the first report's
   `time_total_s` minus the trainer's own `wall_s`), training, after training (the final
   evaluation by length and the last report), slots idle between trials, and after the last trial
   (writes, Tune teardown). Trial times come from Ray Tune's result.json (its `time_total_s` is
   exact, its `timestamp` whole seconds, so start and idle times are good to about 1 s).
2. search efficiency: ASHA + TPE against random search with full budgets on tiny.yaml, over
   seeds: the compute ASHA+TPE spent until it first matched random search's best loss, as a
   fraction of random search's total compute (goal <= 0.4).

    python benchmarks/bench_search.py overhead --trials 16 --tokens 300000
    python benchmarks/bench_search.py efficiency --trials 12 --tokens 200000 --seeds 3
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import random
import tempfile
import time
from pathlib import Path


def _train_one(args: tuple[dict, dict]) -> float:
    """One training, as the pool runs it; returns its training loop's wall time."""
    from archscale.trainers import train

    arch, cfg = args
    return train(arch, cfg, "pystdlib")["wall_s"]


def _trial_times(out: Path) -> list[dict[str, float]]:
    """Per trial, from Ray Tune's result.json: start and end (unix s), setup before the training
    loop, the loop (the trainer's wall_s) and what follows it."""
    import json

    times = []
    for path in (out / "ray" / "search").glob("*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not rows:
            continue
        first, last = rows[0], rows[-1]
        loop = max((r.get("wall_s") or 0.0) for r in rows)
        setup = first["time_total_s"] - (first.get("wall_s") or 0.0)
        times.append(
            {
                "start": first["timestamp"] - first["time_total_s"],
                "end": last["timestamp"],
                "setup": setup,
                "loop": loop,
                "after": last["time_total_s"] - setup - loop,
            }
        )
    return times


def _breakdown(ray_s: float, search_start: float, search_end: float, width: int, times: list[dict]) -> str:
    first_start = min(t["start"] for t in times)
    last_end = max(t["end"] for t in times)
    busy = sum(t["end"] - t["start"] for t in times)
    parts = {
        "ray start": ray_s,
        "to first trial": first_start - search_start,
        "in-trial setup": sum(t["setup"] for t in times) / width,
        "training loop": sum(t["loop"] for t in times) / width,
        "after loop": sum(t["after"] for t in times) / width,
        "slots idle": max(0.0, (last_end - first_start) * width - busy) / width,
        "after last trial": search_end - last_end,
    }
    return "breakdown (s of wall; per-trial parts summed over trials / width): " + ", ".join(
        f"{k} {v:.1f}" for k, v in parts.items()
    )


def overhead(trials: int, tokens: int, width: int) -> None:
    import polars as pl

    from archscale.clusters.connect import connect
    from archscale.search.options import BudgetOptions, ExecutionOptions, SearchOptions, StrategyOptions
    from archscale.search.run import run_search
    from archscale.spaces.space import load_space, shipped_spaces

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s"
        start = time.perf_counter()
        connect(None)  # the embedded Ray, timed apart; run_search joins it
        ray_s = time.perf_counter() - start
        search_start = time.time()
        run_search(
            SearchOptions(
                space="tiny",
                out=str(out),
                trials=trials,
                budget=BudgetOptions(tokens=tokens, train={"threads": 1}),
                strategy=StrategyOptions(scheduler="none", sampler="random"),
                execution=ExecutionOptions(concurrency=width, progress=False),
            )
        )
        search_s = time.perf_counter() - start
        breakdown = _breakdown(ray_s, search_start, time.time(), width, _trial_times(out))
        rows = pl.read_parquet(out / "trials.parquet").filter(pl.col("status") == "completed")
    space = load_space(shipped_spaces()["tiny"])
    jobs = []
    for row in rows.iter_rows(named=True):
        arch = {k: row[k] for k in space.spec.arch} | {k: row[k] for k in ("d_model", "d_ff", "head_dim", "n_kv_heads")}
        jobs.append(
            (
                arch,
                {"tokens": tokens, "lr": row["lr"], "batch_size": row["batch_size"], "threads": 1, "seed": row["seed"]},
            )
        )
    start = time.perf_counter()
    with cf.ProcessPoolExecutor(width) as pool:
        loops = list(pool.map(_train_one, jobs))
    pool_s = time.perf_counter() - start
    print(
        f"process pool: training loops {sum(loops) / width:.1f} s of its {pool_s:.1f} s wall "
        "(the rest: process start, imports, data, model, final evaluation)"
    )
    print(breakdown)
    print(
        f"overhead: {len(jobs)} trials x {tokens:,} tokens, width {width}: search {search_s:.1f} s, "
        f"process pool {pool_s:.1f} s, wall/ideal = {search_s / pool_s:.2f} (goal <= 1.10)"
    )


def efficiency(trials: int, tokens: int, seeds: int) -> None:
    import polars as pl

    from archscale.search.options import BudgetOptions, ExecutionOptions, SearchOptions, StrategyOptions
    from archscale.search.run import run_search

    fractions = []
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as tmp:
            results = {}
            for name, sampler, scheduler in (("random", "random", "none"), ("asha+tpe", "tpe", "asha")):
                out = Path(tmp) / name
                run_search(
                    SearchOptions(
                        space="tiny",
                        out=str(out),
                        trials=trials,
                        budget=BudgetOptions(tokens=tokens),
                        strategy=StrategyOptions(sampler=sampler, scheduler=scheduler, seed=seed),
                        execution=ExecutionOptions(progress=False),
                    )
                )
                results[name] = pl.read_parquet(out / "trials.parquet").sort("trial_id")
        rnd, asha = results["random"], results["asha+tpe"]
        target = rnd.filter(pl.col("status") == "completed")["eval_loss"].min()
        spent = asha.with_columns(pl.col("compute").fill_null(0).cum_sum().alias("spent"))
        hit = spent.filter((pl.col("status") == "completed") & (pl.col("eval_loss") <= target))
        fraction = (hit["spent"][0] if hit.height else float("inf")) / rnd["compute"].sum()
        fractions.append(fraction)
        print(f"seed {seed}: random best {target:.4f}; ASHA+TPE matched it after {fraction:.2f} of random's compute")
    print(f"efficiency: mean fraction {sum(fractions) / len(fractions):.2f} (goal <= 0.4)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", choices=["overhead", "efficiency", "both"], nargs="?", default="both")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--tokens", type=int, default=300_000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--width", type=int, default=len(os.sched_getaffinity(0)))
    a = p.parse_args()
    if a.which in ("overhead", "both"):
        overhead(a.trials, a.tokens, a.width)
    if a.which in ("efficiency", "both"):
        efficiency(a.trials, a.tokens, a.seeds)


if __name__ == "__main__":
    random.seed(0)
    main()
