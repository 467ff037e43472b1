"""The record of a ladder fit (one law per architecture, E shared) and where two laws cross.

``LadderFit`` is what ``ladder.fit_ladders`` (shared floor E) and ``ladder_nofloor.fit_without_floor``
(E = 0) return; ``crossings`` reads any of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ALPHA_BOUNDS = (0.01, 3.0)
LOG_A_BOUNDS = (-30.0, 30.0)
MIN_LADDERS = 2
MIN_RUNGS = 3
#: How ``LadderFit.predict`` makes its interval from the refits: ``"union"`` of the basic and the
#: percentile intervals, or ``"percentile"`` alone (measured side by side by bench_calibration).
INTERVAL = "union"


@dataclass(frozen=True)
class LadderLaw:
    """One architecture's fitted law (E is the search's shared value)."""

    ladder: Any
    E: float
    log_A: float
    alpha: float
    c0: float
    identified: bool
    reason: str | None = None

    def loss_at(self, compute: np.ndarray | float) -> np.ndarray:
        c = np.asarray(compute, dtype=float)
        return self.E + np.exp(self.log_A - self.alpha * np.log(c / self.c0))


@dataclass
class LadderFit:
    """The joint fit of every complete ladder, with bootstrap replicates for intervals."""

    laws: dict[Any, LadderLaw]
    E: float
    sigma: float  # residual standard deviation (nats)
    dof: int
    n: int
    c0: float
    identified: bool
    reason: str | None
    replicates: list[dict[Any, tuple[float, float, float]]] = field(default_factory=list)  # (E, log_A, alpha)
    law: str = "shared E"  # how predictions.parquet labels the law
    interval_method: str = "parametric bootstrap (noise level drawn too); basic and percentile intervals united"

    def curve(self, ladder: Any, start: float, stop: float, points: int = 24) -> list[dict[str, float]]:
        """The fitted law of ``ladder`` with its 95% band at ``points`` computes from ``start`` to
        ``stop`` (log-spaced; points without an interval left out), as predictions.parquet stores it."""
        out = []
        for c in np.geomspace(start, stop, points):
            p = self.predict(ladder, float(c))
            if p is not None and math.isfinite(p[1]):
                out.append({"compute": float(c), "loss": p[0], "lo": p[1], "hi": p[2]})
        return out

    def param_intervals(self, ladder: Any, level: float = 0.95) -> dict[str, tuple[float, float]]:
        """Percentile intervals of ``E, log_A, alpha`` of ``ladder`` over the bootstrap refits
        (empty with fewer than 20 refits, or when the ladder's law is not identified)."""
        draws = np.array([rep[ladder] for rep in self.replicates if ladder in rep]).reshape(-1, 3)
        law = self.laws.get(ladder)
        if law is None or not law.identified or len(draws) < 20:
            return {}
        lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return {name: (float(lo[i]), float(hi[i])) for i, name in enumerate(("E", "log_A", "alpha"))}

    def predict(self, ladder: Any, compute: float, level: float = 0.95) -> tuple[float, float, float] | None:
        """(mean, lo, hi) predicted loss of `ladder` at `compute`, or None when not identified."""
        law = self.laws.get(ladder)
        if law is None or not law.identified or not self.identified:
            return None
        mean = float(law.loss_at(compute))
        draws = np.array(
            [
                E + math.exp(a - al * math.log(compute / self.c0))
                for rep in self.replicates
                if ladder in rep
                for E, a, al in [rep[ladder]]
            ]
        )
        if len(draws) < 20:
            return mean, math.nan, math.nan
        q_lo, q_hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
        if INTERVAL == "percentile":
            return mean, float(q_lo), float(q_hi)
        # the union of the basic (reflected) and the percentile bootstrap intervals: the basic one
        # corrects for the fit's bias at the target, which the percentile one inherits, but fails
        # when the refits' distribution is skewed by E's bounds; neither is right at every ladder
        # design (bench_calibration at 0.045 nats: basic 0.85 / percentile 0.95 with rungs of ratio
        # 2, basic 0.90-0.94 / percentile 0.93 with ratio 4), so both ends are the wider of the two
        return mean, float(min(2 * mean - q_hi, q_lo)), float(max(2 * mean - q_lo, q_hi))


#: ``exp`` overflows above this: a crossing that far from c0 is outside any compute range.
_MAX_LOG = 700.0


def crossings(fit: LadderFit, lo: float, hi: float) -> list[dict[str, Any]]:
    """Where one architecture's law overtakes another's between compute `lo` and `hi`:
    {"winner", "loser", "compute", "p_overtakes"}: `winner` has the lower predicted loss above
    `compute`; ``p_overtakes`` is the fraction of the bootstrap refits in which the winner is
    worse at `lo` and better at `hi` (it overtakes inside the range), None with < 20 refits.
    A crossing is never computed by overflowing ``exp``: one beyond e^700 of c0 is outside."""
    out = []
    laws = [law for law in fit.laws.values() if law.identified]
    for i, a in enumerate(laws):
        for b in laws[i + 1 :]:
            if abs(a.alpha - b.alpha) < 1e-9:
                continue
            x = (a.log_A - b.log_A) / (a.alpha - b.alpha)  # log(C*/c0) where the two curves meet
            if not math.isfinite(x) or abs(x) > _MAX_LOG:
                continue
            c_star = fit.c0 * math.exp(x)
            if lo < c_star < hi:
                steeper, flatter = (a, b) if a.alpha > b.alpha else (b, a)
                p = _p_overtakes(fit, steeper.ladder, flatter.ladder, lo, hi)
                out.append({"winner": steeper.ladder, "loser": flatter.ladder, "compute": c_star, "p_overtakes": p})
    return out


def _p_overtakes(fit: LadderFit, winner: Any, loser: Any, lo: float, hi: float) -> float | None:
    reps = [rep for rep in fit.replicates if winner in rep and loser in rep]
    if len(reps) < 20:
        return None
    arr = np.array([[*rep[winner], *rep[loser]] for rep in reps])

    def at(c: float, j: int) -> np.ndarray:
        with np.errstate(over="ignore"):
            return arr[:, j] + np.exp(arr[:, j + 1] - arr[:, j + 2] * math.log(c / fit.c0))

    overtakes = (at(lo, 0) > at(lo, 3)) & (at(hi, 0) < at(hi, 3))
    return float(np.mean(overtakes))


def crossings_by_ladder(fit: LadderFit, lo: float, hi: float) -> dict[Any, list[dict[str, Any]]]:
    """``crossings`` from each ladder's side: ``{ladder: [{"other", "compute", "overtakes",
    "p_overtakes"}]}``, ``overtakes`` True where ``ladder`` is the one that becomes better above
    ``compute``."""
    out: dict[Any, list[dict[str, Any]]] = {}
    for cross in crossings(fit, lo, hi):
        for me, other, overtakes in ((cross["winner"], cross["loser"], True), (cross["loser"], cross["winner"], False)):
            out.setdefault(me, []).append(
                {
                    "other": other,
                    "compute": cross["compute"],
                    "overtakes": overtakes,
                    "p_overtakes": cross["p_overtakes"],
                }
            )
    return out
