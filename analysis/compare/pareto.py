"""Pareto fronts and hypervolume.

Conventions: a point *dominates* another when it is at least as good in every objective and
strictly better in one ("good" is lower for ``"min"`` objectives, higher for ``"max"``). The front
is the set of points no other point dominates; exact duplicates of a front point are all on the
front. Hypervolume is the volume dominated by the front and bounded by a reference point that every
counted point must beat in every objective (points that don't are ignored).

``pareto_analysis(dirs)`` is what the report's Pareto section shows: the cost axes, each run's
front against the loss, and the hypervolume per run and cost axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from archscale.analysis.data.loaders import load_run
from archscale.analysis.data.runs import NoData, Source, completed

Direction = Literal["min", "max"]


def _as_minimised(points: np.ndarray, maximize: Sequence[bool] | None) -> np.ndarray:
    points = np.asarray(points, float)
    if points.ndim != 2:
        raise ValueError(f"points must be 2-D (n_points, n_objectives), got shape {points.shape}")
    if maximize is None:
        return points
    if len(maximize) != points.shape[1]:
        raise ValueError(f"maximize has {len(maximize)} entries for {points.shape[1]} objectives")
    return np.where(np.asarray(maximize, bool)[None, :], -points, points)


def pareto_mask(points: np.ndarray, maximize: Sequence[bool] | None = None, *, chunk: int = 1024) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points`` (n, m); all objectives minimised
    unless ``maximize[j]`` is true. Rows with a NaN are never on the front.

    Two objectives: an O(n log n) sort-and-prefix-minimum (1,000,000 points in well under a
    second). More: vectorised pairwise comparison in chunks of ``chunk`` rows, O(n² m) work and
    O(chunk · n · m) memory.
    """
    p = _as_minimised(points, maximize)
    valid = ~np.isnan(p).any(axis=1)
    q = p[valid]
    if q.shape[1] == 2:
        return _scatter(_front_2d(q), valid)
    dominated = np.zeros(len(q), bool)
    for start in range(0, len(q), chunk):
        block = q[start : start + chunk]  # (c, m): is block[i] dominated by some q[j]?
        no_worse = (q[None, :, :] <= block[:, None, :]).all(axis=2)
        better = (q[None, :, :] < block[:, None, :]).any(axis=2)
        dominated[start : start + chunk] = (no_worse & better).any(axis=1)
    return _scatter(~dominated, valid)


def _scatter(on_front: np.ndarray, valid: np.ndarray) -> np.ndarray:
    mask = np.zeros(len(valid), bool)
    mask[np.flatnonzero(valid)] = on_front
    return mask


def _front_2d(q: np.ndarray) -> np.ndarray:
    """O(n log n) front for two minimised objectives. A point (x, y) is dominated iff some point
    with a strictly smaller x has y' <= y, or some point with the same x has y' < y."""
    if len(q) == 0:
        return np.zeros(0, bool)
    ux, group = np.unique(q[:, 0], return_inverse=True)
    group_min = np.full(len(ux), np.inf)
    np.minimum.at(group_min, group, q[:, 1])
    before_min = np.concatenate([[np.inf], np.minimum.accumulate(group_min)[:-1]])  # over smaller x
    dominated = (before_min[group] <= q[:, 1]) | (group_min[group] < q[:, 1])
    return ~dominated


def hypervolume(points: np.ndarray, reference: Sequence[float], maximize: Sequence[bool] | None = None) -> float:
    """Hypervolume dominated by ``points`` w.r.t. ``reference`` (same directions as ``pareto_mask``).

    Exact sweep in 2-D; for 3 or more objectives Optuna's exact WFG algorithm is used.
    """
    p = _as_minimised(points, maximize)
    ref = _as_minimised(np.asarray(reference, float)[None, :], maximize)[0]
    p = p[~np.isnan(p).any(axis=1) & (p < ref[None, :]).all(axis=1)]
    if len(p) == 0:
        return 0.0
    p = p[pareto_mask(p)]
    if p.shape[1] == 1:
        return float(ref[0] - p[:, 0].min())
    if p.shape[1] == 2:
        p = p[np.lexsort((p[:, 1], p[:, 0]))]  # x ascending; on the front y then descends
        widths = np.diff(np.append(p[:, 0], ref[0]))
        return float(np.sum(widths * (ref[1] - p[:, 1])))
    from optuna._hypervolume import compute_hypervolume  # private but stable since optuna 3.x

    return float(compute_hypervolume(np.unique(p, axis=0), ref))


def pareto_front(
    frame: pl.DataFrame | pl.LazyFrame, objectives: Mapping[str, Direction], *, by: str | None = None
) -> pl.DataFrame:
    """``frame`` with a boolean ``on_front`` column (non-dominated over ``objectives``).

    ``objectives`` maps a column to ``"min"`` or ``"max"``, e.g. ``{"eval_loss": "min",
    "tokens_per_s": "max"}``. Rows with a null objective are never on the front. With ``by``
    (e.g. ``"run"``), one front per group.
    """
    bad = {k: v for k, v in objectives.items() if v not in ("min", "max")}
    if bad:
        raise ValueError(f"objective directions must be 'min' or 'max', got {bad}")
    df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    missing = [c for c in objectives if c not in df.columns]
    if missing:
        raise ValueError(f"objective columns {missing} not in the table (columns: {', '.join(df.columns)})")
    cols = list(objectives)
    maximize = [objectives[c] == "max" for c in cols]
    df = df.with_row_index("_row")
    groups = [df] if by is None else [g for _, g in df.group_by(by, maintain_order=True)]
    masks = [
        g.select("_row").with_columns(
            on_front=pl.Series(pareto_mask(g.select(pl.col(cols).cast(pl.Float64)).to_numpy(), maximize))
        )
        for g in groups
    ]
    on_front = pl.concat(masks) if masks else pl.DataFrame(schema={"_row": pl.UInt32, "on_front": pl.Boolean})
    return df.join(on_front, on="_row", how="left").sort("_row").drop("_row")


