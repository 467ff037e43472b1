"""Comparisons that respect sample size, pairing and selection.

The statistics every comparison in ``effects`` and ``verdicts`` shares, and the comparisons of
whole architectures:

* ``holm``: Holm's step-down adjustment of a family of p-values.
* ``seeds_needed``: how many observations per side (pairs, when paired) a two-sided t-test at
  ``alpha = 0.05`` needs to detect the observed difference with power 0.8 at the observed spread
  (exact noncentral-t power, searched upward from the normal approximation).
* ``at_equal_tokens``: an ASHA search's trials compared at equal tokens seen (interpolated on
  ``curves.parquet``), so the trials it stopped early count instead of only its survivors.
* ``rank_configurations`` and ``compare_to_best``: architectures at one budget cell ranked by
  seed-averaged loss, and each compared with the best, **paired by seed** where the two share two
  or more seeds (the trainer seeds init with ``seed`` and batch order with ``seed + 1_000_003``, so
  equal seeds see the same data order: the difference cancels that noise), Welch's unpaired
  interval where both have replicas, else a pooled seed spread with its degrees of freedom; with
  none of these, no interval (never a zero-width one).
* ``lr_sensitivity``: Wortsman et al. (2023)'s learning-rate sensitivity of each architecture over
  the learning rates a search tried for it.

A *configuration* is what a seed replicates: a study's family (``group``), or in a search an
``arch_id`` at one learning rate (Optuna replicas copy the trial's parameters, ``lr`` included).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

ALPHA = 0.05
POWER = 0.8
#: seeds_needed gives up above this many (reported as inf: not resolvable in practice).
MAX_SEEDS = 10_000


def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (NaN stays NaN and does not count as a comparison)."""
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def seeds_needed(
    effect: Sequence[float] | np.ndarray,
    sd: Sequence[float] | np.ndarray,
    *,
    paired: Sequence[bool] | np.ndarray | bool,
    alpha: float = ALPHA,
    power: float = POWER,
) -> np.ndarray:
    """Smallest n (pairs when ``paired``, else per side) for which a two-sided t-test at ``alpha``
    detects ``effect`` with ``power``, when one observation (one difference, when paired) has
    standard deviation ``sd``. Paired: se = sd/sqrt(n), n - 1 dof; unpaired: se = sd*sqrt(2/n),
    2n - 2 dof. inf when the effect is 0, or the spread unknown, or n would exceed ``MAX_SEEDS``."""
    from scipy import stats

    effect = np.abs(np.asarray(effect, float))
    sd = np.asarray(sd, float)
    paired = np.broadcast_to(np.asarray(paired, bool), effect.shape)
    out = np.full(effect.shape, np.inf)
    ok = np.isfinite(effect) & np.isfinite(sd) & (effect > 0) & (sd > 0)
    if not ok.any():
        return out
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    ratio = (z * sd[ok] / effect[ok]) ** 2
    factor = np.where(paired[ok], 1.0, 2.0)
    start = np.maximum(2.0, np.floor(factor * ratio) - 1)  # the normal approximation, slightly low
    found = np.full(start.shape, np.inf)
    todo = np.arange(start.size)
    for _ in range(16):  # windows of 4: the t correction adds a few at most (power rises with n)
        if todo.size == 0 or start[todo].min() > MAX_SEEDS:
            break
        n = start[todo, None] + np.arange(4)[None, :]
        achieved = _power(stats, effect[ok][todo, None], sd[ok][todo, None], factor[todo, None], n, alpha)
        hit = achieved >= power
        first = np.argmax(hit, axis=1)
        done = hit.any(axis=1)
        found[todo[done]] = n[done, first[done]]
        start[todo] += 4
        todo = todo[~done]
    out[ok] = np.where(found > MAX_SEEDS, np.inf, found)
    return out


