"""Per-axis effects: how each value of an architecture axis changes the loss, at equal budget.

Effects convention: for each architecture axis (``ffn_activation``, ``position``, ...) and each of
its values, ``effect = metric | value - metric | baseline value`` over completed trials at equal
budget: within one search (one search has one budget), or within one planned grid point (size and
tokens) of a scaling study. Paired by seed where the design allows it, else Welch's interval; a
single trial never gets an interval of its own; p-values are Holm-adjusted over the comparisons
made, and every difference says how many seeds would resolve it (``axis_effects``). Negative
effects on a loss mean the value is better. An ASHA search is compared at equal tokens seen with
``data.cells.at_equal_tokens`` (the report does); otherwise only its survivors count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from archscale.analysis.data.cells import configuration, with_budget_cells
from archscale.analysis.data.loaders import ARCH_AXES, NULL_VALUES

from .stats import holm, seeds_needed, t_test, verdict
from .two_level import two_level

#: Baseline value per axis: a GPT-2-like decoder. Axes not listed use their most common value.
DEFAULT_BASELINES: dict[str, str] = {
    "ffn_activation": "gelu",
    "norm": "layernorm",
    "norm_position": "pre",
    "qk_norm": "false",
    "position": "learned",
    "block": "sequential",
    "ffn_per_block": "1",
    "tie_embeddings": "true",
    "bias": "true",
    "ffn_type": "dense",
    "attention_window": "full",
    "qkv_conv": "0",
}


def axis_effects(
    trials: pl.DataFrame | pl.LazyFrame,
    *,
    metric: str = "eval_loss",
    axes: Sequence[str] | None = None,
    baselines: Mapping[str, str] | None = None,
    by: Sequence[str] = ("run",),
    level: float = 0.95,
) -> pl.DataFrame:
    """Difference of ``metric`` from the baseline value of every axis, at equal budget.

    Trials are compared only within a budget cell (``with_budget_cells``) of each ``by`` group.
    The observations of a value in a cell are its architectures (configurations:
    ``data.cells.configuration``), each the mean of its seeds, when it has several: seed replicas
    of one architecture share every other axis, so counting them as independent draws would
    overstate n. A value with a single architecture in a cell is observed through its seeds.
    Two designs, chosen per (axis, value):

    * ``paired``: where the value and the baseline each have at most one trial per (cell, seed),
      and 2+ such units have both: the mean of the per-unit differences with a paired t-interval
      (``n - 1`` dof over units). Equal seeds share the data order, so their difference cancels it;
      a study with one seed per grid point is paired over grid points.
    * ``welch``: otherwise, per cell ``mean(value) - mean(baseline)`` over those observations,
      combined over cells weighted by the value's observation count, with Welch's interval
      (Welch-Satterthwaite dof). A side with a single trial in a cell has no variance of its own:
      it takes the axis's pooled within-group variance and that pool's dof (``welch (pooled sd)``);
      with nothing to pool there is no interval (``none``), never a zero-width one.

    ``p`` is the two-sided t-test p-value; ``p_holm`` is Holm-adjusted over every comparison this
    call returns (``comparisons`` says how many); ``verdict`` is ``resolved`` when ``p_holm`` is
    below 0.05, else ``within noise`` (or ``no interval``). ``sd`` is the spread of one observation
    (one difference when paired) and ``n_needed`` the observations per side (pairs, when paired)
    that would resolve the observed effect at that spread (``compare.stats.seeds_needed``: alpha
    0.05, power 0.8); ``more_needed`` is how many more than now. Only completed trials with a
    finite metric count. ``n`` and ``n_base`` count observations (see above). One row per
    (``by``..., axis, value): ``n, n_base, mean, std, baseline,
    effect, lo, hi, cells, method, dof, p, p_holm, verdict, sd, n_needed, more_needed,
    comparisons`` (the baseline's own row has effect 0 and method ``baseline``). Values are
    compared as lower-case strings (``"true"``, ``"64"``).
    """
    lf = trials.lazy() if isinstance(trials, pl.DataFrame) else trials
    schema = lf.collect_schema()
    axes = [a for a in (axes or ARCH_AXES) if a in schema]
    by = [c for c in by if c in schema]
    baselines = {**DEFAULT_BASELINES, **(baselines or {})}
    if not axes or metric not in schema:
        return _empty_effects(by)
    for name, dtype in (("seed", pl.Int64), ("group", pl.String), ("arch_id", pl.String), ("lr", pl.Float64)):
        if name not in schema:
            lf = lf.with_columns(pl.lit(None, dtype).alias(name))
    keys = [*by, "cell", "axis"]
    done = lf.filter((pl.col("status") == "completed") & pl.col(metric).is_not_null() & pl.col(metric).is_finite())
    long = (
        with_budget_cells(done, by=by)
        .with_columns(config=configuration())
        .select(
            *by,
            "cell",
            "seed",
            "config",
            metric,
            pl.col("group").is_not_null().alias("family"),
            *[
                pl.col(a).cast(pl.String).str.to_lowercase().fill_null(pl.lit(NULL_VALUES.get(a), pl.String))
                for a in axes
            ],
        )
        .unpivot(
            index=[*by, "cell", "seed", "config", metric, "family"], on=axes, variable_name="axis", value_name="value"
        )
        .drop_nulls("value")
        .filter(pl.col("value").n_unique().over(keys) > 1)
    )
    # the observations of a value in a cell: its architectures' seed means when it has several
    # (seed replicas of one architecture share its other axes: they are not independent draws),
    # else its one architecture's seed replicas
    per_config = long.group_by(*keys, "value", "config").agg(
        k=pl.len(),
        y=pl.col(metric).mean(),
        y_var=pl.col(metric).var(),
        # a search's architecture (known arch_id), not a study's family: judged at two levels
        known=~pl.col("family").any() & ~pl.col("config").first().str.starts_with("?@"),
    )
    several = pl.len() >= 2
    raw_cell = per_config.group_by(*keys, "value").agg(
        n=pl.when(several).then(pl.len()).otherwise(pl.col("k").first()).cast(pl.UInt32),
        mean=pl.col("y").mean(),
        var=pl.when(several).then(pl.col("y").var()).otherwise(pl.col("y_var").first()),
        tl_ok=pl.col("known").all(),
    )
    pooled = raw_cell.group_by(*by, "axis").agg(
        pool_dof=(pl.col("n") - 1).sum(), pool_ss=(pl.col("var").fill_null(0.0) * (pl.col("n") - 1)).sum()
    )
    # two levels (compare.two_level): a value's architectures vary around its mean by tau^2, each
    # architecture mean has its seed noise; var is kept per observation (var / n = the mean's variance)
    tl = two_level(per_config.filter(pl.col("known")), by, keys)
    per_cell = (
        raw_cell.join(tl, on=[*keys, "value"], how="left")
        .with_columns(tl_ok=pl.col("tl_ok") & pl.col("archs").is_not_null())
        .with_columns(
            mean=pl.when(pl.col("tl_ok")).then(pl.col("tl_mean")).otherwise(pl.col("mean")),
            var=pl.when(pl.col("tl_ok")).then(pl.col("tl_var") * pl.col("n")).otherwise(pl.col("var")),
        )
    )
    # the baseline of an axis: the preferred value when present, else the most common (ties: smallest)
    preferred = pl.col("axis").replace_strict(baselines, default=None)
    baseline_of = (
        long.group_by(*by, "axis", "value")
        .agg(count=pl.len())
        .with_columns(is_preferred=pl.col("value") == preferred)
        .sort(
            [*by, "axis", "is_preferred", "count", "value"], descending=[False] * len(by) + [False, True, True, False]
        )
        .group_by(*by, "axis", maintain_order=True)
        .first()
        .select(*by, "axis", baseline="value")
    )
    base_stats = per_cell.join(baseline_of, on=[*by, "axis"]).filter(pl.col("value") == pl.col("baseline"))
    cells = (
        per_cell.join(
            base_stats.select(*keys, "baseline", base_n="n", base_mean="mean", base_var="var", base_tl_ok="tl_ok"),
            on=keys,
        )
        .join(pooled, on=[*by, "axis"])
        .with_columns(pool_var=pl.col("pool_ss") / pl.col("pool_dof").replace(0, None))
    )
    welch = _welch_over_cells(cells, by)
    paired = _paired_over_units(long, baseline_of, keys, by, metric)
    df = welch.join(paired, on=[*by, "axis", "value"], how="left").collect()
    if df.height == 0:
        return _empty_effects(by)
    # how many architectures each value (and its baseline) rests on: one is confounded with its other axes
    archs = long.group_by(*by, "axis", "value").agg(architectures=pl.col("config").n_unique().cast(pl.UInt32))
    out = _finish_effects(df, by, level)
    base = archs.rename({"value": "baseline", "architectures": "base_architectures"}).collect()
    return out.join(archs.collect(), on=[*by, "axis", "value"], how="left", maintain_order="left").join(
        base, on=[*by, "axis", "baseline"], how="left", maintain_order="left"
    )


def _empty_effects(by: Sequence[str]) -> pl.DataFrame:
    return pl.DataFrame(
        schema={**{c: pl.String for c in by}, "axis": pl.String, "value": pl.String, "n": pl.UInt32,
                "n_base": pl.UInt32, "mean": pl.Float64, "std": pl.Float64, "baseline": pl.String,
                "effect": pl.Float64, "lo": pl.Float64, "hi": pl.Float64, "cells": pl.UInt32, "method": pl.String,
                "dof": pl.Float64, "p": pl.Float64, "p_holm": pl.Float64, "verdict": pl.String, "sd": pl.Float64,
                "n_needed": pl.Float64, "more_needed": pl.Float64, "comparisons": pl.UInt32,
                "tau2": pl.Float64, "tau_dof": pl.Float64, "architectures": pl.UInt32,
                "base_architectures": pl.UInt32}
    )  # fmt: skip


def _welch_over_cells(cells: pl.LazyFrame, by: list[str]) -> pl.LazyFrame:
    """Per (axis, value): the count-weighted difference over cells and its Welch variance and
    dof parts; a side with one trial in a cell uses the pooled variance and the pool's dof."""
    weight = pl.col("n") / pl.col("n").sum().over(*by, "axis", "value")
    # two-level sides: the variance of the value's mean with tau^2 (null: no tau^2, no interval)
    a_tl, b_tl, tau_dof = pl.col("tl_ok"), pl.col("base_tl_ok"), pl.col("tau_dof")
    var_a = pl.when(a_tl).then(pl.col("var")).when(pl.col("n") > 1).then(pl.col("var")).otherwise(pl.col("pool_var"))
    var_b = (
        pl.when(b_tl).then(pl.col("base_var")).when(pl.col("base_n") > 1).then(pl.col("base_var"))
        .otherwise(pl.col("pool_var"))
    )  # fmt: skip
    dof_a = pl.when(a_tl).then(tau_dof).when(pl.col("n") > 1).then(pl.col("n") - 1).otherwise(pl.col("pool_dof"))
    dof_b = (
        pl.when(b_tl).then(tau_dof).when(pl.col("base_n") > 1).then(pl.col("base_n") - 1)
        .otherwise(pl.col("pool_dof"))
    )  # fmt: skip
    va, vb = weight**2 * var_a / pl.col("n"), weight**2 * var_b / pl.col("base_n")
    within = (pl.col("var").fill_null(0.0) * (pl.col("n") - 1)).sum() / (pl.col("n").sum() - pl.len()).replace(0, None)
    return (
        cells.with_columns(w=weight, va=va, vb=vb, da=dof_a, db=dof_b, d=pl.col("mean") - pl.col("base_mean"))
        .group_by(*by, "axis", "value", "baseline")
        .agg(
            n=pl.col("n").sum(),
            n_base=pl.col("base_n").sum(),
            mean=(pl.col("w") * pl.col("mean")).sum(),
            std=within.sqrt(),
            effect=(pl.col("w") * pl.col("d")).sum(),
            # a null part (a side with no variance to use) makes the sum null: no interval
            variance=pl.when(pl.col("va").is_null().any() | pl.col("vb").is_null().any())
            .then(None)
            .otherwise((pl.col("va") + pl.col("vb")).sum()),
            dof_denominator=(pl.col("va") ** 2 / pl.col("da") + pl.col("vb") ** 2 / pl.col("db")).sum(),
            cells=pl.len(),
            pooled=((pl.col("n") == 1) | (pl.col("base_n") == 1)).any(),
            two_level=(pl.col("tl_ok") & pl.col("base_tl_ok")).all(),
            tau2=pl.col("tau2").first(),
            tau_dof=pl.col("tau_dof").first(),
        )
    )


def _paired_over_units(
    long: pl.LazyFrame, baseline_of: pl.LazyFrame, keys: list[str], by: list[str], metric: str
) -> pl.LazyFrame:
    """Per (axis, value): differences from the baseline within each (cell, seed) unit both have."""
    units = (
        long.filter(pl.col("seed").is_not_null())
        .group_by(*keys, "seed", "value")
        .agg(u_n=pl.len(), y=pl.col(metric).mean())
        .join(baseline_of, on=[*by, "axis"])
    )
    base = units.filter(pl.col("value") == pl.col("baseline")).select(*keys, "seed", b_n="u_n", y_b="y")
    d = pl.col("y") - pl.col("y_b")
    return (
        units.filter(pl.col("value") != pl.col("baseline"))
        .join(base, on=[*keys, "seed"])
        .group_by(*by, "axis", "value")
        .agg(
            units=pl.len(),
            max_n=pl.max_horizontal(pl.col("u_n").max(), pl.col("b_n").max()),
            p_effect=d.mean(),
            p_sd=d.std(),
            p_cells=pl.col("cell").n_unique(),
        )
    )


def _finish_effects(df: pl.DataFrame, by: list[str], level: float) -> pl.DataFrame:
    """Choose paired or Welch per row, then intervals, Holm, verdicts and seeds needed."""
    is_base = (df["value"] == df["baseline"]).to_numpy()
    n_units = df["units"].fill_null(0).to_numpy().astype(float)
    use_paired = ~is_base & (n_units >= 2) & (df["max_n"].fill_null(9).to_numpy() == 1)
    variance = df["variance"].fill_null(np.nan).to_numpy()
    n_a, n_b = df["n"].to_numpy().astype(float), df["n_base"].to_numpy().astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        welch_dof = variance**2 / df["dof_denominator"].fill_null(np.nan).to_numpy()
        p_sd = df["p_sd"].fill_null(np.nan).to_numpy()
        effect = np.where(use_paired, df["p_effect"].fill_null(np.nan).to_numpy(), df["effect"].to_numpy())
        # paired over the seeds of one architecture per side: the pair's seed noise, plus tau^2 for
        # each side's architecture (per cell of pairs), Satterthwaite's dof over the two parts
        two = df["two_level"].fill_null(False).to_numpy()
        tau2 = df["tau2"].fill_null(np.nan).to_numpy()
        pair_cells = np.maximum(df["p_cells"].fill_null(1).to_numpy().astype(float), 1.0)
        seed_part, arch_part = p_sd**2 / n_units, 2 * tau2 / pair_cells
        tau_dof = df["tau_dof"].fill_null(np.nan).to_numpy()
        paired_var = np.where(two, seed_part + arch_part, seed_part)
        paired_dof = np.where(two, paired_var**2 / (seed_part**2 / (n_units - 1) + arch_part**2 / tau_dof), n_units - 1)
        se = np.where(is_base, np.nan, np.where(use_paired, np.sqrt(paired_var), np.sqrt(variance)))
        # both sides' two-level variances lean on one tau^2 estimate: its dof, not Satterthwaite's sum
        dof = np.where(use_paired, paired_dof, np.where(two, np.fmin(welch_dof, tau_dof), welch_dof))
        sd = np.where(use_paired, p_sd, np.sqrt(variance / (1 / n_a + 1 / n_b)))  # one run's spread
    lo, hi, p = t_test(effect, se, dof, level)
    needed = seeds_needed(effect, sd, paired=use_paired)
    have = np.where(use_paired, n_units, np.minimum(n_a, n_b))
    ok = np.isfinite(lo)
    method = np.select(
        [is_base, use_paired & two & ok, use_paired & ok, ok & two, ok & df["pooled"].to_numpy(), ok],
        ["baseline", "paired, two-level", "paired", "two-level", "welch (pooled sd)", "welch"],
        "none",
    )

    def column(values: np.ndarray) -> pl.Series:
        return pl.Series(np.where(is_base, np.nan, values)).fill_nan(None)

    return (
        df.with_columns(
            effect=pl.Series(np.where(is_base, 0.0, effect)),
            lo=column(lo),
            hi=column(hi),
            method=pl.Series(method, dtype=pl.String),
            dof=column(dof),
            p=column(p),
            p_holm=pl.Series(holm(p)).fill_nan(None),
            sd=column(sd),
            n_needed=column(needed),
            more_needed=column(np.maximum(needed - have, 0)),
            cells=pl.Series(np.where(use_paired, df["p_cells"].fill_null(0).to_numpy(), df["cells"].to_numpy())),
            comparisons=pl.lit(int(np.isfinite(p).sum())),
        )
        .with_columns(
            verdict=pl.when(pl.col("method") == "baseline")
            .then(pl.lit("baseline"))
            .otherwise(verdict(pl.col("p_holm"), pl.col("lo").is_not_null()))
        )
        .select(
            *by,
            "axis",
            "value",
            pl.col("n").cast(pl.UInt32),
            pl.col("n_base").cast(pl.UInt32),
            "mean",
            "std",
            "baseline",
            "effect",
            "lo",
            "hi",
            pl.col("cells").cast(pl.UInt32),
            "method",
            "dof",
            "p",
            "p_holm",
            "verdict",
            "sd",
            "n_needed",
            "more_needed",
            pl.col("comparisons").cast(pl.UInt32),
            pl.col("tau2").cast(pl.Float64),
            pl.col("tau_dof").cast(pl.Float64),
        )  # fmt: skip
        .sort([*by, "axis", "effect"])
    )
