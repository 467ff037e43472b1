"""Seed blocks in a study (search/seed_blocks.py): shared seeds at every grid point, paired verdicts; or each
architecture its own seeds and unpaired ones. Planned only, no Ray."""

import numpy as np
import polars as pl
import pytest

from archscale.analysis import axis_effects, compare_to_best
from archscale.search.seed_blocks import assign_seeds, seeds_by_group
from archscale.search.study import load_study_file, plan_grid

BASE = {"vocab_size": 256, "seq_len": 64, "n_layers": 2, "n_heads": 2}
ARCHS = {
    "baseline": {"ffn_activation": "relu", "position": "sinusoidal"},
    "b": {"ffn_activation": "swiglu", "position": "rope"},
    "c": {"ffn_activation": "gelu", "position": "rope"},
}


def _points(seed_blocks: bool | None):
    data = {"base": BASE, "architectures": ARCHS, "sizes": {"values": [2e4, 4e4]}, "tokens": [1000], "seeds": 3}
    if seed_blocks is not None:
        data["seed_blocks"] = seed_blocks
    spec = load_study_file(data)
    return assign_seeds(plan_grid(spec), seed_blocks=spec.seed_blocks, first_seed=spec.first_seed, seeds=spec.seeds)


def _trials(points) -> pl.DataFrame:
    """Losses with a large effect shared by every run of one seed number (its data order)."""
    rng = np.random.default_rng(0)
    shared = {s: rng.normal(0, 0.05) for s in {p.seed for p in points}}
    truth = {"baseline": 3.0, "b": 2.9, "c": 2.95}
    rows = [
        {"run": "study", "status": "completed", "group": p.group, "seed": p.seed, "planned_kind": "params",
         "planned_size": p.size, "target_tokens": p.tokens, "position": p.arch["position"],
         "eval_loss": truth[p.group] + shared[p.seed] + rng.normal(0, 0.005)}
        for p in points
    ]  # fmt: skip
    return pl.DataFrame(rows)


def test_seed_blocks_are_the_default_and_share_every_seed_at_a_grid_point() -> None:
    points = _points(None)
    for size in {p.size for p in points}:
        at = [p for p in points if p.size == size]
        seeds = {g: sorted(p.seed for p in at if p.group == g) for g in ARCHS}
        assert all(s == [0, 1, 2] for s in seeds.values())


def test_without_seed_blocks_no_two_architectures_share_a_seed() -> None:
    points = _points(False)
    seeds = seeds_by_group(points)
    assert seeds == {"baseline": [0, 1, 2], "b": [3, 4, 5], "c": [6, 7, 8]}
    assert len(points) == len(_points(True))


@pytest.mark.parametrize("blocks,method", [(True, "paired"), (False, "welch")])
def test_the_verdict_pairs_by_seed_exactly_when_seeds_are_shared(blocks: bool, method: str) -> None:
    trials = _trials(_points(blocks))
    diffs = compare_to_best(trials)
    assert set(diffs["method"]) == {method}
    assert (diffs["n_pairs"] == (3 if blocks else 0)).all()
    eff = axis_effects(trials, axes=["group"], baselines={"group": "baseline"})
    b = eff.filter(pl.col("value") == "b").row(0, named=True)
    assert b["method"] == ("paired" if blocks else "welch")
    # paired over shared seeds cancels the 0.05-nat seed effect; unpaired it stays in the interval
    assert (b["hi"] - b["lo"] < 0.03) == blocks