def _power(stats, effect: np.ndarray, sd: np.ndarray, factor: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    """Power of the two-sided t-test with n per side (``factor`` 2) or n pairs (``factor`` 1)."""
    dof = np.where(factor == 1.0, n - 1, 2 * n - 2)
    ncp = effect / (sd * np.sqrt(factor / n))
    crit = stats.t.ppf(1 - alpha / 2, dof)
    # scipy's noncentral t returns NaN far in its tails; there the normal approximation is exact enough
    upper = stats.nct.sf(crit, dof, ncp)
    upper = np.where(np.isfinite(upper), upper, stats.norm.sf(crit - ncp))
    lower = np.nan_to_num(stats.nct.cdf(-crit, dof, ncp), nan=0.0)  # the wrong-sign tail: ~0 here
    return upper + lower


def t_test(
    effect: np.ndarray, se: np.ndarray, dof: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lo, hi, p)`` of a t-interval and two-sided p-value; NaN where se or dof is unusable."""
    from scipy import stats

    effect, se, dof = (np.asarray(a, float) for a in (effect, se, dof))
    usable = np.isfinite(se) & (se > 0) & np.isfinite(dof) & (dof > 0)
    dof_ok = np.where(usable, dof, 1.0)
    half = np.where(usable, stats.t.ppf(0.5 + level / 2, dof_ok) * se, np.nan)
    p = np.where(usable, 2 * stats.t.sf(np.abs(effect) / np.where(usable, se, 1.0), dof_ok), np.nan)
    return effect - half, effect + half, p


def verdict(p_holm: pl.Expr, has_interval: pl.Expr, alpha: float = ALPHA) -> pl.Expr:
    """``resolved`` (Holm-adjusted p below alpha), ``within noise`` or ``no interval``."""
    return (
        pl.when(p_holm < alpha)
        .then(pl.lit("resolved"))
        .when(has_interval)
        .then(pl.lit("within noise"))
        .otherwise(pl.lit("no interval"))
    )


# ------------------------------------------------------------------------------------------------
# ASHA: compare at equal tokens seen
# ------------------------------------------------------------------------------------------------


def at_equal_tokens(
    trials: pl.DataFrame, curves: pl.DataFrame | pl.LazyFrame, *, metric: str = "eval_loss"
) -> pl.DataFrame:
    """The trials of every run in which a scheduler stopped some early (``pruned``), with ``metric``
    replaced by its value at ``compared_at_tokens``: the largest token count that every completed
    or pruned trial of the run with curves reached (linear interpolation between the evaluations
    around it; exact when they share an evaluation schedule). Those trials come back as
    ``completed``, so every comparison counts them; trials without curves are dropped. Runs
    without pruned trials come back unchanged (their completed trials already share a budget)."""
    curves = curves.lazy() if isinstance(curves, pl.DataFrame) else curves
    key = ["run", "trial_id"]
    asha_runs = trials.filter(pl.col("status") == "pruned")["run"].unique()
    keep = trials.filter(~pl.col("run").is_in(asha_runs.implode()))
    live = trials.filter(pl.col("run").is_in(asha_runs.implode()) & pl.col("status").is_in(["completed", "pruned"]))
    if live.height == 0:
        return keep.with_columns(compared_at_tokens=pl.lit(None, pl.Int64))
    points = (
        curves.select(*key, "tokens", pl.col(metric).alias("_y"))
        .join(live.lazy().select(key), on=key)
        .filter(pl.col("tokens").is_not_null() & pl.col("_y").is_finite())
        .collect()
    )
    reach = points.group_by(key).agg(reached=pl.col("tokens").max())
    common = reach.group_by("run").agg(compared_at_tokens=pl.col("reached").min())
    targets = reach.join(common, on="run").select(*key, "compared_at_tokens").sort("compared_at_tokens")
    points = points.sort("tokens")
    below = targets.join_asof(
        points, left_on="compared_at_tokens", right_on="tokens", by=key, strategy="backward", check_sortedness=False
    )
    above = targets.join_asof(
        points, left_on="compared_at_tokens", right_on="tokens", by=key, strategy="forward", check_sortedness=False
    )
    t0, y0 = below["tokens"].cast(pl.Float64), below["_y"]
    t1, y1 = above["tokens"].cast(pl.Float64), above["_y"]
    t = targets["compared_at_tokens"].cast(pl.Float64)
    frac = ((t - t0) / (t1 - t0)).fill_nan(0.0).fill_null(0.0)
    value = (y0 + frac * (y1 - y0)).fill_null(y1)
    interpolated = targets.with_columns(_value=value)
    at = (
        live.join(interpolated, on=key)
        .with_columns(pl.col("_value").alias(metric), status=pl.lit("completed"))
        .drop("_value")
    )
    return pl.concat([keep.with_columns(compared_at_tokens=pl.lit(None, pl.Int64)), at], how="diagonal_relaxed")


def comparable_trials(
    trials: pl.DataFrame, curves: pl.DataFrame | pl.LazyFrame | None, *, metric: str = "eval_loss"
) -> tuple[pl.DataFrame, list[str]]:
    """The trials to compare, and what to say about it: runs with early-stopped trials at equal
    tokens (``at_equal_tokens``; without curves, only their survivors), others unchanged."""
    notes: list[str] = []
    pruned = trials.filter(pl.col("status") == "pruned")
    if pruned.height == 0:
        return trials, notes
    if curves is not None and metric not in curves.collect_schema():
        curves = None
    equal = at_equal_tokens(trials, curves, metric=metric) if curves is not None else trials.clear()
    for (run,), part in trials.group_by("run", maintain_order=True):
        stopped = part.filter(pl.col("status") == "pruned").height
        if stopped == 0:
            continue
        survivors = part.filter(pl.col("status") == "completed").height
        at = equal.filter((pl.col("run") == run) & pl.col("compared_at_tokens").is_not_null())
        if at.height:
            notes.append(
                f"{run}: early stopping ended {stopped} of {part.height} trials early; axis effects and LR "
                f"sensitivity compare all {at.height} trials with curves at {at['compared_at_tokens'][0]:,} tokens "
                f"(the most every one reached); rankings count only the {survivors} that finished."
            )
        else:
            notes.append(
                f"{run}: early stopping ended {stopped} of {part.height} trials early and there are no curves to "
                f"compare them at equal tokens: only the {survivors} survivors are counted (they were selected for "
                "doing well early)."
            )
    if equal.height == 0:
        return trials, notes
    return equal, notes


# ------------------------------------------------------------------------------------------------
# Architectures at one budget cell
# ------------------------------------------------------------------------------------------------


def configuration() -> pl.Expr:
    """What a seed replicates: the study family, else the search's ``arch_id`` at its ``lr``."""
    lr = pl.col("lr").cast(pl.Float64).round_sig_figs(6).cast(pl.String).fill_null("?")
    return pl.coalesce(pl.col("group"), pl.concat_str([pl.col("arch_id").fill_null("?"), pl.lit("@lr="), lr]))


def _name() -> pl.Expr:
    """How a configuration is shown: the family, or ``label [arch_id, lr x]`` in a search (one label
    may name several architectures, and one architecture several learning rates)."""
    lr = pl.col("lr").cast(pl.Float64).round_sig_figs(2).cast(pl.String).fill_null("?")
    label = pl.coalesce(pl.col("label"), pl.col("arch_id"))
    return pl.coalesce(pl.col("group"), pl.format("{} [{}, lr {}]", label, pl.col("arch_id").fill_null("?"), lr))


def with_identity_columns(trials: pl.DataFrame) -> pl.DataFrame:
    """``trials`` with the columns comparisons key on, added when a hand-made frame lacks them:
    ``run`` (one run, ``"run"``), and ``group, arch_id, lr, seed, label`` as typed nulls."""
    if "run" not in trials.columns:
        trials = trials.with_columns(run=pl.lit("run"))
    optional = {"group": pl.String, "arch_id": pl.String, "lr": pl.Float64, "seed": pl.Int64, "label": pl.String}
    missing = [pl.lit(None, dtype).alias(name) for name, dtype in optional.items() if name not in trials.columns]
    return trials.with_columns(missing) if missing else trials


def _prepare(trials: pl.DataFrame, metric: str) -> pl.DataFrame:
    from .effects import with_budget_cells

    trials = with_identity_columns(trials)
    done = trials.filter((pl.col("status") == "completed") & pl.col(metric).is_finite())
    return with_budget_cells(done).with_columns(config=configuration(), name=_name()).collect()


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


# ------------------------------------------------------------------------------------------------
# Learning-rate sensitivity
# ------------------------------------------------------------------------------------------------


def lr_sensitivity(trials: pl.DataFrame, *, metric: str = "eval_loss") -> pl.DataFrame:
    """Learning-rate sensitivity of each ``(run, arch_id)`` over the learning rates tried for it.

    Wortsman et al. (2023), "Small-scale proxies for large-scale Transformer training
    instabilities", section 2.2: ``E_lr[min(L(lr), L0) - L*]``, where ``L(lr)`` is the final loss at
    learning rate ``lr`` (here the mean over its seeds), ``L* = min_lr L(lr)`` and ``L0`` the loss at
    initialisation, which caps a run that diverged. ``L0`` is taken as ``ln(vocab_size)`` (the loss
    of the uniform prediction a freshly initialised decoder makes); a failed trial whose error
    says it diverged (the trainer's non-finite loss or 3x-loss checks) counts as ``L0``. The expectation is the mean
    over the distinct learning rates tried (a search samples them log-uniformly, as the paper's grid
    is log-spaced). Columns: ``run, arch_id, lrs, lr_min, lr_max, best_lr, best_loss,
    lr_sensitivity`` (null with fewer than 2 learning rates: nothing to compare).
    """
    need = {"run", "arch_id", "lr", "status", metric}
    if not need <= set(trials.columns):
        return pl.DataFrame(schema={"run": pl.String, "arch_id": pl.String, "lrs": pl.UInt32, "lr_min": pl.Float64,
                                    "lr_max": pl.Float64, "best_lr": pl.Float64, "best_loss": pl.Float64,
                                    "lr_sensitivity": pl.Float64})  # fmt: skip
    vocab = pl.col("vocab_size").cast(pl.Float64) if "vocab_size" in trials.columns else pl.lit(None, pl.Float64)
    error = pl.col("error").cast(pl.String).str.to_lowercase() if "error" in trials.columns else pl.lit(None, pl.String)
    # the trainer records a divergence as "diverged: <reason>" (search/trial.py); "infeasible" is not one
    diverged = (pl.col("status") == "failed") & error.str.contains("diverg").fill_null(False)
    init_loss = vocab.log()
    usable = trials.filter(pl.col("arch_id").is_not_null() & pl.col("lr").is_not_null()).with_columns(
        l0=init_loss, y=pl.when(diverged).then(init_loss).otherwise(pl.col(metric))
    )
    usable = usable.filter(((pl.col("status") == "completed") | diverged) & pl.col("y").is_finite())
    per_lr = usable.group_by("run", "arch_id", "lr").agg(y=pl.col("y").mean(), l0=pl.col("l0").first())
    return (
        per_lr.with_columns(best=pl.col("y").min().over("run", "arch_id"))
        .with_columns(gap=pl.min_horizontal("y", pl.col("l0").fill_null(float("inf"))) - pl.col("best"))
        .group_by("run", "arch_id")
        .agg(
            lrs=pl.len().cast(pl.UInt32),
            lr_min=pl.col("lr").min(),
            lr_max=pl.col("lr").max(),
            best_lr=pl.col("lr").sort_by("y").first(),
            best_loss=pl.col("best").first(),
            lr_sensitivity=pl.when(pl.len() >= 2).then(pl.col("gap").mean()),
        )
        .sort("run", "arch_id")
    )
