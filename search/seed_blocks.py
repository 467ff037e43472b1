"""Seed blocks in a study: whether every architecture at a grid point trains on the same seeds.

With seed blocks (``seed_blocks: true`` in the study file, the default; ``archscale study run
--seed-blocks``) every architecture of a grid point trains on the seeds ``first_seed ..
first_seed + seeds - 1``: equal seeds give equal initial streams and the same batch order (the
trainer seeds the data order with ``seed + 1_000_003``), so the noise the data order adds is
shared, and every comparison of two architectures at a grid point is **paired by seed**
(``analysis.compare.rankings.compare_to_best``, ``analysis.compare.effects.axis_effects``), which
cancels it; the shared part is estimated from the configs x seeds block
(``analysis.data.seed_effects``). Without (``--no-seed-blocks``, ``seed_blocks: false``) the
``i``-th architecture of the study (in the file's order) trains on its own seed numbers,
``first_seed + i * seeds ..``, so no two architectures share a seed and every comparison is
unpaired (Welch's, from each side's own seeds): what a study that must not share noise between
architectures (or one reproducing independent runs) asks for.
"""

from __future__ import annotations

from dataclasses import replace

from archscale.search.strategies.grid import GridPoint


def assign_seeds(points: list[GridPoint], *, seed_blocks: bool, first_seed: int, seeds: int) -> list[GridPoint]:
    """``points`` (planned with the block's seeds) with each architecture's own seed numbers when
    ``seed_blocks`` is False; unchanged when True."""
    if seed_blocks:
        return points
    index: dict[str, int] = {}
    for point in points:
        index.setdefault(point.group, len(index))
    return [replace(p, seed=p.seed + index[p.group] * seeds) for p in points]


def seeds_by_group(points: list[GridPoint]) -> dict[str, list[int]]:
    """The seed numbers each architecture (group) trains on, sorted (what run.json records)."""
    out: dict[str, set[int]] = {}
    for p in points:
        out.setdefault(p.group, set()).add(p.seed)
    return {g: sorted(s) for g, s in out.items()}
