"""How the space law encodes an architecture: one column per value of each choice, log scale for numbers.

A *term* is one axis (a main effect) or a declared interaction of two categorical axes. A
categorical term gets one column per value it takes in the space (full one-hot: every value has
its own coefficient, shrunk toward the space's mean by its prior; effects are reported as
contrasts with the axis's reference level, its first value). A numeric axis (every value a
number) gets one column, ``log(value)`` centred on the mean log value of the space. The same
columns enter ``log_A`` (level) and ``alpha`` (slope).

Identifiability of a slope column is decided here, per column (``slope_identified``): a value's
slope can only be told apart from the space's mean slope when its runs were trained at 2+
compute sizes (a numeric axis: 2+ of its values each at 2+ sizes). A column whose value was
never trained has no level estimate either (``level_seen``); both are drawn from their prior in
predictions, so an interval says what the data does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Column:
    """One encoded column: its ``term`` (axes), the ``value`` (a tuple, one per axis; empty for a
    numeric axis) and whether it is ``numeric``."""

    term: tuple[str, ...]
    value: tuple[str, ...]
    numeric: bool = False

    @property
    def name(self) -> str:
        if self.numeric:
            return f"log {self.term[0]}"
        return ",".join(f"{a}={v}" for a, v in zip(self.term, self.value, strict=True))


@dataclass(frozen=True)
class Encoding:
    """The space's axes (``axes[name]``: its values, the first the reference), which are numeric,
    the declared interactions, and the columns they make."""

    axes: dict[str, list[str]]
    numeric: frozenset[str]
    interactions: tuple[tuple[str, str], ...]
    columns: tuple[Column, ...]
    log_centre: dict[str, float]

    @classmethod
    def of(cls, axes: Mapping[str, Sequence[object]], interactions: Sequence[tuple[str, str]] = ()) -> Encoding:
        """The encoding of a space with these axis values (``axes``: name -> values, first = reference)."""
        values = {name: [str(v) for v in vals] for name, vals in axes.items() if len(vals) > 1}
        numeric = frozenset(n for n, vals in axes.items() if n in values and all(_is_number(v) for v in vals))
        for pair in interactions:
            unknown = [a for a in pair if a not in values or a in numeric]
            if unknown:
                allowed = sorted(set(values) - numeric)
                raise ValueError(f"interaction {pair}: {unknown} is not a categorical axis of the space ({allowed})")
        cols: list[Column] = []
        for name, vals in values.items():
            if name in numeric:
                cols.append(Column((name,), (), numeric=True))
            else:
                cols += [Column((name,), (v,)) for v in vals]
        for a, b in interactions:
            cols += [Column((a, b), (u, v)) for u in values[a] for v in values[b]]
        centre = {n: float(np.mean(np.log([float(v) for v in values[n]]))) for n in numeric}
        return cls(values, numeric, tuple(tuple(p) for p in interactions), tuple(cols), centre)

    def matrix(self, archs: Sequence[Mapping[str, object]]) -> np.ndarray:
        """``(len(archs), len(columns))``: the encoded architectures (an unknown value encodes as 0)."""
        x = np.zeros((len(archs), len(self.columns)))
        for j, col in enumerate(self.columns):
            if col.numeric:
                name = col.term[0]
                x[:, j] = [np.log(float(a[name])) - self.log_centre[name] for a in archs]  # type: ignore[arg-type]
            else:
                x[:, j] = [all(str(a.get(t)) == v for t, v in zip(col.term, col.value, strict=True)) for a in archs]
        return x

    def level_seen(self, x: np.ndarray) -> np.ndarray:
        """Per column: some run has it (a numeric axis: always, when 2+ of its values were run)."""
        return np.array(
            [np.unique(x[:, j]).size > 1 if c.numeric else x[:, j].any() for j, c in enumerate(self.columns)], bool
        )

    def slope_identified(self, x: np.ndarray, budget: np.ndarray) -> np.ndarray:
        """Per column: its runs span 2+ compute sizes (``budget``: each run's compute size index)."""
        out = []
        for j, col in enumerate(self.columns):
            if col.numeric:
                sizes = [np.unique(budget[x[:, j] == v]).size for v in np.unique(x[:, j])]
                out.append(sum(s >= 2 for s in sizes) >= 2)
            else:
                out.append(np.unique(budget[x[:, j] > 0]).size >= 2)
        return np.array(out, bool)

    def reference(self) -> dict[str, str]:
        """The reference architecture: every axis at its first value."""
        return {name: vals[0] for name, vals in self.axes.items()}
