"""Search analysis: per-axis effects, parameter importance, learning curves, best architectures.

Effects convention: for each architecture axis (``ffn_activation``, ``position``, ...) and each of
its values, ``effect = metric | value - metric | baseline value`` over completed trials at equal
budget: within one search (one search has one budget), or within one planned grid point (size and
tokens) of a scaling study. Paired by seed where the design allows it, else Welch's interval; a
single trial never gets an interval of its own; p-values are Holm-adjusted over the comparisons
made, and every difference says how many seeds would resolve it (``axis_effects``). Negative
effects on a loss mean the value is better. An ASHA search is compared at equal tokens seen with
``comparisons.at_equal_tokens`` (the report does); otherwise only its survivors count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from .loaders import ARCH_AXES, NULL_VALUES, PathLike, load_curves, load_trials, open_study
from .runs import NoData

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


#: Parameter counts (when a study recorded no planned size) whose sorted log10 values are closer
#: than this (0.05 decades, ~12%) belong to one budget cell. A gap split, not rounding, so values
#: either side of a rounding boundary are never separated.
CELL_GAP_DECADES = 0.05
#: The same for training tokens at one planned size: families at one grid point get different
#: tokens when a study sets tokens per parameter (their counts differ within the tolerance) or an
#: isoFLOP compute (their FLOPs per token differ), by well under 0.1 decades (~26%); a study's
#: own token levels are further apart than that.
TOKENS_GAP_DECADES = 0.1


def _gap_clusters(value: pl.Expr, keys: list[str], gap: float) -> pl.Expr:
    """Cluster index of ``log10(value)`` within ``keys``: a new cluster wherever the sorted values
    jump by more than ``gap`` decades (nulls get their own cluster, -1)."""
    log = value.cast(pl.Float64).log10()
    sorted_log = log.sort(nulls_last=True)
    breaks = (sorted_log.diff() > gap).fill_null(False).cast(pl.Int32).cum_sum()
    # the cluster of each row: the number of breaks among the sorted values up to its own
    position = log.rank("min").cast(pl.Int64) - 1
    return pl.when(log.is_null()).then(pl.lit(-1)).otherwise(breaks.gather(position.fill_null(0))).over(keys)


def _whole(value: pl.Expr, digits: int) -> pl.Expr:
    """A count as a whole number to ``digits`` significant figures (``120000``, not ``120000.0``)."""
    return value.cast(pl.Float64).round_sig_figs(digits).cast(pl.Int64).cast(pl.String)


def with_budget_cells(trials: pl.DataFrame | pl.LazyFrame, *, by: Sequence[str] = ("run",)) -> pl.LazyFrame:
    """``trials`` with a ``cell`` column naming which trials share a budget.

    A search (null ``group``) has one budget: its trials are in the cell ``search``. In a scaling
    study (``group`` set) a cell is a planned grid point: the same ``planned_kind`` and
    ``planned_size`` and a training length within ``TOKENS_GAP_DECADES`` of each other (a study
    that sets tokens per parameter or isoFLOP budgets gives each family slightly different tokens
    at one planned point), so
    families are compared at the size the study asked for, never at whatever size each achieved.
    Studies written before the planned size was recorded fall back to the achieved ``params``
    (clustered the same way). Seeds are not part of the cell: a cell holds a grid point's seeds.
    """
    lf = trials.lazy() if isinstance(trials, pl.DataFrame) else trials
    schema = lf.collect_schema()
    for name, dtype in (("group", pl.String), ("planned_kind", pl.String), ("planned_size", pl.Float64),
                        ("params", pl.Int64), ("target_tokens", pl.Int64)):  # fmt: skip
        if name not in schema:
            lf = lf.with_columns(pl.lit(None, dtype).alias(name))
    by = [c for c in by if c in schema]
    planned = pl.col("planned_size").is_not_null()
    size_key = pl.when(planned).then(
        pl.format("{}={}", pl.col("planned_kind").fill_null("size"), _whole(pl.col("planned_size"), 4))
    )
    size_cluster = (
        pl.when(planned).then(pl.lit(0)).otherwise(_gap_clusters(pl.col("params"), [*by, "_study"], CELL_GAP_DECADES))
    )
    lf = lf.with_columns(_study=pl.col("group").is_not_null())
    lf = lf.with_columns(_size=pl.coalesce(size_key, pl.format("params#{}", size_cluster)))
    lf = lf.with_columns(_tok=_gap_clusters(pl.col("target_tokens"), [*by, "_study", "_size"], TOKENS_GAP_DECADES))
    tokens = pl.col("target_tokens").min().over([*by, "_study", "_size", "_tok"]).cast(pl.Float64)
    size_shown = (
        pl.when(planned)
        .then(pl.col("_size"))
        .otherwise(pl.format("params≈{}", _whole(pl.col("params").min().over([*by, "_study", "_size"]), 3)))
    )
    tokens_shown = pl.format("tokens≈{}", _whole(tokens, 3)).fill_null("tokens?")
    shown = pl.concat_str([size_shown.fill_null("size?"), tokens_shown], separator=", ")
    cell = pl.when(pl.col("_study")).then(shown)
    return lf.with_columns(cell=cell.otherwise(pl.lit("search"))).drop("_study", "_size", "_tok")


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
    ``comparisons.configuration``), each the mean of its seeds, when it has several: seed replicas
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
    that would resolve the observed effect at that spread (``comparisons.seeds_needed``: alpha
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
    from .comparisons import configuration

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
            *[
                pl.col(a).cast(pl.String).str.to_lowercase().fill_null(pl.lit(NULL_VALUES.get(a), pl.String))
                for a in axes
            ],
        )
        .unpivot(index=[*by, "cell", "seed", "config", metric], on=axes, variable_name="axis", value_name="value")
        .drop_nulls("value")
        .filter(pl.col("value").n_unique().over(keys) > 1)
    )
    # the observations of a value in a cell: its architectures' seed means when it has several
    # (seed replicas of one architecture share its other axes: they are not independent draws),
    # else its one architecture's seed replicas
    per_config = long.group_by(*keys, "value", "config").agg(
        k=pl.len(), y=pl.col(metric).mean(), y_var=pl.col(metric).var()
    )
    several = pl.len() >= 2
    per_cell = per_config.group_by(*keys, "value").agg(
        n=pl.when(several).then(pl.len()).otherwise(pl.col("k").first()).cast(pl.UInt32),
        mean=pl.col("y").mean(),
        var=pl.when(several).then(pl.col("y").var()).otherwise(pl.col("y_var").first()),
    )
    pooled = per_cell.group_by(*by, "axis").agg(
        pool_dof=(pl.col("n") - 1).sum(), pool_ss=(pl.col("var").fill_null(0.0) * (pl.col("n") - 1)).sum()
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
        per_cell.join(base_stats.select(*keys, "baseline", base_n="n", base_mean="mean", base_var="var"), on=keys)
        .join(pooled, on=[*by, "axis"])
        .with_columns(pool_var=pl.col("pool_ss") / pl.col("pool_dof").replace(0, None))
    )
    welch = _welch_over_cells(cells, by)
    paired = _paired_over_units(long, baseline_of, keys, by, metric)
    df = welch.join(paired, on=[*by, "axis", "value"], how="left").collect()
    if df.height == 0:
        return _empty_effects(by)
    return _finish_effects(df, by, level)


def _empty_effects(by: Sequence[str]) -> pl.DataFrame:
    return pl.DataFrame(
        schema={**{c: pl.String for c in by}, "axis": pl.String, "value": pl.String, "n": pl.UInt32,
                "n_base": pl.UInt32, "mean": pl.Float64, "std": pl.Float64, "baseline": pl.String,
                "effect": pl.Float64, "lo": pl.Float64, "hi": pl.Float64, "cells": pl.UInt32, "method": pl.String,
                "dof": pl.Float64, "p": pl.Float64, "p_holm": pl.Float64, "verdict": pl.String, "sd": pl.Float64,
                "n_needed": pl.Float64, "more_needed": pl.Float64, "comparisons": pl.UInt32}
    )  # fmt: skip


def _welch_over_cells(cells: pl.LazyFrame, by: list[str]) -> pl.LazyFrame:
    """Per (axis, value): the count-weighted difference over cells and its Welch variance and
    dof parts; a side with one trial in a cell uses the pooled variance and the pool's dof."""
    weight = pl.col("n") / pl.col("n").sum().over(*by, "axis", "value")
    var_a = pl.when(pl.col("n") > 1).then(pl.col("var")).otherwise(pl.col("pool_var"))
    var_b = pl.when(pl.col("base_n") > 1).then(pl.col("base_var")).otherwise(pl.col("pool_var"))
    dof_a = pl.when(pl.col("n") > 1).then(pl.col("n") - 1).otherwise(pl.col("pool_dof"))
    dof_b = pl.when(pl.col("base_n") > 1).then(pl.col("base_n") - 1).otherwise(pl.col("pool_dof"))
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
    from .comparisons import holm, seeds_needed, t_test, verdict

    is_base = (df["value"] == df["baseline"]).to_numpy()
    n_units = df["units"].fill_null(0).to_numpy().astype(float)
    use_paired = ~is_base & (n_units >= 2) & (df["max_n"].fill_null(9).to_numpy() == 1)
    variance = df["variance"].fill_null(np.nan).to_numpy()
    n_a, n_b = df["n"].to_numpy().astype(float), df["n_base"].to_numpy().astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        welch_dof = variance**2 / df["dof_denominator"].fill_null(np.nan).to_numpy()
        p_sd = df["p_sd"].fill_null(np.nan).to_numpy()
        effect = np.where(use_paired, df["p_effect"].fill_null(np.nan).to_numpy(), df["effect"].to_numpy())
        se = np.where(is_base, np.nan, np.where(use_paired, p_sd / np.sqrt(n_units), np.sqrt(variance)))
        dof = np.where(use_paired, n_units - 1, welch_dof)
        sd = np.where(use_paired, p_sd, np.sqrt(variance / (1 / n_a + 1 / n_b)))  # one run's spread
    lo, hi, p = t_test(effect, se, dof, level)
    needed = seeds_needed(effect, sd, paired=use_paired)
    have = np.where(use_paired, n_units, np.minimum(n_a, n_b))
    method = np.select(
        [is_base, use_paired, np.isfinite(lo) & df["pooled"].to_numpy(), np.isfinite(lo)],
        ["baseline", "paired", "welch (pooled sd)", "welch"],
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
        )  # fmt: skip
        .sort([*by, "axis", "effect"])
    )


