"""Configurations at one budget cell ranked by seed-averaged loss, and each compared with the best.

``rank_configurations`` and ``compare_to_best``. Every configuration (what a seed replicates:
``data.cells.configuration``) is judged with **its own** seed variance; a configuration with one
run borrows a variance only from a noise model fitted on the replicated ones, with that
variance's uncertainty as degrees of freedom, else it has none and gets no verdict (``one run``;
``compare.noise``). A difference from the best is **paired by seed** where the two share two or
more seeds (the trainer seeds init with ``seed`` and batch order with ``seed + 1_000_003``, so
equal seeds see the same data order: the difference cancels that shared noise; a study's seed
blocks give every pair), else Welch's interval from each side's own (or borrowed) variance with
Satterthwaite's degrees of freedom. The best is **selected** from the very configurations it is
compared with, so each difference is one of the ``k (k - 1) / 2`` pairs the selection could have
produced: Holm's adjustment is over every such pair of every cell (``comparisons``), the pairs not
involving the best counting as p = 1 (conservative). ``p_best`` and the selection-corrected
interval of the best come from ``compare.selection``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from archscale.analysis.data.cells import configuration, display_name, with_budget_cells, with_identity_columns
from archscale.analysis.data.seed_effects import SeedEffect, seed_effect

from .noise import cell_variances
from .selection import SharedSeeds, p_best, selected_best
from .stats import MIN_EFFECT, holm, seeds_needed_range, t_test, verdict


def _prepare(trials: pl.DataFrame, metric: str) -> pl.DataFrame:
    trials = with_identity_columns(trials)
    done = trials.filter((pl.col("status") == "completed") & pl.col(metric).is_finite())
    return with_budget_cells(done).with_columns(config=configuration(), name=display_name()).collect()


def _per_config(done: pl.DataFrame, metric: str) -> pl.DataFrame:
    optional = {c: pl.col(c).cast(pl.Float64).mean() for c in ("params",) if c in done.columns}
    per = done.group_by("run", "cell", "config").agg(
        name=pl.col("name").first(),
        arch_id=pl.col("arch_id").first(),
        lr=pl.col("lr").first(),
        n=pl.len(),
        mean=pl.col(metric).mean(),
        std=pl.col(metric).std(),
        budget=pl.col("compute").mean() if "compute" in done.columns else pl.lit(None, pl.Float64),
        seeds=pl.col("seed").drop_nulls().unique().sort(),
        **optional,
    )
    per = cell_variances(per.sort("run", "cell", "config"), by=["run"])
    return per.join(_seed_effects(done, per, metric), on=["run", "cell"], how="left").with_columns(
        pl.col("seed_corr").fill_null(0.0)
    )


SEED_EFFECT_SCHEMA = {
    "run": pl.String, "cell": pl.String, "seed_corr": pl.Float64, "seed_corr_lo": pl.Float64,
    "seed_corr_hi": pl.Float64, "n_seeds": pl.Int64, "seed_block_configs": pl.Int64,
    "seed_ms": pl.Float64, "seed_ms_own": pl.Float64,
}  # fmt: skip


def _seed_effects(done: pl.DataFrame, per: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Per ``(run, cell)``: the shared seed effect (``seed_effects.seed_effect``) of its
    configurations' runs, each divided by its moderated seed sd: ``seed_corr`` (0 without a
    complete block of 2+ configurations on 2+ common seeds), its 95% interval, the block's seeds
    (``n_seeds``) and configurations, and the two mean squares the selection draws from."""
    rows = []
    sd = per.select("run", "cell", "config", sd=pl.col("var_moderated").sqrt())
    for (run, cell), part in done.filter(pl.col("seed").is_not_null()).group_by("run", "cell", maintain_order=True):
        wide = part.group_by("config", "seed").agg(y=pl.col(metric).mean()).pivot("seed", index="config", values="y")
        wide = wide.join(sd.filter((pl.col("run") == run) & (pl.col("cell") == cell)), on="config", how="left")
        y = wide.drop("config", "run", "cell", "sd").to_numpy().astype(float)
        effect = seed_effect(y, wide["sd"].fill_null(np.nan).to_numpy()) if wide.width > 5 else None
        row = {"run": run, "cell": cell, "seed_corr": 0.0}
        if effect is not None:
            row |= {
                "seed_corr": effect.rho, "seed_corr_lo": effect.rho_lo, "seed_corr_hi": effect.rho_hi,
                "n_seeds": effect.n_seeds, "seed_block_configs": effect.n_configs,
                "seed_ms": effect.ms_seed, "seed_ms_own": effect.ms_own,
            }  # fmt: skip
        rows.append(row)
    return pl.DataFrame(rows, schema=SEED_EFFECT_SCHEMA)


