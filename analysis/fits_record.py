"""The tail every Huber-fitted law shares: from an optimum to its ``LawFit`` record.

``fit_power_law`` and ``fit_chinchilla`` differ in how they find the optimum and what makes it
not identified; once they have the optimum ``theta`` (log layout) and the reasons (empty: the fit
is identified), ``law_fit`` makes the intervals (none for a fit that is not identified: nothing
may be derived from it) and the record.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .fits_common import Intervals, LawFit, law_intervals, natural


def law_fit(
    record: type[LawFit],
    law: str,
    names: Sequence[str],
    theta: np.ndarray,
    objective: float,
    log_x: np.ndarray,
    log_loss: np.ndarray,
    unit_ids: np.ndarray,
    *,
    problems: Sequence[str],
    remedy: str,
    inputs: tuple[str, ...],
    bootstrap: int,
    seed: int,
    delta: float,
    level: float,
) -> LawFit:
    """A ``record`` (``PowerLawFit``, ``ChinchillaFit``) for the optimum ``theta`` of ``law`` with
    parameters ``names`` (natural order), fitted to ``log_loss`` at ``log_x`` from runs in design
    units ``unit_ids``. ``problems``: why the fit is not identified (empty: it is); ``remedy``: what
    to run then, appended to the one-line reason."""
    if problems:
        intervals = Intervals(np.empty((0, theta.size)), "none", "no interval: the fit is not identified")
    else:
        intervals = law_intervals(
            theta, log_x, log_loss, unit_ids, bootstrap=bootstrap, seed=seed, delta=delta, level=level
        )
    point = natural(theta[None, :])[0]
    return record(
        law=law,
        params=dict(zip(names, map(float, point), strict=True)),
        samples=intervals.samples,
        n_runs=int(log_loss.size),
        objective=objective,
        inputs=inputs,
        level=level,
        warnings=tuple(problems),
        interval=intervals.method,
        interval_note=intervals.note,
        edge=intervals.edge,
        n_dropped=intervals.n_dropped,
        n_units=int(np.unique(unit_ids).size),
        not_identified=("not identified: " + "; ".join(problems) + f"; {remedy}") if problems else "",
    )