# --------------------------------------------------------------------------------------------
# What the report shows: costs, fronts and hypervolumes of searches against their loss
# --------------------------------------------------------------------------------------------

#: Cost axes after a search's own objectives, each with its direction.
DEFAULT_COSTS: dict[str, Direction] = {"params": "min", "tokens_per_s": "max"}


def cost_objectives(
    trials: pl.DataFrame, run_files: Sequence[Mapping] = (), *, loss: str = "eval_loss", limit: int = 3
) -> dict[str, Direction]:
    """Cost axes to set against ``loss``: the searches' own objectives (``run.json``
    ``objectives``, in ``run_files``) other than the loss, then ``DEFAULT_COSTS``; only columns
    of ``trials`` with values, at most ``limit``, each with its direction."""
    found: dict[str, Direction] = {}
    for run in run_files:
        for objective in run.get("objectives") or []:
            name = objective.get("name") if isinstance(objective, dict) else objective
            direction = objective.get("direction", "minimize") if isinstance(objective, dict) else "minimize"
            if name and name != loss:
                found[name] = "max" if str(direction).startswith("max") else "min"
    for name, direction in DEFAULT_COSTS.items():
        found.setdefault(name, direction)
    usable = {k: v for k, v in found.items() if k in trials.columns and trials[k].drop_nulls().len()}
    return dict(list(usable.items())[:limit])


def hypervolumes(trials: pl.DataFrame, costs: Mapping[str, Direction], *, loss: str = "eval_loss") -> pl.DataFrame:
    """Hypervolume per run and cost axis, in (log10 cost or throughput, ``loss``), against a
    reference shared by all runs (the worst value of each objective among them).

    Columns: ``run, objectives`` (what was measured), ``hypervolume, reference`` (as text)."""
    rows = []
    for name, direction in costs.items():
        cost = pl.col(name).cast(pl.Float64)
        x = cost.log10() if direction == "min" else cost
        pts = trials.select("run", x=x, loss=pl.col(loss)).drop_nulls().filter(pl.col("x").is_finite())
        if pts.height == 0:
            continue
        ref = [float(pts["x"].max() if direction == "min" else pts["x"].min()), float(pts["loss"].max())]
        measured = f"{'log10 ' if direction == 'min' else ''}{name} ({direction}), {loss} (min)"
        for (run,), part in pts.group_by("run", maintain_order=True):
            hv = hypervolume(part.select("x", "loss").to_numpy(), ref, maximize=[direction == "max", False])
            rows.append(
                {"run": run, "objectives": measured, "hypervolume": hv, "reference": f"({ref[0]:.4g}, {ref[1]:.4g})"}
            )
    schema = {"run": pl.String, "objectives": pl.String, "hypervolume": pl.Float64, "reference": pl.String}
    return pl.DataFrame(rows, schema=schema)


@dataclass(frozen=True)
class ParetoAnalysis:
    """``trials``: the completed trials; ``costs``: cost axis -> direction; ``fronts``: per cost
    axis, the trials on each run's front of (cost, loss), sorted by run and cost;
    ``hypervolumes``: see ``hypervolumes``."""

    trials: pl.DataFrame
    costs: dict[str, Direction]
    fronts: dict[str, pl.DataFrame]
    hypervolumes: pl.DataFrame


def pareto_analysis(
    source: Source, *, costs: Mapping[str, Direction] | None = None, loss: str = "eval_loss"
) -> ParetoAnalysis:
    """Fronts of every cost axis against ``loss``, per run, and their hypervolumes.

    ``costs`` defaults to ``cost_objectives`` (read from the directories' ``run.json`` when
    ``source`` is directories). Raises ``NoData`` without completed trials."""
    trials = completed(source, loss)
    if trials.height == 0:
        raise NoData(f"no completed trials with an {loss} yet")
    if costs is None:
        dirs = [] if isinstance(source, pl.DataFrame) else [source] if isinstance(source, (str, Path)) else source
        costs = cost_objectives(trials, [load_run(d) for d in dirs], loss=loss)
    if not costs:
        raise NoData(
            "no cost column with values to set against the loss (params, tokens_per_s or the search's objectives)"
        )
    fronts = {}
    for name, direction in costs.items():
        front = pareto_front(trials, {name: direction, loss: "min"}, by="run").filter(pl.col("on_front"))
        shown = ("run", "trial_id", "label", name, loss, "params", "tokens_per_s")
        columns = [c for c in dict.fromkeys(shown) if c in front.columns]
        fronts[name] = front.select(columns).sort("run", name)
    return ParetoAnalysis(
        trials=trials, costs=dict(costs), fronts=fronts, hypervolumes=hypervolumes(trials, costs, loss=loss)
    )
