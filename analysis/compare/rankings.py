"""Architectures at one budget cell ranked by seed-averaged loss, and each compared with the best.

``rank_configurations`` and ``compare_to_best``: architectures at one budget cell ranked by
seed-averaged loss, and each compared with the best, **paired by seed** where the two share two
or more seeds (the trainer seeds init with ``seed`` and batch order with ``seed + 1_000_003``, so
equal seeds see the same data order: the difference cancels that noise), Welch's unpaired
interval where both have replicas, else a pooled seed spread with its degrees of freedom; with
none of these, no interval (never a zero-width one). A *configuration* is what a seed replicates
(``data.cells.configuration``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from archscale.analysis.data.cells import configuration, display_name, with_budget_cells, with_identity_columns

from .stats import holm, seeds_needed, t_test, verdict


def _prepare(trials: pl.DataFrame, metric: str) -> pl.DataFrame:
    trials = with_identity_columns(trials)
    done = trials.filter((pl.col("status") == "completed") & pl.col(metric).is_finite())
    return with_budget_cells(done).with_columns(config=configuration(), name=display_name()).collect()


def _pooled(per_config: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Seed spread pooled over every configuration of a run with replicas: ``pooled_var, pooled_dof``."""
    return (
        per_config.group_by(by)
        .agg(
            pooled_dof=(pl.col("n") - 1).sum(),
            pooled_ss=(pl.col("std").fill_null(0.0) ** 2 * (pl.col("n") - 1)).sum(),
        )
        .select(*by, "pooled_dof", pooled_var=pl.col("pooled_ss") / pl.col("pooled_dof").replace(0, None))
    )


def rank_configurations(trials: pl.DataFrame, *, metric: str = "eval_loss", level: float = 0.95) -> pl.DataFrame:
    """Configurations ranked by seed-averaged ``metric`` within each ``(run, cell)``.

    Columns: ``run, cell, rank, name, config, arch_id, lr, n, mean, std, lo, hi, interval``. The
    interval is a t-interval on the mean from the configuration's own seeds (n >= 2); with one
    seed, from the run's pooled seed spread (``pooled, dof k``); with no replicas anywhere in the
    run, none (``interval = "none"``, lo/hi null): a single draw says nothing about its noise."""
    done = _prepare(trials, metric)
    by = ["run"]
    per = done.group_by("run", "cell", "config").agg(
        name=pl.col("name").first(),
        arch_id=pl.col("arch_id").first(),
        lr=pl.col("lr").first(),
        n=pl.len(),
        mean=pl.col(metric).mean(),
        std=pl.col(metric).std(),
        budget=pl.col("compute").mean() if "compute" in done.columns else pl.lit(None, pl.Float64),
    )
    per = per.join(_pooled(per, by), on=by)
    own = per["n"] >= 2
    sd = np.where(own, per["std"].fill_null(np.nan).to_numpy(), np.sqrt(per["pooled_var"].fill_null(np.nan).to_numpy()))
    dof = np.where(own, per["n"].to_numpy() - 1, per["pooled_dof"].to_numpy())
    lo, hi, _ = t_test(per["mean"].to_numpy(), sd / np.sqrt(per["n"].to_numpy()), dof, level)
    kind = (
        pl.when(pl.col("n") >= 2)
        .then(pl.lit("own seeds"))
        .when(pl.col("lo").is_not_null())
        .then(pl.format("pooled, dof {}", pl.col("pooled_dof")))
        .otherwise(pl.lit("none"))
    )
    return (
        per.with_columns(lo=pl.Series(lo).fill_nan(None), hi=pl.Series(hi).fill_nan(None))
        .with_columns(interval=kind)
        .sort("run", "cell", "mean", "config")
        .with_columns(rank=pl.col("mean").rank("ordinal").over("run", "cell").cast(pl.UInt32))
        .select(
            "run",
            "cell",
            "rank",
            "name",
            "config",
            "arch_id",
            "lr",
            "n",
            "mean",
            "std",
            "lo",
            "hi",
            "interval",
            "budget",
        )
    )


