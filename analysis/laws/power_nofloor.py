"""The power law without a floor, for a series whose runs show none: the ladders' rule, as a power law.

``fit_power_law`` ends with E at the bottom of its box (E -> 0) when the losses fall along a
straight line in log-log over the runs' range: no flattening is seen, so E cannot be told from 0
and the three-parameter law is not identified. ``fit_power_law_or_no_floor`` then fits the nested
law with E = 0 by the same function the ladder search uses (``ladder_nofloor.fit_without_floor``,
one rule for both): a straight line in log L against log x, its interval united over every floor
E the data do not reject. The record is a ``PowerLawFit`` (E = 0), so tables, charts, rankings and
multipliers read it like any other; it says so in ``law`` ("no floor (E = 0)"), in its interval
note and in a warning (the prediction at E = 0 is optimistic if the loss flattens past the runs).

Its ``samples`` are the points that carry that interval, with ``interval = "profile"`` (intervals
are ranges over the samples): for each floor E not rejected, the boundary of the line's t-ellipse
of radius ``t_{dof}((1 + level) / 2)``. The range of a linear function of (log A, alpha) over that
ellipse is exactly its pointwise t interval, and loss = E + exp(line) is monotone in the line,
so predicted-loss intervals are the ladder construction's (up to the 1 - cos(pi / 90) of a
90-point boundary).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .ladder_nofloor import LAW, fit_without_floor
from .objective import bounds
from .power import PowerLawFit, _clean_with_units, fit_power_law

#: Boundary points per floor (see the module docstring).
ELLIPSE_POINTS = 90


def floor_at_zero(fit: PowerLawFit) -> bool:
    """True when ``fit`` is not identified only because E ended at the bottom of its box."""
    log_e_low = bounds(1)[0][0]
    at_zero = math.isclose(math.log(max(fit.params["E"], 1e-300)), log_e_low, abs_tol=1e-6)
    return not fit.identified and at_zero and len(fit.warnings) == 1 and fit.warnings[0].startswith("E=")


def fit_power_law_or_no_floor(x: Any, loss: Any, *, x_name: str = "x", **kw: Any) -> PowerLawFit:
    """``fit_power_law``, or, when its E ends at 0, the no-floor law (module docstring)."""
    fit = fit_power_law(x, loss, x_name=x_name, **kw)
    if not floor_at_zero(fit):
        return fit
    return fit_power_no_floor(x, loss, x_name=x_name, level=kw.get("level", 0.95), units=kw.get("units"), why=fit)


def fit_power_no_floor(
    x: Any, loss: Any, *, x_name: str, level: float = 0.95, units: Any = None, why: PowerLawFit | None = None
) -> PowerLawFit:
    """The no-floor power law of ``loss`` on ``x`` as a ``PowerLawFit`` with E = 0 (module docstring)."""
    from scipy.stats import t

    x, loss, unit_ids = _clean_with_units(x, loss, units)
    c0 = float(np.exp(np.mean(np.log(x))))
    reason = "the power law's E ended at 0 (no flattening over the runs)" if why is not None else "asked for"
    fit = fit_without_floor({"series": (x, loss)}, c0, reason, level=level)
    law = fit.laws["series"]
    a_at_1 = lambda log_a, alpha: math.exp(log_a) * c0**alpha  # noqa: E731  (A of L = E + A x^-alpha)
    params = {"E": 0.0, "A": a_at_1(law.log_A, law.alpha), "alpha": float(law.alpha)}
    base = dict(law="no floor (E = 0)", params=params, n_runs=int(loss.size), objective=math.nan, inputs=(x_name,))
    base |= dict(level=level, n_units=int(np.unique(unit_ids).size))
    if not (fit.identified and law.identified):
        note = law.reason or fit.reason or "not identified"
        return PowerLawFit(**base, samples=np.empty((0, 3)), interval="none", not_identified=f"not identified: {note}")
    radius = t.ppf((1 + level) / 2, fit.dof)
    angles = np.linspace(0.0, 2 * np.pi, ELLIPSE_POINTS, endpoint=False)
    circle = np.column_stack([np.cos(angles), np.sin(angles)])
    root = np.linalg.cholesky(fit.cov["series"])
    rows = []
    for e, lines, log_sigma in fit.floors:
        centre = np.array(lines["series"])
        for log_a, alpha in centre + radius * log_sigma * circle @ root.T:
            rows.append((e, a_at_1(log_a, alpha), alpha))
    note = (
        f"{LAW}: the full law's E ended at 0, so the runs show no floor; a line in log-log "
        f"(laws/ladder_nofloor.py), interval united over the floors E in [0, {max(e for e, _, _ in fit.floors):.3g}] "
        f"the data do not reject, {fit.dof} residual df"
    )
    warning = f"{LAW}: the prediction takes E = 0 and is optimistic if the loss flattens beyond the runs"
    return PowerLawFit(
        **base, samples=np.array(rows), interval="profile", interval_note=note, warnings=(warning,),
        edge=np.zeros(len(rows), bool),
    )  # fmt: skip
