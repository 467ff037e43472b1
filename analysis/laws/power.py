"""The power law ``L(x) = E + A * x**(-alpha)``, for x in ``params``, ``non_embedding_params``,
``tokens`` or ``compute`` (natural logarithms; losses in nats/token). Fitted with the shared
Huber/L-BFGS-B machinery of ``objective`` with one term.

Identifiability: three parameters need at least four distinct x (design units) to leave a residual
to judge the fit by; fewer raise ``NotIdentified``. A fit with ``E`` or ``alpha`` at the edge of the
box (typically ``E -> 0`` or ``alpha -> 10`` on a few noisy points) is returned with
``not_identified`` set, and nothing is derived from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .inputs import FlopsModel
from .intervals import design_units
from .objective import HUBER_DELTA, NotIdentified, bound_warnings, fit_lse, single_blas_thread
from .record import LawFit, law_fit

#: Fewest distinct x (design units): the three parameters plus one residual.
MIN_UNITS = 4


def power_law_loss(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``E + A * x**(-alpha)`` for each row ``[E, A, alpha]`` of ``theta`` (S, 3); ``x`` broadcasts
    against (S, 1): shape (m,) gives (S, m), shape (S, 1) pairs row i with x[i]."""
    e, a, alpha = theta[:, :1], theta[:, 1:2], theta[:, 2:3]
    return e + a * x ** (-alpha)


@dataclass(frozen=True)
class PowerLawFit(LawFit):
    """``L(x) = E + A * x**(-alpha)``; params ``E, A, alpha``."""

    def _predict(self, theta: np.ndarray, *x: np.ndarray) -> np.ndarray:
        return power_law_loss(theta, x[0][None, :])

    def loss_at(self, at: Any, theta: np.ndarray | None = None, flops: FlopsModel | None = None) -> np.ndarray:
        """Loss at x = ``at`` (``flops`` is unused: the law is already in x), shape (S, m)."""
        theta = self._theta() if theta is None else theta
        return power_law_loss(theta, np.atleast_1d(np.asarray(at, float))[None, :])

    def at_for_loss(self, loss: np.ndarray, theta: np.ndarray, flops: FlopsModel | None = None) -> np.ndarray:
        """The x at which ``theta[i]`` reaches ``loss[i]``: ``(A / (L - E))**(1/alpha)``, inf when L <= E."""
        e, a, alpha = theta[:, 0], theta[:, 1], theta[:, 2]
        gap = np.where(loss > e, loss - e, 1.0)
        return np.where(loss > e, (a / gap) ** (1.0 / alpha), np.inf)


@single_blas_thread
def fit_power_law(
    x: Any,
    loss: Any,
    *,
    x_name: str = "x",
    bootstrap: int = 0,
    seed: int = 0,
    delta: float = HUBER_DELTA,
    n_refine: int = 8,
    level: float = 0.95,
    units: Any = None,
) -> PowerLawFit:
    """Fit ``L(x) = E + A * x**(-alpha)`` (Huber on log-residuals, summed over runs).

    Non-positive or non-finite values are dropped. Needs at least 3 runs at 4 distinct x (else
    ``NotIdentified``, a ``ValueError``). ``units`` is a design-unit id per run (the seeds of one
    planned size share one; default: the distinct x). ``bootstrap=B`` asks for intervals: a
    bootstrap of whole units, or the likelihood-ratio interval with few units (``law_intervals``).
    """
    x, loss, unit_ids = _clean_with_units(x, loss, units)
    if x.size < 3:
        raise ValueError(f"a power law needs at least 3 runs with positive {x_name} and loss, got {x.size}")
    n_units = int(np.unique(unit_ids).size)
    if n_units < MIN_UNITS:
        raise NotIdentified(
            f"a power law in {x_name} is not identified by {n_units} distinct {x_name} values "
            f"(3 parameters need {MIN_UNITS}+ to leave a residual); run more sizes"
        )
    log_x, log_loss = np.log(x)[:, None], np.log(loss)
    theta, value = fit_lse(log_x, log_loss, delta=delta, n_refine=n_refine)
    edges = bound_warnings(theta, ("E", "A", "alpha"))
    remedy = f"run more sizes spanning a wider range of {x_name}"
    kwargs = {"bootstrap": bootstrap, "seed": seed, "delta": delta, "level": level}
    return law_fit(  # type: ignore[return-value]
        PowerLawFit, "power", ("E", "A", "alpha"), theta, value, log_x, log_loss, unit_ids,
        problems=edges, remedy=remedy, inputs=(x_name,), **kwargs,
    )  # fmt: skip


def _clean_with_units(x: Any, loss: Any, units: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Finite positive runs and their design units (default: the distinct x)."""
    x, loss = np.asarray(x, float).ravel(), np.asarray(loss, float).ravel()
    ok = np.isfinite(x) & (x > 0) & np.isfinite(loss) & (loss > 0)
    ids = design_units(x) if units is None else design_units(np.asarray(units).ravel())
    return x[ok], loss[ok], np.unique(ids[ok], return_inverse=True)[1].ravel()
