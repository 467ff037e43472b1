"""The power law ``L(x) = E + A * x**(-alpha)``, for x in ``params``, ``non_embedding_params``,
``tokens`` or ``compute`` (natural logarithms; losses in nats/token). Fitted with the shared
Huber/L-BFGS-B machinery of ``fits_common`` with one term."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .fits_common import (
    HUBER_DELTA,
    FlopsModel,
    LawFit,
    bootstrap_indices,
    bootstrap_refits,
    bound_warnings,
    clean,
    fit_lse,
    single_blas_thread,
)


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
) -> PowerLawFit:
    """Fit ``L(x) = E + A * x**(-alpha)`` (Huber on log-residuals, summed over runs).

    Non-positive or non-finite values are dropped. Needs at least 3 runs. ``bootstrap=B``
    resamples runs (resamples with fewer than 3 distinct x are dropped).
    """
    x, loss = clean(x, loss)
    if x.size < 3:
        raise ValueError(f"a power law needs at least 3 runs with positive {x_name} and loss, got {x.size}")
    log_x, log_loss = np.log(x)[:, None], np.log(loss)
    theta, value = fit_lse(log_x, log_loss, delta=delta, n_refine=n_refine)
    samples = bootstrap_refits(theta, log_x, log_loss, bootstrap_indices(x.size, bootstrap, seed, x), delta)

    def natural(t: np.ndarray) -> np.ndarray:  # [e, a, alpha] -> [E, A, alpha]
        return np.column_stack([np.exp(t[:, 0]), np.exp(t[:, 1]), t[:, 2]])

    point = natural(theta[None, :])[0]
    return PowerLawFit(
        law="power",
        params={"E": float(point[0]), "A": float(point[1]), "alpha": float(point[2])},
        samples=natural(samples),
        n_runs=int(x.size),
        objective=value,
        inputs=(x_name,),
        level=level,
        warnings=bound_warnings(theta, ("E", "A", "alpha")),
    )
