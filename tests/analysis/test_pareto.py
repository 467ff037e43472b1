"""Pareto fronts and hypervolume against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archscale.analysis.compare.pareto import hypervolume, pareto_front, pareto_mask


def brute_force_front(points: list[tuple[float, ...]], maximize: list[bool]) -> list[bool]:
    sign = [-1 if m else 1 for m in maximize]

    def dominates(p: tuple[float, ...], q: tuple[float, ...]) -> bool:
        ps, qs = [s * v for s, v in zip(sign, p, strict=True)], [s * v for s, v in zip(sign, q, strict=True)]
        return all(a <= b for a, b in zip(ps, qs, strict=True)) and any(a < b for a, b in zip(ps, qs, strict=True))

    return [not any(dominates(q, p) for q in points) for p in points]


@st.composite
def point_sets(draw: st.DrawFn) -> tuple[list[tuple[float, ...]], list[bool]]:
    m = draw(st.integers(1, 3))
    # small integer coordinates so ties and duplicates are common
    pts = draw(st.lists(st.tuples(*[st.integers(0, 6).map(float)] * m), min_size=0, max_size=40))
    return pts, draw(st.lists(st.booleans(), min_size=m, max_size=m))


@settings(max_examples=150, deadline=None)
@given(point_sets())
def test_front_equals_brute_force(case: tuple[list[tuple[float, ...]], list[bool]]) -> None:
    pts, maximize = case
    arr = np.array(pts, float).reshape(len(pts), len(maximize))
    assert pareto_mask(arr, maximize, chunk=7).tolist() == brute_force_front(pts, maximize)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=40), st.booleans(), st.booleans())
def test_2d_fast_path_equals_pairwise(pts: list[tuple[int, int]], max_x: bool, max_y: bool) -> None:
    arr = np.array(pts, float).reshape(-1, 2)
    expected = brute_force_front([tuple(p) for p in arr], [max_x, max_y])
    assert pareto_mask(arr, [max_x, max_y]).tolist() == expected


def brute_force_hypervolume(pts: np.ndarray, ref: np.ndarray) -> float:
    """Count the unit cells of the integer grid below ``ref`` that some point dominates (minimise)."""
    cells = np.array(list(itertools.product(*[range(int(r)) for r in ref])), float)  # lower corners
    if len(pts) == 0:
        return 0.0
    covered = (pts[None, :, :] <= cells[:, None, :]).all(axis=2).any(axis=1)
    return float(covered.sum())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=25))
def test_hypervolume_2d_equals_brute_force(pts: list[tuple[int, int]]) -> None:
    arr = np.array(pts, float).reshape(-1, 2)
    ref = np.array([10.0, 10.0])
    assert hypervolume(arr, ref) == pytest.approx(brute_force_hypervolume(arr, ref))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=12))
def test_hypervolume_3d_equals_brute_force(pts: list[tuple[int, int, int]]) -> None:
    arr = np.array(pts, float)
    ref = np.array([6.0, 6.0, 6.0])
    assert hypervolume(arr, ref) == pytest.approx(brute_force_hypervolume(arr, ref))


def test_hypervolume_with_a_maximised_objective() -> None:
    # minimise loss, maximise throughput: points (loss, tokens_per_s), reference (4, 0)
    pts = np.array([[3.0, 100.0], [2.0, 50.0], [3.5, 10.0]])
    # as minimisation: (3,-100), (2,-50) dominate; area = (4-3)*100 + (3-2)*50
    assert hypervolume(pts, [4.0, 0.0], maximize=[False, True]) == pytest.approx(150.0)


def test_nan_rows_are_never_on_the_front() -> None:
    mask = pareto_mask(np.array([[1.0, np.nan], [2.0, 2.0], [3.0, 3.0]]))
    assert mask.tolist() == [False, True, False]


def test_pareto_front_on_a_frame_with_groups() -> None:
    df = pl.DataFrame(
        {
            "run": ["a", "a", "a", "b", "b"],
            "params": [1, 2, 3, 1, 2],
            "eval_loss": [3.0, 2.5, 2.6, 2.0, 2.1],
            "x": [None, 1, 2, 3, 4],
        }
    )
    out = pareto_front(df, {"params": "min", "eval_loss": "min"}, by="run")
    assert out["on_front"].to_list() == [True, True, False, True, False]
    assert out.columns == [*df.columns, "on_front"]
    with pytest.raises(ValueError, match="not in the table"):
        pareto_front(df, {"tokens_per_s": "max"})
    with pytest.raises(ValueError, match="'min' or 'max'"):
        pareto_front(df, {"params": "minimize"})  # type: ignore[dict-item]
