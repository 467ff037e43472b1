"""The record of a Huber-fitted law (``LawFit``) and the tail every such fit shares to make one.

``fit_power_law`` and ``fit_chinchilla`` differ in how they find the optimum and what makes it
not identified; once they have the optimum ``theta`` (log layout) and the reasons (empty: the fit
is identified), ``law_fit`` makes the intervals (none for a fit that is not identified: nothing
may be derived from it) and the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .inputs import FlopsModel
from .intervals import Intervals, law_intervals, natural, percentile_interval
from .profile import region_interval


@dataclass(frozen=True)
class LawFit:
    """A fitted law: point estimates, the points its intervals are taken over, and the data size.

    ``samples`` has one row per point, columns in the order of ``params``: bootstrap refits when
    ``interval == "bootstrap"`` (intervals are percentiles), points of the likelihood-ratio set
    when ``interval == "profile"`` (intervals are ranges; ``edge`` marks points on the edge of the
    searched exponents, and a side reached only there is unbounded), empty when ``"none"`` (not
    asked for) or ``"unavailable"`` (asked for, impossible: every parameter is then not determined;
    ``interval_note`` says why). ``objective`` is the summed Huber loss at the optimum.

    ``not_identified`` is empty for a fit the runs determine, else the reason (a parameter at the
    edge of the box): nothing (prediction, ranking, multiplier) may be derived from such a fit.

    A law implements ``_predict`` (loss at its inputs), ``loss_at`` (loss at one scalar: the x of
    a power law, a compute for a law in N and D) and ``at_for_loss`` (its inverse); rankings,
    multipliers and charts use only these, so a new law needs no changes there.
    """

    law: str
    params: dict[str, float]
    samples: np.ndarray
    n_runs: int
    objective: float
    inputs: tuple[str, ...]
    level: float = 0.95
    warnings: tuple[str, ...] = ()
    interval: str = "bootstrap"
    interval_note: str = ""
    edge: np.ndarray | None = None
    n_dropped: int = 0
    n_units: int = 0
    not_identified: str = ""

    @property
    def identified(self) -> bool:
        return not self.not_identified

    def _theta(self) -> np.ndarray:
        return np.array([list(self.params.values())])

    def _predict(self, theta: np.ndarray, *x: np.ndarray) -> np.ndarray:  # (S, m)
        raise NotImplementedError

    def loss_at(self, at: Any, theta: np.ndarray | None = None, flops: FlopsModel | None = None) -> np.ndarray:
        """Loss at the scalar(s) ``at`` for each row of ``theta`` (default: the estimate), (S, m)."""
        raise NotImplementedError

    def at_for_loss(self, loss: np.ndarray, theta: np.ndarray, flops: FlopsModel | None = None) -> np.ndarray:
        """Where the law with parameters ``theta[i]`` reaches ``loss[i]`` (inf if never), (S,)."""
        raise NotImplementedError

    def interval_of(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The interval of a derived quantity from its values at ``samples`` (S, m): percentiles of
        bootstrap refits, or the range over the likelihood-ratio set (NaN: unbounded; no samples: NaN)."""
        if len(self.samples) == 0:
            nan = np.full(values.shape[1:], np.nan)
            return nan, nan.copy()
        if self.interval == "profile":
            edge = self.edge if self.edge is not None else np.zeros(len(values), bool)
            return region_interval(values, edge)
        return percentile_interval(values, self.level)

    def predict(self, *x: Any) -> np.ndarray:
        """Predicted loss at the given inputs (broadcast numpy arrays)."""
        arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, float)) for v in x))
        return self._predict(self._theta(), *(a.ravel() for a in arrays))[0].reshape(arrays[0].shape)

    def curve(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predicted loss along ``at`` (what ``loss_at`` takes: x for a power law) and its interval,
        as the charts draw it."""
        lo, hi = self.predict_interval(at)
        return self.predict(at), lo, hi

    def predict_interval(self, *x: Any, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Interval of the prediction (see ``interval_of``; NaN without samples or where unbounded).
        ``level`` applies to bootstrap percentiles; a likelihood-ratio set is built at ``self.level``."""
        arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, float)) for v in x))
        if len(self.samples) == 0:
            nan = np.full(arrays[0].shape, np.nan)
            return nan, nan
        preds = self._predict(self.samples, *(a.ravel() for a in arrays))
        if self.interval == "bootstrap" and level is not None:
            lo, hi = percentile_interval(preds, level)
        else:
            lo, hi = self.interval_of(preds)
        return lo.reshape(arrays[0].shape), hi.reshape(arrays[0].shape)

    def ci(self, level: float | None = None) -> dict[str, list[float]]:
        """``{param: [lo, hi]}`` intervals (empty without samples; NaN for an unbounded side)."""
        if len(self.samples) == 0:
            return {}
        if self.interval == "bootstrap" and level is not None:
            lo, hi = percentile_interval(self.samples, level)
        else:
            lo, hi = self.interval_of(self.samples)
        return {name: [float(lo[i]), float(hi[i])] for i, name in enumerate(self.params)}

    def undetermined(self) -> dict[str, str]:
        """``{param: why}`` for parameters whose interval the runs do not bound, or every parameter
        when intervals were asked for and cannot be made (empty when none were asked for)."""
        if self.interval == "unavailable":
            return dict.fromkeys(self.params, self.interval_note)
        out = {}
        for name, (lo, hi) in self.ci().items():
            if not (np.isfinite(lo) and np.isfinite(hi)):
                side = "below" if not np.isfinite(lo) else "above"
                out[name] = f"its {self.level:.0%} interval is not bounded {side} by the runs"
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": self.law,
            "inputs": list(self.inputs),
            "identified": self.identified,
            "not_identified": self.not_identified or None,
            "params": dict(self.params),
            "ci": self.ci(),
            "undetermined": self.undetermined(),
            "level": self.level,
            "interval": self.interval,
            "interval_note": self.interval_note,
            "n_runs": self.n_runs,
            "n_units": self.n_units,
            "n_bootstrap": len(self.samples) if self.interval == "bootstrap" else 0,
            "n_bootstrap_dropped": self.n_dropped,
            "huber_loss": self.objective,
            "warnings": list(self.warnings),
        }


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
