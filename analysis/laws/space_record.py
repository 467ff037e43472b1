"""The space law as a ``LAWS`` entry: its ``FittedLaw`` record, the registry's ``fit`` and ``simulate``.

The record's ``params`` are ``E``, the reference architecture's ``log_A`` and ``alpha`` (every
axis at its first value) and one ``level[<value>]`` / ``slope[<value>]`` per estimated effect
(a contrast with the axis's reference value), with 95% posterior intervals (``interval_method =
"laplace"``). ``predict(compute)`` is the reference architecture's loss; ``predict(arch,
compute)`` any architecture's, trained or not. ``native`` is the ``SpaceLaw``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from archscale.analysis.data import synthetic_space

from .fitted import FittedLaw, refused
from .inputs import DEFAULT_COLUMNS, Columns, Simulated
from .space_law import SpaceLaw, fit_space_law

PREDICTS = "loss at compute (predict(arch, compute): any architecture of the space)"


def space_record(law: SpaceLaw, series: str = "space") -> FittedLaw:
    """The ``FittedLaw`` of a fitted space law (or its refusal, with the reason)."""
    if law.fit is None:
        return refused("space", series, law.reason or "not identified", n=int(law.data.loss.size), predicts=PREDICTS)
    heads = law.heads()
    params = {k: v[0] for k, v in heads.items()}
    intervals = {k: (v[1], v[2]) for k, v in heads.items()}
    for row in law.coefficients().filter(pl.col("estimated")).iter_rows(named=True):
        key = f"{row['effect']}[{row['name']}]"
        params[key], intervals[key] = row["estimate"], (row["lo"], row["hi"])
    reference = law.encoding.reference()

    def predictor(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return law.predict(reference, c)

    def arch_predictor(arch, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return law.predict(dict(arch), c)

    return FittedLaw(
        law="space", series=series, params=params, intervals=intervals, interval_method="laplace",
        identified=True, reason=None, n=int(law.data.loss.size), df=int(law.fit.dof), predicts=PREDICTS,
        predictor=predictor, native=law, arch_predictor=arch_predictor,
    )  # fmt: skip


def fit_space(
    runs: pl.DataFrame, by: str, columns: Columns = DEFAULT_COLUMNS, *, bootstrap: int = 0, seed: int = 0
) -> dict[str, FittedLaw]:
    """``Law.fit``: one space law per series of ``by`` (``bootstrap`` is unused: Laplace intervals)."""
    out = {}
    frame = runs.rename({columns.compute: "compute"}) if columns.compute != "compute" else runs
    if "status" not in frame.columns:
        frame = frame.with_columns(status=pl.lit("completed"))
    for (series,), part in frame.group_by(by, maintain_order=True):
        law = fit_space_law(part.drop(by), loss=columns.loss, seed=seed)
        out[str(series)] = space_record(law, str(series))
    return out


def simulate_space(rng: np.random.Generator, identifying: bool) -> Simulated:
    """Every architecture of ``DEMO_TRUTH`` at three compute sizes (identifying) or one (not)."""
    truth = synthetic_space.DEMO_TRUTH
    sizes = (1e12, 1e13, 1e14) if identifying else (1e13,)
    design = [(arch, sizes) for arch in truth.architectures()]
    runs = synthetic_space.space_trials(rng, truth, design, seeds=2, noise=0.005).with_columns(series=pl.lit("a"))
    first = {axis: sorted(values)[0] for axis, values in truth.axes.items()}  # a frame's axes: values sorted
    alpha = truth.alpha + sum(truth.slope[k][v] for k, v in first.items())
    return Simulated(runs, "series", Columns(loss="eval_loss"), {"a": {"E": truth.E, "alpha": alpha}}, 1e15)