def compare_to_best(
    trials: pl.DataFrame, *, metric: str = "eval_loss", level: float = 0.95, method: str = "auto"
) -> pl.DataFrame:
    """Every configuration compared with the best (lowest seed mean) of its ``(run, cell)``.

    ``method="auto"``: paired by seed over the seeds both share when there are 2+ (``paired``),
    else Welch when both have 2+ seeds (``welch``), else the run's pooled seed spread
    (``pooled``), else none. ``"welch"`` forces the unpaired interval (to show what pairing buys).
    Columns: ``run, cell, best, name, n_best, n, n_pairs, method, diff`` (name minus best; > 0: the
    best is better) ``, lo, hi, dof, p, p_holm, verdict, sd, seeds_needed, more_seeds``. Holm is over
    all rows returned; ``seeds_needed`` (pairs when paired, else per architecture) resolves the
    observed ``diff`` at the observed spread ``sd`` (of one difference when paired, of one run
    otherwise). The best is chosen from these same runs, so its lead is optimistic: re-run finalists
    with fresh seeds (a study with ``from_search``) before believing it."""
    done = _prepare(trials, metric)
    ranking = rank_configurations(trials, metric=metric, level=level)
    best = ranking.filter(pl.col("rank") == 1).select(
        "run", "cell", best="config", best_name="name", n_best="n", mean_best="mean", std_best="std"
    )
    others = ranking.filter(pl.col("rank") > 1).join(best, on=["run", "cell"])
    per_seed = (
        done.filter(pl.col("seed").is_not_null()).group_by("run", "cell", "config", "seed").agg(y=pl.col(metric).mean())
    )
    pairs = (
        per_seed.join(best.select("run", "cell", "best"), on=["run", "cell"])
        .filter(pl.col("config") != pl.col("best"))
        .join(per_seed.rename({"config": "best", "y": "y_best"}), on=["run", "cell", "best", "seed"], how="inner")
        .group_by("run", "cell", "config")
        .agg(
            n_pairs=pl.len(),
            d_mean=(pl.col("y") - pl.col("y_best")).mean(),
            d_std=(pl.col("y") - pl.col("y_best")).std(),
        )
    )
    pooled = _pooled(ranking.select("run", "n", "std"), ["run"])
    rows = others.join(pairs, on=["run", "cell", "config"], how="left").join(pooled, on="run", how="left")
    if rows.height == 0:
        return pl.DataFrame(
            schema={"run": pl.String, "cell": pl.String, "best": pl.String, "name": pl.String, "n_best": pl.UInt32,
                    "n": pl.UInt32, "n_pairs": pl.UInt32, "method": pl.String, "diff": pl.Float64, "lo": pl.Float64,
                    "hi": pl.Float64, "dof": pl.Float64, "p": pl.Float64, "p_holm": pl.Float64, "verdict": pl.String,
                    "sd": pl.Float64, "seeds_needed": pl.Float64, "more_seeds": pl.Float64}
        )  # fmt: skip
    n_pairs = rows["n_pairs"].fill_null(0).to_numpy()
    n_a, n_b = rows["n"].to_numpy().astype(float), rows["n_best"].to_numpy().astype(float)
    s_a, s_b = rows["std"].fill_null(np.nan).to_numpy(), rows["std_best"].fill_null(np.nan).to_numpy()
    pooled_var, pooled_dof = rows["pooled_var"].fill_null(np.nan).to_numpy(), rows["pooled_dof"].to_numpy()
    paired = (n_pairs >= 2) & (method == "auto")
    welch = ~paired & (n_a >= 2) & (n_b >= 2)
    pool = ~paired & ~welch & (pooled_dof > 0) & (method == "auto")
    with np.errstate(divide="ignore", invalid="ignore"):
        va, vb = s_a**2 / n_a, s_b**2 / n_b
        welch_se = np.sqrt(va + vb)
        welch_dof = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
        d_std = rows["d_std"].fill_null(np.nan).to_numpy()
        diff = np.where(
            paired, rows["d_mean"].fill_null(np.nan).to_numpy(), rows["mean"].to_numpy() - rows["mean_best"].to_numpy()
        )
        se = np.select(
            [paired, welch, pool],
            [d_std / np.sqrt(n_pairs), welch_se, np.sqrt(pooled_var * (1 / n_a + 1 / n_b))],
            np.nan,
        )
        dof = np.select([paired, welch, pool], [n_pairs - 1.0, welch_dof, pooled_dof], np.nan)
        # the spread of one observation for planning: one difference when paired, one run otherwise
        sd = np.where(paired, d_std, se / np.sqrt(1 / n_a + 1 / n_b))
    lo, hi, p = t_test(diff, se, dof, level)
    needed = seeds_needed(diff, sd, paired=paired)
    have = np.where(paired, n_pairs, np.minimum(n_a, n_b))
    kind = np.select([paired, welch, pool], ["paired", "welch", "pooled"], "none")
    return (
        rows.with_columns(
            method=pl.Series(kind, dtype=pl.String),
            n_pairs=pl.Series(n_pairs).cast(pl.UInt32),
            diff=pl.Series(diff),
            lo=pl.Series(lo).fill_nan(None),
            hi=pl.Series(hi).fill_nan(None),
            dof=pl.Series(dof).fill_nan(None),
            p=pl.Series(p).fill_nan(None),
            p_holm=pl.Series(holm(p)).fill_nan(None),
            sd=pl.Series(sd).fill_nan(None),
            seeds_needed=pl.Series(needed),
            more_seeds=pl.Series(np.maximum(needed - have, 0)),
        )
        .with_columns(verdict=verdict(pl.col("p_holm"), pl.col("lo").is_not_null()))
        .select(
            "run",
            "cell",
            best="best_name",
            name="name",
            n_best=pl.col("n_best").cast(pl.UInt32),
            n=pl.col("n").cast(pl.UInt32),
            n_pairs="n_pairs",
            method="method",
            diff="diff",
            lo="lo",
            hi="hi",
            dof="dof",
            p="p",
            p_holm="p_holm",
            verdict="verdict",
            sd="sd",
            seeds_needed="seeds_needed",
            more_seeds="more_seeds",
        )  # fmt: skip
        .sort("run", "cell", "diff")
    )
