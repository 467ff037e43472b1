"""Benchmark: load + fit + report over a synthetic store of 10,000 trials and ~1,000,000 curve rows.

The polars pipeline (``archscale.analysis``: lazy scans, one ``collect_all``) is timed against the
same data wrangling written in pandas, measured in the same run on the same files. The fit (numpy/
scipy) and the report (vl-convert SVG rendering) are shared code, timed once and reported apart.

    .venv/bin/python benchmarks/bench_analysis.py [--trials 10000] [--curve-rows 1000000] [--repeat 3]

Prints the times, the wrangling ratio pandas/polars and the end-to-end polars time (goal: < 10 s,
ratio >= 5).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

AXES = ["ffn_activation", "position", "norm", "block", "qk_norm", "tie_embeddings"]


def polars_wrangle(dir: Path) -> dict[str, Any]:
    """Everything the report needs from the tables, as lazy queries collected together."""
    import polars as pl

    from archscale.analysis import axis_effects, best_architectures, learning_curves, load_curves, load_trials

    trials = load_trials(dir)
    done = trials.filter((pl.col("status") == "completed") & pl.col("eval_loss").is_not_null())
    per_trial = trials.select("run", "trial_id", "label", "status", "eval_loss").join(
        load_curves(dir)
        .group_by("run", "trial_id")
        .agg(best_eval=pl.col("eval_loss").min(), n_evals=pl.col("step").count(), last_tokens=pl.col("tokens").max()),
        on=["run", "trial_id"],
        how="left",
    )
    status = trials.group_by("status").len()
    frontier = done.group_by("params").agg(pl.col("eval_loss").min()).sort("params")
    curves = learning_curves(load_curves(dir), max_points=100, columns=["eval_loss", "train_loss"])
    status_df, per_trial_df, frontier_df, curves_df = pl.collect_all([status, per_trial, frontier, curves])
    return {
        "status": status_df,
        "per_trial": per_trial_df,
        "frontier": frontier_df,
        "curves": curves_df,
        "best": best_architectures(done, top=15),
        "effects": axis_effects(done, axes=AXES),
    }


def pandas_wrangle(dir: Path) -> dict[str, Any]:
    """The same tables with pandas (eager, as a notebook would write it)."""
    import pandas as pd

    trials = pd.read_parquet(dir / "trials.parquet")
    curves = pd.read_parquet(dir / "curves.parquet")
    trials["run"] = dir.name
    curves["run"] = dir.name
    done = trials[(trials["status"] == "completed") & trials["eval_loss"].notna()]
    per_trial = trials[["run", "trial_id", "label", "status", "eval_loss"]].merge(
        curves.groupby(["run", "trial_id"], as_index=False).agg(
            best_eval=("eval_loss", "min"), n_evals=("step", "count"), last_tokens=("tokens", "max")
        ),
        on=["run", "trial_id"],
        how="left",
    )
    status = trials.groupby("status").size()
    frontier = done.groupby("params")["eval_loss"].min().sort_index()
    c = curves[curves["tokens"].notna()].sort_values(["run", "trial_id", "tokens"])
    rank = c.groupby(["run", "trial_id"]).cumcount()
    count = c.groupby(["run", "trial_id"])["tokens"].transform("size")
    stride = ((count - 1) // 99).clip(lower=1)
    down = c[(rank % stride == 0) | (rank == count - 1)][["run", "trial_id", "tokens", "eval_loss", "train_loss"]]
    best = (
        done.groupby(["run", "arch_id"])
        .agg(
            label=("label", "first"),
            n_seeds=("seed", "nunique"),
            mean=("eval_loss", "mean"),
            std=("eval_loss", "std"),
            params=("params", "first"),
            flops_per_token=("flops_per_token", "first"),
            tokens_per_s=("tokens_per_s", "mean"),
        )
        .sort_values("mean")
        .head(15)
    )
    long = done.melt(id_vars=["run", "eval_loss"], value_vars=AXES, var_name="axis", value_name="value")
    long["value"] = long["value"].astype(str).str.lower()
    stats = long.groupby(["run", "axis", "value"])["eval_loss"].agg(["size", "mean", "std"]).reset_index()
    base = stats.sort_values("size", ascending=False).groupby(["run", "axis"]).head(1)
    effects = stats.merge(base, on=["run", "axis"], suffixes=("", "_base"))
    effects["effect"] = effects["mean"] - effects["mean_base"]
    return {
        "status": status,
        "per_trial": per_trial,
        "frontier": frontier,
        "curves": down,
        "best": best,
        "effects": effects,
    }


def fit(frontier: Any) -> Any:
    from archscale.analysis import fit_power_law

    x = np.asarray(frontier["params"] if "params" in frontier.columns else frontier.index, float)
    y = np.asarray(frontier["eval_loss"], float)
    return fit_power_law(x, y, x_name="params", bootstrap=100)


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--curve-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import polars as pl

    from archscale.analysis import write_report
    from archscale.analysis.data.synthetic_results import write_search

    with tempfile.TemporaryDirectory() as tmp:
        seeds = 2
        evals = max(2, round(args.curve_rows / args.trials / 0.92))  # pruned/failed trials keep fewer rows
        start = time.perf_counter()
        dir = write_search(
            Path(tmp) / "store",
            n_archs=args.trials // seeds,
            seeds=seeds,
            evals_per_trial=evals,
            with_study=False,
            size_effect=True,
        )
        n_trials = pl.scan_parquet(dir / "trials.parquet").select(pl.len()).collect().item()
        n_rows = pl.scan_parquet(dir / "curves.parquet").select(pl.len()).collect().item()
        print(f"store: {n_trials:,} trials, {n_rows:,} curve rows (written in {time.perf_counter() - start:.1f} s)")

        t_polars, out_pl = best_of(lambda: polars_wrangle(dir), args.repeat)
        t_pandas, out_pd = best_of(lambda: pandas_wrangle(dir), args.repeat)
        assert out_pl["curves"].height == len(out_pd["curves"]), "pipelines disagree on downsampled curves"
        assert out_pl["per_trial"].height == len(out_pd["per_trial"]), "pipelines disagree on trials"
        t_fit, fitted = best_of(lambda: fit(out_pl["frontier"]), 1)
        t_report, _ = best_of(lambda: write_report(dir, Path(tmp) / "report.html", bootstrap=100), 1)
        t_load_report, _ = best_of(
            lambda: (fit(polars_wrangle(dir)["frontier"]), write_report(dir, Path(tmp) / "r.html", bootstrap=100)), 1
        )

    print(
        f"load + wrangle   polars {t_polars:6.3f} s   pandas {t_pandas:6.3f} s   "
        f"pandas/polars = {t_pandas / t_polars:.1f}x"
    )
    print(
        f"fit (power law on {out_pl['frontier'].height} frontier points, 100 bootstrap refits)   {t_fit:6.3f} s   "
        f"alpha = {fitted.params['alpha']:.3f}"
    )
    print(f"report (8 sections, SVG charts)   {t_report:6.3f} s")
    print(f"end to end (load + fit + report, polars)   {t_load_report:6.3f} s   (goal < 10 s)")


if __name__ == "__main__":
    main()
