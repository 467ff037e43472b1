"""The cells a comparison is made in: equal budget, equal tokens seen, one configuration's seeds.

* ``with_budget_cells``: the budget cell of every trial (one search; one planned grid point of a
  scaling study), so trials are compared only at equal budget.
* ``at_equal_tokens``: an ASHA search's trials compared at equal tokens seen (interpolated on
  ``curves.parquet``), so the trials it stopped early count instead of only its survivors.
* ``configuration``: what a seed replicates: a study's family (``group``), or in a search an
  ``arch_id`` at one learning rate (Optuna replicas copy the trial's parameters, ``lr`` included).
* ``comparable_trials``: the completed trials of runs, at equal tokens where a scheduler stopped some.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

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

    A search (null ``group``) has one budget: its trials are in the cell ``search``; a ladder
    search's rungs are one budget each, in the cells ``rung 0, params≈20000``, ... In a scaling
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
                        ("params", pl.Int64), ("target_tokens", pl.Int64), ("rung", pl.Int64)):  # fmt: skip
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
    # a ladder search's rungs: each rung is its own budget (budget x ratio^rung), so its own cell
    rung = pl.col("rung")
    rung_shown = pl.format("rung {}, params≈{}", rung, _whole(pl.col("params").min().over([*by, "rung"]), 3))
    cell = pl.when(pl.col("_study")).then(shown).when(rung.is_not_null()).then(rung_shown)
    return lf.with_columns(cell=cell.otherwise(pl.lit("search"))).drop("_study", "_size", "_tok")


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


def configuration() -> pl.Expr:
    """What a seed replicates: the study family, else the search's ``arch_id`` at its ``lr``."""
    lr = pl.col("lr").cast(pl.Float64).round_sig_figs(6).cast(pl.String).fill_null("?")
    return pl.coalesce(pl.col("group"), pl.concat_str([pl.col("arch_id").fill_null("?"), pl.lit("@lr="), lr]))


def display_name() -> pl.Expr:
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