def shared_seeds(part: pl.DataFrame) -> SharedSeeds | None:
    """The shared-seed structure of one cell of a ranking (its ``seeds`` and seed effect)."""
    if part.height == 0 or part["seed_ms"].is_null().all():
        return None
    first = part.row(0, named=True)
    lists = part["seeds"].to_list()
    index = {seed: i for i, seed in enumerate(sorted({x for s in lists for x in (s or [])}))}
    effect = SeedEffect(
        first["seed_corr"], first["seed_corr_lo"], first["seed_corr_hi"], first["seed_ms"],
        first["seed_ms_own"], first["seed_block_configs"], first["n_seeds"],
    )  # fmt: skip
    return SharedSeeds([[index[x] for x in (s or [])] for s in lists], len(index), float(first["seed_corr"]), effect)


def _with_p_best(per: pl.DataFrame, seed: int) -> pl.DataFrame:
    parts = []
    for i, (_, part) in enumerate(per.group_by("run", "cell", maintain_order=True)):
        se = (part["var_moderated"].fill_null(np.nan) / part["n"]).sqrt().to_numpy()
        dof = part["dof_moderated"].fill_null(np.nan).to_numpy()
        p, mc = p_best(part["mean"].to_numpy(), se, dof, shared=shared_seeds(part), seed=seed + i)
        parts.append(part.with_columns(p_best=pl.Series(p).fill_nan(None), p_best_mc_se=pl.Series(mc).fill_nan(None)))
    return (
        pl.concat(parts)
        if parts
        else per.with_columns(p_best=pl.lit(None, pl.Float64), p_best_mc_se=pl.lit(None, pl.Float64))
    )


RANKING_COLUMNS = (
    "run", "cell", "rank", "name", "config", "arch_id", "lr", "n", "mean", "std", "lo", "hi", "interval",
    "budget", "noise", "noise_why", "var", "var_dof", "p_best", "p_best_mc_se", "seeds", "seed_corr",
    "seed_corr_lo", "seed_corr_hi", "n_seeds", "seed_block_configs", "seed_ms", "seed_ms_own",
    "var_moderated", "dof_moderated",
)  # fmt: skip


def rank_configurations(
    trials: pl.DataFrame, *, metric: str = "eval_loss", level: float = 0.95, seed: int = 0
) -> pl.DataFrame:
    """Configurations ranked by seed-averaged ``metric`` within each ``(run, cell)``.

    Columns: ``run, cell, rank, name, config, arch_id, lr, n, mean, std, lo, hi, interval, budget,
    noise, noise_why, var, var_dof, p_best, p_best_mc_se, seeds, seed_corr, seed_corr_lo,
    seed_corr_hi, n_seeds, seed_block_configs, seed_ms, seed_ms_own`` (the seeds each ran; the
    correlation of two configurations' runs with one seed in the cell, its 95% interval, and the
    complete configs x seeds block it was estimated on: ``data.seed_effects``). The
    interval is a t-interval on the mean from the configuration's own seeds (n >= 2, ``own
    seeds``); with one seed, from the variance the run's noise model lends it (``noise model,
    dof k``: ``compare.noise``); else none
    (``interval = "none"``, lo/hi null, ``noise_why`` says why). ``p_best``: the probability the
    configuration is the best of its cell, with its Monte Carlo error (``compare.selection``;
    null for a configuration without a noise estimate, which takes no part)."""
    done = _prepare(trials, metric)
    per = _per_config(done, metric)
    se = (per["var"].fill_null(np.nan) / per["n"]).sqrt().to_numpy()
    lo, hi, _ = t_test(per["mean"].to_numpy(), se, per["var_dof"].fill_null(np.nan).to_numpy(), level)
    kind = (
        pl.when(pl.col("noise") == "own seeds")
        .then(pl.lit("own seeds"))
        .when(pl.col("lo").is_not_null())
        .then(pl.format("noise model, dof {}", pl.col("var_dof").round(1)))
        .otherwise(pl.lit("none"))
    )
    per = per.with_columns(lo=pl.Series(lo).fill_nan(None), hi=pl.Series(hi).fill_nan(None)).with_columns(interval=kind)
    return (
        _with_p_best(per, seed)
        .sort("run", "cell", "mean", "config")
        .with_columns(rank=pl.col("mean").rank("ordinal").over("run", "cell").cast(pl.UInt32))
        .select(RANKING_COLUMNS)
    )


DIFFERENCE_SCHEMA = {
    "run": pl.String, "cell": pl.String, "best": pl.String, "name": pl.String, "n_best": pl.UInt32,
    "n": pl.UInt32, "n_pairs": pl.UInt32, "method": pl.String, "diff": pl.Float64, "lo": pl.Float64,
    "hi": pl.Float64, "dof": pl.Float64, "p": pl.Float64, "p_holm": pl.Float64, "verdict": pl.String,
    "sd": pl.Float64, "sd_dof": pl.Float64, "seeds_needed": pl.Float64, "seeds_needed_lo": pl.Float64,
    "seeds_needed_hi": pl.Float64, "more_seeds": pl.Float64, "min_effect": pl.Float64, "comparisons": pl.Int64,
    "p_best": pl.Float64, "noise_why": pl.String,
}  # fmt: skip


