"""Search benchmarks (not tests):

1. orchestration overhead: N trials through `run_search` (embedded Ray, Optuna, results files)
   against the same trainings run directly in a process pool of the same width; prints
   wall / ideal, where ideal is the pool's wall time (goal <= 1.10).
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
    from archscale.trainers import train

    arch, cfg = args
    return train(arch, cfg, "pystdlib")["eval_loss"]


def overhead(trials: int, tokens: int, width: int) -> None:
    import polars as pl

    from archscale.search.options import BudgetOptions, ExecutionOptions, SearchOptions, StrategyOptions
    from archscale.search.run import run_search
    from archscale.spaces.space import load_space, shipped_spaces

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s"
        start = time.perf_counter()
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
        list(pool.map(_train_one, jobs))
    pool_s = time.perf_counter() - start
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
