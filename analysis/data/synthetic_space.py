"""Searches over a space whose conditioned law is known: what the space law's tests and benchmark simulate.

The truth is ``L(a, C) = E + exp(log_A(a)) * (C / C_MID) ** -alpha(a)`` with ``log_A`` and
``alpha`` additive in the architecture's axis values (``SpaceTruth``: a level effect and a slope
effect per value, the first value of each axis being the reference at 0). ``space_trials`` draws
a search's completed trials at a list of compute sizes: every architecture of the design at each
of its sizes, ``seeds`` replicas, noise sd per architecture (``noise``; set unequal to mimic
learning rates near the edge of stability) of which ``shared`` of the variance is common to every
run with one seed (the data order). ``write_space_search`` writes such trials as a results
directory (trials.parquet and run.json with the space's axes), for the CLI and the report.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

#: The compute the truths are centred on (FLOPs): their log_A is the loss gap above E there.
C_MID = 1e13


@dataclass(frozen=True)
class SpaceTruth:
    """A known conditioned law: the floor ``E``, the reference architecture's ``log_A`` and
    ``alpha``, and per axis the level (``level[axis][value]``, added to log_A) and slope
    (``slope[axis][value]``, added to alpha) effect of each value (the first value is 0)."""

    E: float
    log_A: float
    alpha: float
    level: dict[str, dict[str, float]]
    slope: dict[str, dict[str, float]]

    @property
    def axes(self) -> dict[str, list[str]]:
        return {axis: list(values) for axis, values in self.level.items()}

    def architectures(self) -> list[dict[str, str]]:
        """Every combination of the axes' values."""
        names = list(self.level)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*self.axes.values())]

    def loss(self, arch: dict[str, str], compute: np.ndarray | float) -> np.ndarray:
        log_a = self.log_A + sum(self.level[k][v] for k, v in arch.items())
        alpha = self.alpha + sum(self.slope[k][v] for k, v in arch.items())
        return self.E + np.exp(log_a) * (np.asarray(compute, float) / C_MID) ** -alpha


#: A small space with level and slope effects of the size real ones have: ``position=alibi``
#: starts worse and improves faster, ``ffn_activation=swiglu`` is a constant shift.
DEMO_TRUTH = SpaceTruth(
    E=1.8,
    log_A=np.log(0.6),
    alpha=0.3,
    level={
        "ffn_activation": {"gelu": 0.0, "swiglu": -0.08, "relu": 0.05},
        "position": {"learned": 0.0, "rope": -0.06, "alibi": 0.04},
        "norm": {"layernorm": 0.0, "rmsnorm": -0.01},
    },
    slope={
        "ffn_activation": {"gelu": 0.0, "swiglu": 0.0, "relu": -0.01},
        "position": {"learned": 0.0, "rope": 0.01, "alibi": 0.04},
        "norm": {"layernorm": 0.0, "rmsnorm": 0.0},
    },
)


def random_truth(
    rng: np.random.Generator, axes: dict[str, int], *, level_sd: float = 0.06, slope_sd: float = 0.02
) -> SpaceTruth:
    """A truth with ``axes[name]`` values per axis (``v0``, ``v1``, ...), E in 1.8-3, alpha in
    0.2-0.4, level effects ~ N(0, level_sd) and slope effects ~ N(0, slope_sd) (reference 0)."""

    def effects(sd: float) -> dict[str, dict[str, float]]:
        return {
            name: {f"v{i}": (0.0 if i == 0 else float(rng.normal(0, sd))) for i in range(k)} for name, k in axes.items()
        }

    return SpaceTruth(
        E=float(rng.uniform(1.8, 3.0)),
        log_A=float(np.log(rng.uniform(0.4, 0.8))),
        alpha=float(rng.uniform(0.2, 0.4)),
        level=effects(level_sd),
        slope=effects(slope_sd),
    )


def space_trials(
    rng: np.random.Generator,
    truth: SpaceTruth,
    design: Sequence[tuple[dict[str, str], Sequence[float]]],
    *,
    seeds: int = 2,
    noise: Sequence[float] | float = 0.01,
    shared: float = 0.5,
    run: str = "space-search",
) -> pl.DataFrame:
    """Completed trials of ``design`` (``(architecture, compute sizes)`` pairs), ``seeds`` each
    (see the module docstring); ``noise``: one sd per design entry, or one for all."""
    sds = np.broadcast_to(np.asarray(noise, float), (len(design),))
    seed_effect = rng.normal(0, 1, seeds)
    cols: dict[str, list] = {k: [] for k in ("arch_id", "seed", "compute", "eval_loss", *truth.level)}
    for i, ((arch, sizes), sd) in enumerate(zip(design, sds, strict=True)):
        for c in sizes:
            own = rng.normal(0, 1, seeds)
            y = truth.loss(arch, c) + sd * (np.sqrt(shared) * seed_effect + np.sqrt(1 - shared) * own)
            for s in range(seeds):
                cols["arch_id"].append(f"d{i}")
                cols["seed"].append(s)
                cols["compute"].append(float(c))
                cols["eval_loss"].append(float(y[s]))
                for k, v in arch.items():
                    cols[k].append(v)
    n = len(cols["seed"])
    frame = pl.DataFrame(cols)
    return frame.with_columns(
        run=pl.lit(run), status=pl.lit("completed"), trial_id=pl.Series(np.arange(n, dtype=np.int64)),
        label=pl.concat_str([pl.col(k) for k in truth.level], separator="·"),
    )  # fmt: skip


def write_space_search(
    dir: str | Path,
    truth: SpaceTruth = DEMO_TRUTH,
    *,
    sizes: Sequence[float] = (3e12, 1e13, 3e13),
    seeds: int = 2,
    noise: float = 0.01,
    drop: Sequence[dict[str, str]] = (),
    base_only: Sequence[tuple[str, str]] = (),
    seed: int = 0,
) -> Path:
    """A results directory of a search over ``truth``'s space: every architecture but ``drop`` at
    every size, except that architectures with a value in ``base_only`` (``(axis, value)``) are
    trained at the smallest size only. run.json lists the space's axes as a space file would."""
    rng = np.random.default_rng(seed)
    design = []
    for arch in truth.architectures():
        if arch in list(drop):
            continue
        small = any(arch.get(axis) == value for axis, value in base_only)
        design.append((arch, sizes[:1] if small else sizes))
    trials = space_trials(rng, truth, design, seeds=seeds, noise=noise, run=Path(dir).name)
    trials = trials.with_columns(tokens=(pl.col("compute") / 6e6).cast(pl.Int64), params=pl.lit(1_000_000, pl.Int64))
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    trials.drop("run").write_parquet(dir / "trials.parquet")
    space = {"name": "synthetic-space", "arch": {axis: {"choices": values} for axis, values in truth.axes.items()}}
    run = {"kind": "search", "space": space, "args": {"seeds": seeds}, "versions": {"archscale": "0.1.0"}}
    (dir / "run.json").write_text(json.dumps(run, indent=1))
    return dir