def compare_to_best(
    trials: pl.DataFrame,
    *,
    metric: str = "eval_loss",
    level: float = 0.95,
    method: str = "auto",
    min_effect: float = MIN_EFFECT,
) -> pl.DataFrame:
    """Every configuration compared with the best of its ``(run, cell)``: the lowest seed mean
    among configurations with a noise estimate (a lower one-run mean with nothing to borrow is
    compared too, with the verdict ``one run``; ``diff`` < 0 then).

    ``method="auto"``: paired by seed over the seeds both share when there are 2+ (``paired``),
    else Welch from each side's own variance (``welch``) or with a side's variance borrowed from
    the noise model (``welch (noise model)``), else none: a side with one run and nothing to
    borrow gives the verdict ``one run`` (``noise_why`` says what to run). ``"welch"`` forces the
    unpaired interval (to show what pairing buys). Columns: ``run, cell, best, name, n_best, n,
    n_pairs, method, diff`` (name minus best; > 0: the best is better) ``, lo, hi, dof, p, p_holm,
    verdict, sd, sd_dof, seeds_needed, seeds_needed_lo, seeds_needed_hi, more_seeds, min_effect,
    comparisons, p_best, noise_why``. ``p_holm`` is Holm over every pair of every cell
    (``comparisons`` of them, see the module docstring). ``seeds_needed`` (pairs when paired, else
    per architecture) resolves a ``min_effect`` difference (0.02 nats) at the estimated spread
    ``sd`` (of one difference when paired, of one run otherwise), ``_lo``/``_hi`` at the ends of
    the spread's 95% interval. The lead itself is optimistic (the best was selected): read
    ``p_best`` and ``rank_configurations``' selection-corrected interval (``best_interval``)."""
    done = _prepare(trials, metric)
    ranking = rank_configurations(trials, metric=metric, level=level)
    # the reference: the lowest mean among configurations with a noise estimate (a one-run
    # configuration with nothing to borrow cannot be judged, so it cannot be the yardstick either)
    reference = ranking.sort(pl.col("var").is_null(), "mean").group_by("run", "cell", maintain_order=True).first()
    best = reference.select(
        "run", "cell", best="config", best_name="name", n_best="n", mean_best="mean",
        var_best="var", dof_best="var_dof",
    )  # fmt: skip
    others = ranking.join(best, on=["run", "cell"]).filter(pl.col("config") != pl.col("best"))
    sizes = ranking.group_by("run", "cell").agg(k=pl.len())["k"].to_numpy().astype(int)
    family = int(np.sum(sizes * (sizes - 1) // 2))  # every pair the selection of the best could make
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
    rows = others.join(pairs, on=["run", "cell", "config"], how="left")
    if rows.height == 0:
        return pl.DataFrame(schema=DIFFERENCE_SCHEMA)
    n_pairs = rows["n_pairs"].fill_null(0).to_numpy()
    n_a, n_b = rows["n"].to_numpy().astype(float), rows["n_best"].to_numpy().astype(float)
    v_a, v_b = rows["var"].fill_null(np.nan).to_numpy(), rows["var_best"].fill_null(np.nan).to_numpy()
    k_a, k_b = rows["var_dof"].fill_null(np.nan).to_numpy(), rows["dof_best"].fill_null(np.nan).to_numpy()
    borrowed = (rows["noise"] == "noise model").to_numpy() | (n_b < 2)
    paired = (n_pairs >= 2) & (method == "auto")
    welch = ~paired & np.isfinite(v_a) & np.isfinite(v_b)
    # one common seed (fewer than 2: no pairing) still shares noise: its covariance, at the lower
    # end of the shared part's 95% interval (the smallest the data support), is taken off
    rho_lo = rows["seed_corr_lo"].fill_null(0.0).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        va, vb = v_a / n_a, v_b / n_b
        cov = np.where(paired | (method != "auto"), 0.0, rho_lo * np.sqrt(v_a * v_b) * n_pairs / (n_a * n_b))
        welch_se = np.sqrt(np.maximum(va + vb - 2 * cov, 0.25 * (va + vb)))
        welch_dof = (va + vb) ** 2 / (va**2 / k_a + vb**2 / k_b)
        d_std = rows["d_std"].fill_null(np.nan).to_numpy()
        diff = np.where(
            paired, rows["d_mean"].fill_null(np.nan).to_numpy(), rows["mean"].to_numpy() - rows["mean_best"].to_numpy()
        )
        se = np.select([paired, welch], [d_std / np.sqrt(n_pairs), welch_se], np.nan)
        dof = np.select([paired, welch], [n_pairs - 1.0, welch_dof], np.nan)
        # the spread of one observation for planning: one difference when paired, one run otherwise
        sd = np.where(paired, d_std, se / np.sqrt(1 / n_a + 1 / n_b))
    lo, hi, p = t_test(diff, se, dof, level)
    needed, needed_lo, needed_hi = seeds_needed_range(sd, dof, paired=paired, effect=min_effect)
    have = np.where(paired, n_pairs, np.minimum(n_a, n_b))
    kind = np.select([paired, welch & ~borrowed, welch], ["paired", "welch", "welch (noise model)"], "none")
    one_run = ~paired & ~welch
    why = [
        None if not o else (wa or wb or "one run: no noise estimate; run 2 more seeds")
        for o, wa, wb in zip(one_run, rows["noise_why"].to_list(), _best_why(ranking, rows), strict=True)
    ]
    return (
        rows.with_columns(
            method=pl.Series(kind, dtype=pl.String),
            n_pairs=pl.Series(n_pairs).cast(pl.UInt32),
            diff=pl.Series(diff),
            lo=pl.Series(lo).fill_nan(None),
            hi=pl.Series(hi).fill_nan(None),
            dof=pl.Series(dof).fill_nan(None),
            p=pl.Series(p).fill_nan(None),
            p_holm=pl.Series(holm(p, family=family)).fill_nan(None),
            sd=pl.Series(sd).fill_nan(None),
            sd_dof=pl.Series(dof).fill_nan(None),
            seeds_needed=pl.Series(needed),
            seeds_needed_lo=pl.Series(needed_lo),
            seeds_needed_hi=pl.Series(needed_hi),
            more_seeds=pl.Series(np.maximum(needed - have, 0)),
            min_effect=pl.lit(min_effect),
            comparisons=pl.lit(family, pl.Int64),
            _one_run=pl.Series(one_run),
            noise_why=pl.Series(why, dtype=pl.String),
        )
        .with_columns(verdict=verdict(pl.col("p_holm"), pl.col("lo").is_not_null(), one_run=pl.col("_one_run")))
        .rename({"name": "_name"})
        .with_columns(best=pl.col("best_name"), name=pl.col("_name"))
        .with_columns(n_best=pl.col("n_best").cast(pl.UInt32), n=pl.col("n").cast(pl.UInt32))
        .select(list(DIFFERENCE_SCHEMA))
        .sort("run", "cell", "diff")
    )


def _best_why(ranking: pl.DataFrame, rows: pl.DataFrame) -> list[str | None]:
    """The best's ``noise_why`` beside each row (the best may be the side with one run)."""
    # the reference: the lowest mean among configurations with a noise estimate (a one-run
    # configuration with nothing to borrow cannot be judged, so it cannot be the yardstick either)
    reference = ranking.sort(pl.col("var").is_null(), "mean").group_by("run", "cell", maintain_order=True).first()
    best = reference.select("run", "cell", best_why="noise_why")
    return (
        rows.select("run", "cell")
        .join(best, on=["run", "cell"], how="left", maintain_order="left")["best_why"]
        .to_list()
    )


def best_interval(ranking: pl.DataFrame, *, level: float = 0.95, seed: int = 0) -> pl.DataFrame:
    """Per ``(run, cell)`` of a ``rank_configurations`` table: the best's mean with its
    selection-corrected interval (``best_lo``, ``best_hi``), its lead over the runner-up with its
    corrected interval (``lead``, ``lead_lo``, ``lead_hi``), and ``optimism`` (how far a selected
    mean lies below its truth on average): ``compare.selection.selected_best`` over the
    configurations with a noise estimate (``candidates`` of them)."""
    rows = []
    for i, ((run, cell), part) in enumerate(ranking.group_by("run", "cell", maintain_order=True)):
        se = (part["var_moderated"].fill_null(np.nan) / part["n"]).sqrt().to_numpy()
        dof = part["dof_moderated"].fill_null(np.nan).to_numpy()
        sel = selected_best(part["mean"].to_numpy(), se, dof, shared=shared_seeds(part), level=level, seed=seed + i)
        judged = part.filter(pl.col("var").is_not_null()).sort("mean")
        name = judged["name"][0] if judged.height else None
        rows.append({"run": run, "cell": cell, "name": name, "candidates": judged.height, **sel})
    schema = {"run": pl.String, "cell": pl.String, "name": pl.String, "candidates": pl.Int64}
    schema |= {k: pl.Float64 for k in ("best_lo", "best_hi", "optimism", "lead", "lead_lo", "lead_hi")}
    return pl.DataFrame(rows, schema=schema).with_columns(pl.col(pl.Float64).fill_nan(None))