def best_architectures(
    trials: pl.DataFrame | pl.LazyFrame, *, metric: str = "eval_loss", top: int = 10
) -> pl.DataFrame:
    """The ``top`` architectures (``arch_id``) of each run by mean ``metric`` over their
    completed seeds (runs are not ranked against each other: their budgets differ).

    Columns: ``run, arch_id, label, n_seeds, mean, std, params, flops_per_token, tokens_per_s``.
    """
    lf = trials.lazy() if isinstance(trials, pl.DataFrame) else trials
    return (
        lf.filter((pl.col("status") == "completed") & pl.col(metric).is_not_null())
        .group_by("run", "arch_id")
        .agg(
            label=pl.col("label").first(),
            n_seeds=pl.col("seed").n_unique(),
            mean=pl.col(metric).mean(),
            std=pl.col(metric).std(),
            params=pl.col("params").first(),
            flops_per_token=pl.col("flops_per_token").first(),
            tokens_per_s=pl.col("tokens_per_s").mean(),
        )
        .sort("run", "mean", "arch_id")
        .group_by("run", maintain_order=True)
        .head(top)
        .collect()
    )


def _importance_from_trials(trials: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Share of the metric's variance explained by each axis alone (eta squared): a fallback
    when the Optuna study is missing or too small for optuna.importance."""
    done = trials.filter((pl.col("status") == "completed") & pl.col(metric).is_not_null())
    axes = [a for a in ARCH_AXES if a in done.columns]
    if done.height < 3 or not axes:
        return pl.DataFrame(schema={"param": pl.String, "importance": pl.Float64, "method": pl.String})
    long = done.select(metric, *[pl.col(a).cast(pl.String) for a in axes]).unpivot(
        index=metric, on=axes, variable_name="param", value_name="value"
    )
    total = done[metric].var(ddof=0) or 1.0
    grand = done[metric].mean()
    return (
        long.group_by("param", "value")
        .agg(n=pl.len(), mean=pl.col(metric).mean())
        .group_by("param")
        .agg(between=((pl.col("mean") - grand) ** 2 * pl.col("n")).sum() / pl.col("n").sum())
        .select("param", importance=pl.col("between") / total, method=pl.lit("eta²"))
        .filter(pl.col("importance") > 0)
        .sort("importance", descending=True)
    )


def parameter_importance(dir: PathLike, *, metric: str = "eval_loss", min_trials: int = 8) -> pl.DataFrame:
    """Hyperparameter importance for the search in ``dir``.

    Uses ``optuna.importance`` with ``PedAnovaImportanceEvaluator`` on the study's first objective
    when the study opens and has at least ``min_trials`` completed trials; otherwise (no storage,
    too few trials, a single-valued space, or any error) falls back to the variance each axis
    explains in ``trials.parquet`` (``method = "eta²"``). Columns: ``param, importance, method``.
    """
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = open_study(dir)
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(complete) < min_trials:
            raise ValueError("too few completed trials")
        target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
        scores = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), target=target
        )
        if not scores or not np.isfinite(sum(scores.values())):
            raise ValueError("no importances")
        return pl.DataFrame(
            {"param": list(scores), "importance": [float(v) for v in scores.values()], "method": "ped-anova"}
        ).sort("importance", descending=True)
    except Exception:  # any failure of the study path means: use the trials table instead
        return _importance_from_trials(load_trials(dir).collect(), metric)


def learning_curves(
    curves: pl.LazyFrame | pl.DataFrame, *, max_points: int = 100, columns: Sequence[str] | None = None
) -> pl.LazyFrame:
    """Curves downsampled to at most ``max_points`` evaluations per trial (evenly by rank in
    tokens, always keeping each trial's first and last evaluation), so charts never embed millions
    of rows. ``columns`` keeps only those columns (plus ``run, trial_id, tokens``)."""
    lf = curves.lazy() if isinstance(curves, pl.DataFrame) else curves
    key = ["run", "trial_id"]
    if columns is not None:
        lf = lf.select(*dict.fromkeys([*key, "tokens", *columns]))
    rank = pl.col("tokens").rank("ordinal").over(key) - 1
    count = pl.len().over(key)
    stride = ((count - 1) // max(1, max_points - 1)).clip(lower_bound=1)
    return lf.filter(pl.col("tokens").is_not_null()).filter((rank % stride == 0) | (rank == count - 1))


def best_curves(
    dirs: PathLike | Sequence[PathLike], *, y: str = "eval_loss", max_trials: int = 30, max_points: int = 100
) -> pl.DataFrame:
    """Learning curves (``run, trial_id, tokens, label, y``) of the ``max_trials`` trials with the
    lowest final eval loss (failed trials excluded), each downsampled by ``learning_curves``.
    Raises ``NoData`` when there are none or ``curves.parquet`` has no column ``y``."""
    trials = load_trials(dirs).filter(pl.col("status") != "failed").collect()
    best = trials.sort(pl.col("eval_loss"), nulls_last=True).head(max_trials).select("run", "trial_id", "label")
    curves = load_curves(dirs)
    if y not in curves.collect_schema():
        raise NoData(f"curves.parquet has no column {y!r}")
    out = (
        curves.join(best.lazy(), on=["run", "trial_id"])  # the best trials first, then downsample
        .pipe(learning_curves, max_points=max_points, columns=list(dict.fromkeys(["label", y])))
        .collect()
    )
    if out.height == 0:
        raise NoData(
            "no learning curves of known trials (curves.parquet missing or empty, or trials.parquet not written yet)"
        )
    return out
