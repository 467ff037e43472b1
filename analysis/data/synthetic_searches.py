"""Searches whose true losses are known, at the noise real searches have: what bench_verdicts simulates.

* ``search_trials``: one search's trials (a trials-like frame ``compare_to_best`` and
  ``rank_configurations`` take) from per-architecture true losses, seeds and seed-noise levels,
  with learning rates: the TPE shape of issue 19 is 6 architectures x 3 seeds at 0.015 nats
  (learning rates 1e-3 to 3e-3) and 4 one-seed architectures at 0.14 nats (6e-3 to 1e-2, near
  the edge of stability, where the noise is largest). ``shared`` is the part of the noise's
  variance that runs with one seed share (a seed block: every architecture trained on the same
  seeds sees the same data order).
* ``axis_null_search``: a search whose axes have no effect while its architectures differ at
  random within each axis value (the two-level null of ``axis_effects``).
* ``null_ladders``: a ladder search in which every architecture follows the same law, with a
  fraction of the noise shared by the rungs of the search (they use the same seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from .synthetic import LADDER_SEARCH_RUNGS, TINY_FLOPS, TINY_POWER


@dataclass(frozen=True)
class SearchShape:
    """Architectures of a simulated search: for each, its true loss, seeds, noise sd and lr range."""

    truths: tuple[float, ...]
    seeds: tuple[int, ...]
    noise: tuple[float, ...]
    lr_range: tuple[tuple[float, float], ...]


def shape(groups: Sequence[tuple[int, int, float, tuple[float, float]]], loss: float = 2.4) -> SearchShape:
    """A search of ``groups`` ``(architectures, seeds, noise sd, (lr lo, lr hi))``, every true loss ``loss``."""
    truths, seeds, noise, lrs = [], [], [], []
    for count, n_seeds, sd, lr in groups:
        truths += [loss] * count
        seeds += [n_seeds] * count
        noise += [sd] * count
        lrs += [lr] * count
    return SearchShape(tuple(truths), tuple(seeds), tuple(noise), tuple(lrs))


#: Issue 19's null searches: equal noise, and the TPE shape (unequal noise, one-seed architectures).
EQUAL_NOISE = shape([(10, 3, 0.045, (1e-3, 3e-3))])
UNEQUAL_NOISE = shape([(6, 3, 0.015, (1e-3, 3e-3)), (4, 1, 0.14, (6e-3, 1e-2))])


def search_trials(
    rng: np.random.Generator, s: SearchShape, *, shared: float = 0.0, run: str = "search"
) -> pl.DataFrame:
    """One search's completed trials from ``s`` (see the module docstring)."""
    max_seeds = max(s.seeds)
    seed_effect = rng.normal(0, 1, max_seeds)  # shared by every run with that seed, scaled per architecture
    rows = []
    for i, (truth, n, sd, (lo, hi)) in enumerate(zip(s.truths, s.seeds, s.noise, s.lr_range, strict=True)):
        lr = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        own = rng.normal(0, 1, n)
        loss = truth + sd * (np.sqrt(shared) * seed_effect[:n] + np.sqrt(1 - shared) * own)
        for seed in range(n):
            rows.append({"run": run, "status": "completed", "arch_id": f"a{i}", "label": f"arch{i}", "lr": lr,
                         "seed": seed, "params": 100_000, "eval_loss": float(loss[seed])})  # fmt: skip
    return pl.DataFrame(rows)


def null_ladders(
    rng: np.random.Generator,
    *,
    ladders: int = 4,
    rungs: tuple[float, ...] = LADDER_SEARCH_RUNGS,
    tokens_per_param: float = 8.0,
    noise: float = 0.045,
    shared: float = 0.0,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """A ladder search in which every architecture follows ``TINY_POWER`` (one run per rung);
    ``shared``: the fraction of the noise variance common to the rungs of the search (one seed)."""
    n = np.asarray(rungs, float)
    compute = TINY_FLOPS["c"] * n ** TINY_FLOPS["gamma"] * tokens_per_param * n
    truth = TINY_POWER["E"] + TINY_POWER["A"] * compute ** -TINY_POWER["alpha"]
    common = rng.normal(0, 1, n.size)  # rung r of every ladder trained with the same seed
    out = {}
    for k in range(ladders):
        e = np.sqrt(shared) * common + np.sqrt(1 - shared) * rng.normal(0, 1, n.size)
        out[k] = (compute, truth + noise * e)
    return out


def ladder_search_noisy(
    rng: np.random.Generator,
    *,
    ladders: int = 4,
    rungs: tuple[float, ...] = LADDER_SEARCH_RUNGS,
    noise: float = 0.045,
    sd_ratio: float = 1.0,
    shared: float = 0.0,
    floor: bool = True,
) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], dict[int, tuple[float, float, float]]]:
    """``synthetic.ladder_search_runs``' truths with the noise real searches have: the first half
    of the ladders at ``noise / sqrt(sd_ratio)``, the rest at ``noise * sqrt(sd_ratio)`` (a
    ``sd_ratio`` between them, geometric mean ``noise``); ``shared`` of the noise variance common
    to every ladder's rung r (one seed per rung); ``floor=False``: the truth has no floor (E = 0,
    the same losses minus ``TINY_POWER``'s E)."""
    from .synthetic import ladder_search_runs

    clean, truth = ladder_search_runs(rng, ladders=ladders, rungs=rungs, noise=0.0)
    e0 = 0.0 if floor else TINY_POWER["E"]
    common = rng.normal(0, 1, len(rungs))
    out = {}
    for k, (compute, loss) in clean.items():
        sd = noise / np.sqrt(sd_ratio) if k < ladders // 2 else noise * np.sqrt(sd_ratio)
        e = np.sqrt(shared) * common + np.sqrt(1 - shared) * rng.normal(0, 1, len(rungs))
        out[k] = (compute, loss - e0 + sd * e)
    return out, {k: (e - e0, a, alpha) for k, (e, a, alpha) in truth.items()}


#: Issue 19's two-level null: a search whose architectures differ at random (``tau``) within each
#: axis value while the axes have no effect; ``norm`` rests on one architecture for rmsnorm.
AXIS_LAYOUT: dict[str, tuple[str, ...]] = {
    "norm": ("layernorm", "layernorm", "layernorm", "layernorm", "rmsnorm"),
    "position": ("learned", "learned", "rope", "rope", "rope"),
}


def axis_null_search(
    rng: np.random.Generator,
    *,
    tau: float = 0.05,
    noise: float = 0.015,
    seeds: int = 3,
    layout: dict[str, tuple[str, ...]] | None = None,
    loss: float = 2.4,
) -> pl.DataFrame:
    """One search's trials in which no axis value has an effect but every architecture's true loss
    is ``loss + tau * N(0, 1)`` (its other, unrecorded differences), each run ``noise`` around it."""
    layout = layout or AXIS_LAYOUT
    archs = len(next(iter(layout.values())))
    rows = []
    for a in range(archs):
        truth = loss + tau * rng.normal()
        axes = {axis: values[a] for axis, values in layout.items()}
        for seed in range(seeds):
            loss_run = float(truth + noise * rng.normal())
            rows.append({"run": "search", "status": "completed", "arch_id": f"a{a}", "label": f"arch{a}",
                         "lr": 1e-3, "seed": seed, **axes, "eval_loss": loss_run})  # fmt: skip
    return pl.DataFrame(rows)
