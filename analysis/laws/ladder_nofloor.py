"""The ladder law without a floor, for ladders that show none.

The joint fit (`archscale.analysis.laws.ladder.fit_ladders`) shares the irreducible loss E over every
ladder. When its least-squares E ends at 0, the losses fall along straight lines in log-log over
the ladders' compute range: no flattening is seen, so E cannot be told from 0 and the five-parameter
law is not identified. The nested law with E = 0,

    L_i(C) = exp(a_i) * (C / C0) ** -alpha_i,

is: each ladder is a straight line in log L against log C, fitted by least squares, with one
residual variance pooled over the ladders (3m rungs, 2m parameters, m residual degrees of freedom
for m ladders of 3 rungs). The point prediction is the line at the target. Its interval does not
assume E = 0: it is the union, over every floor E the data do not reject (a likelihood-ratio test
against the best floor, with the n - 2m - 1 residual degrees of freedom of the model with a
floor), of the t interval of the lines in log(L - E); at low noise that is the
plain t interval of E = 0, and when noise hides a floor the upper end rises with the floors the
data still allow.

What it assumes, and says: the point prediction takes E = 0 over the extrapolation; if the loss
flattens between the ladders and the target it is optimistic, the more so the farther the target,
and the interval's upper end is where that shows. It is labelled
`law = "no floor (E = 0)"` in predictions.parquet, and `--validate-top` measures it against real
training at a held-out scale (docs/guide.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .ladder_record import ALPHA_BOUNDS, LadderFit, LadderLaw

LAW = "no floor (E = 0)"


@dataclass
class NoFloorFit(LadderFit):
    """Straight lines in log L vs log C, one per ladder, with a pooled residual variance; and, for
    the interval, the same lines in log(L - E) for every floor E the data do not reject."""

    law: str = LAW
    interval_method: str = "t intervals of the lines, united over every floor E the data do not reject"
    note: str = ""  # why the shared-E law was not used
    # per floor E the data do not reject (E = 0 first): (E, {ladder: (log_A, alpha)}, log sigma)
    floors: list[tuple[float, dict[Any, tuple[float, float]], float]] = field(default_factory=list)
    cov: dict[Any, np.ndarray] = field(default_factory=dict)  # (X^T X)^-1 of each ladder's line

    def param_intervals(self, ladder: Any, level: float = 0.95) -> dict[str, tuple[float, float]]:
        """``E`` over the floors the data do not reject; ``log_A`` and ``alpha``: the union over
        those floors of their t intervals (empty when the ladder's law is not identified)."""
        from scipy.stats import t

        law = self.laws.get(ladder)
        if law is None or not law.identified or not self.identified:
            return {}
        q = t.ppf((1 + level) / 2, self.dof) * np.sqrt(np.diag(self.cov[ladder]))  # per unit log sigma
        es = [e for e, _, _ in self.floors]
        ends = np.array([[a - q[0] * s, a + q[0] * s, al - q[1] * s, al + q[1] * s] for _, lines, s in self.floors
                         for a, al in [lines[ladder]]])  # fmt: skip
        return {
            "E": (float(min(es)), float(max(es))),
            "log_A": (float(ends[:, 0].min()), float(ends[:, 1].max())),
            "alpha": (float(ends[:, 2].min()), float(ends[:, 3].max())),
        }

    def predict(self, ladder: Any, compute: float, level: float = 0.95) -> tuple[float, float, float] | None:
        """(median at E = 0, lo, hi) predicted loss of `ladder` at `compute`, or None.

        The interval is the union, over every floor E the data do not reject (a likelihood-ratio
        test of E against the best floor, F(1, dof) at `level`), of the t interval of the line
        log(L - E) = a - alpha log(C / c0) at E: at low noise only floors near 0 remain and it is
        the plain t interval; when the noise hides a floor, floors up to the smallest loss may
        remain and the upper end rises with them (the prediction at E = 0 is the optimistic one)."""
        from scipy.stats import t

        law = self.laws.get(ladder)
        if law is None or not law.identified or not self.identified:
            return None
        x = np.array([1.0, -math.log(compute / self.c0)])
        q = t.ppf((1 + level) / 2, self.dof) * math.sqrt(float(x @ self.cov[ladder] @ x))
        lo, hi = math.inf, -math.inf
        for e, lines, log_sigma in self.floors:
            log_a, alpha = lines[ladder]
            centre = log_a - alpha * math.log(compute / self.c0)
            lo, hi = min(lo, e + math.exp(centre - q * log_sigma)), max(hi, e + math.exp(centre + q * log_sigma))
        return float(law.loss_at(compute)), lo, hi


def fit_without_floor(
    usable: dict[Any, tuple[np.ndarray, np.ndarray]], c0: float, why: str, level: float = 0.95
) -> NoFloorFit:
    """Fit `usable` ladders ({key: (compute, loss)}, each with >= 3 distinct compute levels) with
    E = 0, keeping the floors E the data do not reject for the interval. `why` says why the
    shared-E law was not used."""
    from scipy.stats import f

    keys = list(usable)
    n = sum(len(y) for _, y in usable.values())
    dof = n - 2 * len(keys)
    X = {k: np.column_stack([np.ones(len(c)), -np.log(c / c0)]) for k, (c, _) in usable.items()}
    cov = {k: np.linalg.inv(X[k].T @ X[k]) for k in keys}
    e_hi = float(min(y.min() for _, y in usable.values()))

    def lines_at(e: float) -> tuple[dict[Any, tuple[float, float]], float, float]:
        """Each ladder's line in log(L - e): its (log_A, alpha), the SSE in log(L - e) and in L."""
        lines, sse_log, sse = {}, 0.0, 0.0
        for k, (_, y) in usable.items():
            coef, *_ = np.linalg.lstsq(X[k], np.log(y - e), rcond=None)
            resid = np.log(y - e) - X[k] @ coef
            sse_log += float(resid @ resid)
            sse += float(np.sum((y - e - np.exp(X[k] @ coef)) ** 2))
            lines[k] = (float(coef[0]), float(coef[1]))
        return lines, sse_log, sse

    e_grid = np.linspace(0.0, e_hi * (1 - 1e-3), 60)
    grid = [lines_at(e) for e in e_grid]
    fitted, sse_log0, sse0 = grid[0]
    reason = None if dof >= 1 else f"{n} rungs for {2 * len(keys)} parameters: no residual degrees of freedom"
    floors = []
    if reason is None:
        best = min(g[2] for g in grid)
        # floors the data do not reject: a likelihood-ratio test of E against the best floor (1 df);
        # the best floor's model has 2m + 1 parameters, so its residuals have n - 2m - 1 dof
        lr_dof = dof - 1
        limit = best * (1 + f.ppf(level, 1, lr_dof) / lr_dof) if lr_dof >= 1 else best
        floors = [(float(e), g[0], math.sqrt(g[1] / dof)) for e, g in zip(e_grid, grid, strict=True) if g[2] <= limit]
        floors = floors if floors and floors[0][0] == 0.0 else [(0.0, fitted, math.sqrt(sse_log0 / dof)), *floors]
    laws: dict[Any, LadderLaw] = {}
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
        sigma=math.sqrt(sse0 / dof) if dof > 0 else math.nan,
        dof=dof,
        n=n,
        c0=c0,
        identified=reason is None,
        reason=reason,
        floors=floors,
        cov=cov,
        note=why,
    )
