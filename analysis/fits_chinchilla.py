"""Chinchilla Approach 3: ``L(N, D) = E + A / N**alpha + B / D**beta`` (Hoffmann et al. 2022).

``chinchilla_loss`` is the one definition of the law: fitting (through the shared log-sum-exp
objective of ``fits_common``, whose two-term form it is), prediction, the compute-optimal
allocation, rankings and effective-compute multipliers all evaluate it.

Compute is ``C = c * N**gamma * D`` (``FlopsModel``; ``c = 6, gamma = 1`` is the ``6ND`` rule).
Minimising ``A N^-alpha + B (C / (c N^gamma))^-beta`` over N gives the closed form
``N^(alpha + gamma beta) = alpha A C^beta / (gamma beta B c^beta)`` (``compute_optimal``).
"""

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
    percentile_interval,
    single_blas_thread,
)

PARAMS = ("E", "A", "B", "alpha", "beta")
#: Fewest runs ``fit_chinchilla`` accepts (five parameters).
MIN_RUNS = 5


def chinchilla_loss(theta: np.ndarray, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``E + A / N**alpha + B / D**beta`` for each row ``[E, A, B, alpha, beta]`` of ``theta``
    (S, 5). ``n`` and ``d`` broadcast against (S, 1): shape (m,) gives (S, m); (S, m) pairs rows."""
    e, a, b, alpha, beta = (theta[:, i : i + 1] for i in range(5))
    return e + a * n ** (-alpha) + b * d ** (-beta)


def compute_optimal(theta: np.ndarray, compute: np.ndarray, flops: FlopsModel) -> tuple[np.ndarray, np.ndarray]:
    """Compute-optimal ``N_opt`` and ``D_opt`` for each row of ``theta`` (S, 5) at ``compute``
    (broadcast like ``chinchilla_loss``: (m,) gives (S, m), (S, 1) pairs rows)."""
    _, a, b, alpha, beta = (theta[:, i : i + 1] for i in range(5))
    c, gamma = flops.c, flops.gamma
    log_n = (np.log(alpha * a) - np.log(gamma * beta * b) - beta * np.log(c) + beta * np.log(compute)) / (
        alpha + gamma * beta
    )
    n_opt = np.exp(log_n)
    return n_opt, flops.tokens(compute, n_opt)


def loss_at_optimum(theta: np.ndarray, compute: np.ndarray, flops: FlopsModel) -> np.ndarray:
    """The law's loss at the compute-optimal allocation of ``compute``."""
    return chinchilla_loss(theta, *compute_optimal(theta, compute, flops))


def design_problems(
    n: Any, d: Any, *, min_runs: int = MIN_RUNS, min_sizes: int = 3, min_token_counts: int = 3
) -> list[str]:
    """Why runs at sizes ``n`` and token counts ``d`` cannot identify Approach 3 (empty: they can).

    Today this counts runs, distinct sizes and distinct token counts, as the report has always
    done; a check of the design's conditioning belongs here too.
    """
    n, d = clean(n, d)
    problems = []
    if n.size < min_runs:
        problems.append(f"{n.size} runs (needs {min_runs}+)")
    if np.unique(n).size < min_sizes:
        problems.append(f"{np.unique(n).size} sizes (needs {min_sizes}+)")
    if np.unique(d).size < min_token_counts:
        problems.append(f"{np.unique(d).size} token counts (needs {min_token_counts}+)")
    return problems


@dataclass(frozen=True)
class ChinchillaFit(LawFit):
    """``L(N, D) = E + A / N**alpha + B / D**beta``; params ``E, A, B, alpha, beta``."""

    def _predict(self, theta: np.ndarray, *x: np.ndarray) -> np.ndarray:
        return chinchilla_loss(theta, x[0][None, :], x[1][None, :])

    def optimal_allocation(self, compute: Any, flops: FlopsModel | None = None) -> dict[str, np.ndarray]:
        """Compute-optimal ``N_opt(C)``, ``D_opt(C)`` and the loss there, with bootstrap intervals.

        ``C = c * N**gamma * D``: ``FlopsModel()`` is ``C = 6ND``; pass ``FlopsModel.fit(params,
        flops_per_token)`` to use the counted FLOPs of the runs instead.
        """
        flops = flops or FlopsModel()
        compute = np.atleast_1d(np.asarray(compute, float))
        n_opt, d_opt = compute_optimal(self._theta(), compute, flops)
        out = {
            "compute": compute,
            "n_opt": n_opt[0],
            "d_opt": d_opt[0],
            "loss": chinchilla_loss(self._theta(), n_opt, d_opt)[0],
        }
        if len(self.samples):
            ns, ds = compute_optimal(self.samples, compute, flops)
            for name, s in (("n_opt", ns), ("d_opt", ds), ("loss", chinchilla_loss(self.samples, ns, ds))):
                out[f"{name}_lo"], out[f"{name}_hi"] = percentile_interval(s, self.level)
        return out

    def loss_at_compute(
        self, compute: Any, flops: FlopsModel | None = None, theta: np.ndarray | None = None
    ) -> np.ndarray:
        """Loss at the compute-optimal allocation, shape (S, m) for thetas (S, 5)."""
        theta = self._theta() if theta is None else theta
        return loss_at_optimum(theta, np.atleast_1d(np.asarray(compute, float)), flops or FlopsModel())

    def loss_at(self, at: Any, theta: np.ndarray | None = None, flops: FlopsModel | None = None) -> np.ndarray:
        """Loss at compute ``at``, at the compute-optimal allocation (``loss_at_compute``)."""
        return self.loss_at_compute(at, flops, theta)

    def at_for_loss(self, loss: np.ndarray, theta: np.ndarray, flops: FlopsModel | None = None) -> np.ndarray:
        """Compute at which ``theta[i]``, allocated optimally, reaches ``loss[i]`` (inf if never).
        The optimal loss falls with C, so log C is bisected row-wise over [1e3, 1e45]."""
        flops = flops or FlopsModel()
        lo = np.full(loss.shape, np.log(1e3))
        hi = np.full(loss.shape, np.log(1e45))
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            above = loss_at_optimum(theta, np.exp(mid)[:, None], flops)[:, 0] > loss
            lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        return np.where(loss > theta[:, 0], np.exp(0.5 * (lo + hi)), np.inf)


@single_blas_thread
def fit_chinchilla(
    n: Any,
    d: Any,
    loss: Any,
    *,
    bootstrap: int = 0,
    seed: int = 0,
    delta: float = HUBER_DELTA,
    n_refine: int = 8,
    level: float = 0.95,
    inputs: tuple[str, str] = ("params", "tokens"),
) -> ChinchillaFit:
    """Chinchilla Approach 3 (see module docstring and ``fits_common``). Needs at least 5 runs;
    ``bootstrap=B`` resamples runs (resamples with fewer than 5 distinct (N, D) pairs are dropped)."""
    n, d, loss = clean(n, d, loss)
    if n.size < MIN_RUNS:
        raise ValueError(f"Approach 3 needs at least {MIN_RUNS} runs with positive N, D and loss, got {n.size}")
    log_x, log_loss = np.column_stack([np.log(n), np.log(d)]), np.log(loss)
    theta, value = fit_lse(log_x, log_loss, delta=delta, n_refine=n_refine)
    pair_id = np.unique(log_x, axis=0, return_inverse=True)[1].ravel()  # distinct (N, D) pairs
    indices = bootstrap_indices(n.size, bootstrap, seed, pair_id, MIN_RUNS)
    samples = bootstrap_refits(theta, log_x, log_loss, indices, delta)

    def natural(t: np.ndarray) -> np.ndarray:  # [e, a, b, alpha, beta] -> [E, A, B, alpha, beta]
        return np.column_stack([np.exp(t[:, 0]), np.exp(t[:, 1]), np.exp(t[:, 2]), t[:, 3], t[:, 4]])

    point = natural(theta[None, :])[0]
    return ChinchillaFit(
        law="chinchilla",
        params=dict(zip(PARAMS, map(float, point), strict=True)),
        samples=natural(samples),
        n_runs=int(n.size),
        objective=value,
        inputs=inputs,
        level=level,
        warnings=bound_warnings(theta, PARAMS),
    )
