"""The one fitted-law record every entry of ``LAWS`` returns, whatever the law.

A ``FittedLaw`` says what was fitted (``law``, on which ``series``), its parameters, an interval
per parameter and how the intervals were made (``interval_method``), whether the runs identify it
(``identified``; else ``reason``, one line with what to run), how many runs it saw (``n``) and its
residual degrees of freedom (``df``), and predicts with an interval: ``predict(x) -> (mean, lo,
hi)`` arrays, ``x`` being the law's own input (``predicts`` names it and what comes out); a law
conditioned on the architecture (the space law) also predicts ``predict(arch, compute)``. Callers
read these fields and never ask which law made the record; a law's own extras (an isoFLOP fit's
budgets, a Chinchilla fit's allocation) stay on ``native``, the law module's record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .objective import NotIdentified

#: ``x -> (mean, lo, hi)``: arrays shaped like ``x``; NaN where an interval is not available.
Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
#: ``(architecture, compute) -> (mean, lo, hi)``, arrays shaped like ``compute``: a conditioned law's predictor.
ArchPredictor = Callable[[Any, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def _no_prediction(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nan = np.full(x.shape, np.nan)
    return nan, nan.copy(), nan.copy()


@dataclass(frozen=True)
class FittedLaw:
    """A law fitted to one series of runs (see the module docstring)."""

    law: str  # its name in ``LAWS``
    series: str  # the family, ladder or table it was fitted on
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]  # per parameter; NaN for a side the runs do not bound
    interval_method: str  # "bootstrap", "profile", "parametric bootstrap", "t", "none", "unavailable", ...
    identified: bool
    reason: str | None  # why it is not identified (None when it is)
    n: int  # runs fitted
    df: int  # residual degrees of freedom
    predicts: str  # "<output> at <input>", e.g. "loss at compute"
    predictor: Predictor = field(default=_no_prediction, repr=False, compare=False)
    native: Any = field(default=None, repr=False, compare=False)  # the law module's own record
    arch_predictor: ArchPredictor | None = field(default=None, repr=False, compare=False)  # conditioned laws only

    def predict(self, x: Any, compute: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, lo, hi)`` at ``x`` (the law's input, see ``predicts``), each shaped like ``x``;
        ``predict(arch, compute)`` for a law conditioned on the architecture (shaped like
        ``compute``). Raises ``NotIdentified`` (with the reason) for a law the runs do not identify."""
        if not self.identified:
            raise NotIdentified(f"{self.law} on {self.series}: {self.reason}")
        if compute is not None:
            if self.arch_predictor is None:
                raise TypeError(f"the {self.law} law is not conditioned on an architecture: call predict(x)")
            arr = np.asarray(compute, float)
            mean, lo, hi = self.arch_predictor(x, np.atleast_1d(arr).ravel())
            return tuple(np.asarray(v, float).reshape(arr.shape) for v in (mean, lo, hi))  # type: ignore[return-value]
        arr = np.asarray(x, float)
        mean, lo, hi = self.predictor(np.atleast_1d(arr).ravel())
        return tuple(np.asarray(v, float).reshape(arr.shape) for v in (mean, lo, hi))  # type: ignore[return-value]


def refused(law: str, series: str, reason: str, *, n: int, predicts: str) -> FittedLaw:
    """The record of a law the runs of ``series`` cannot identify at all (nothing was fitted)."""
    return FittedLaw(
        law=law,
        series=series,
        params={},
        intervals={},
        interval_method="none",
        identified=False,
        reason=reason,
        n=n,
        df=0,
        predicts=predicts,
    )
