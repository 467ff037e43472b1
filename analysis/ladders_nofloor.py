"""The ladder law without a floor, for ladders that show none.

The joint fit (`archscale.analysis.ladders.fit_ladders`) shares the irreducible loss E over every
ladder. When its least-squares E ends at 0, the losses fall along straight lines in log-log over
the ladders' compute range: no flattening is seen, so E cannot be told from 0 and the five-parameter
law is not identified. The nested law with E = 0,

    L_i(C) = exp(a_i) * (C / C0) ** -alpha_i,

is: each ladder is a straight line in log L against log C, fitted by least squares, with one
residual variance pooled over the ladders (3m rungs, 2m parameters, m residual degrees of freedom
for m ladders of 3 rungs). Its intervals are exact t intervals for the line at the target (for
noise that is Gaussian in log L, as seed noise of a few hundredths of a nat at a loss of ~2.5 is,
to first order).

What it assumes, and says: E = 0 over the extrapolation. If the loss flattens between the ladders
and the target, the prediction is optimistic, by more the farther the target is. It is labelled
`law = "no floor (E = 0)"` in predictions.parquet, and `--validate-top` measures it against real
training at a held-out scale (docs/guide.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from archscale.analysis.ladders import ALPHA_BOUNDS, LadderFit, LadderLaw

LAW = "no floor (E = 0)"


@dataclass
class NoFloorFit(LadderFit):
    """Straight lines in log L vs log C, one per ladder, with a pooled residual variance."""

    law: str = LAW
    note: str = ""  # why the shared-E law was not used
    log_sigma: float = math.nan  # residual standard deviation of log L
    cov: dict[Any, np.ndarray] = field(default_factory=dict)  # (X^T X)^-1 of each ladder's line

    def predict(self, ladder: Any, compute: float, level: float = 0.95) -> tuple[float, float, float] | None:
        """(median, lo, hi) predicted loss of `ladder` at `compute` with a t interval, or None."""
        from scipy.stats import t

        law = self.laws.get(ladder)
        if law is None or not law.identified or not self.identified:
            return None
        x = np.array([1.0, -math.log(compute / self.c0)])  # log L = a - alpha * log(C / c0)
        centre = law.log_A - law.alpha * math.log(compute / self.c0)
        half = t.ppf((1 + level) / 2, self.dof) * self.log_sigma * math.sqrt(float(x @ self.cov[ladder] @ x))
        return math.exp(centre), math.exp(centre - half), math.exp(centre + half)


def fit_without_floor(usable: dict[Any, tuple[np.ndarray, np.ndarray]], c0: float, why: str) -> NoFloorFit:
    """Fit `usable` ladders ({key: (compute, loss)}, each with >= 3 distinct compute levels) with
    E = 0. `why` says why the shared-E law was not used (kept in every law's note)."""
    laws: dict[Any, LadderLaw] = {}
    cov: dict[Any, np.ndarray] = {}
    sse_log, sse, n = 0.0, 0.0, 0
    fitted = {}
    for key, (c, y) in usable.items():
        X = np.column_stack([np.ones(len(c)), -np.log(c / c0)])
        coef, *_ = np.linalg.lstsq(X, np.log(y), rcond=None)
        resid = np.log(y) - X @ coef
        sse_log += float(resid @ resid)
        sse += float(np.sum((y - np.exp(X @ coef)) ** 2))
        n += len(y)
        cov[key] = np.linalg.inv(X.T @ X)
        fitted[key] = (float(coef[0]), float(coef[1]))
    dof = n - 2 * len(usable)
    reason = None if dof >= 1 else f"{n} rungs for {2 * len(usable)} parameters: no residual degrees of freedom"
    for key, (log_a, alpha) in fitted.items():
        if reason is not None:
            laws[key] = LadderLaw(key, 0.0, log_a, alpha, c0, False, reason)
        elif not ALPHA_BOUNDS[0] < alpha < ALPHA_BOUNDS[1]:
            note = f"alpha = {alpha:.3g} is outside {ALPHA_BOUNDS}: the loss does not fall like a power law in compute"
            laws[key] = LadderLaw(key, 0.0, log_a, alpha, c0, False, note)
        else:
            laws[key] = LadderLaw(key, 0.0, log_a, alpha, c0, True)
    return NoFloorFit(
        laws=laws,
        E=0.0,
        sigma=math.sqrt(sse / dof) if dof > 0 else math.nan,
        dof=dof,
        n=n,
        c0=c0,
        identified=reason is None,
        reason=reason,
        log_sigma=math.sqrt(sse_log / dof) if dof > 0 else math.nan,
        cov=cov,
        note=why,
    )
