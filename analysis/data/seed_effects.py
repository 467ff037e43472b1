"""The shared seed effect: how much of the seed noise runs with one seed share, from the configs x seeds layout.

Runs with one seed see the same data order (the trainer seeds the batch order with the seed), so
the runs of different architectures on seed ``j`` share part of their noise: a seed block of a
study, the rungs of a ladder, the seed replicas of a search. The model is the two-way random
layout (configurations ``i`` x seeds ``j``, one run each):

    x_ij = mu_i + b_j + e_ij,   b_j ~ N(0, s_b^2) shared by every configuration on seed j,
                                e_ij ~ N(0, s_e^2) its own,

on losses divided by each configuration's (moderated) seed sd, so a configuration's own noise
level does not count as a shared effect (the correlation model: the shared part is the fraction
``rho = s_b^2 / (s_b^2 + s_e^2)`` of every configuration's variance). It is estimated on the
largest complete block (``complete_block``: the seeds run by every configuration of the block,
chosen to maximise the residual degrees of freedom ``(I - 1)(J - 1)``) by the ANOVA of the
two-way layout without replication: ``MS_seed`` (``J - 1`` dof) has expectation
``I s_b^2 + s_e^2``, ``MS_own`` (the interaction, ``(I - 1)(J - 1)`` dof) has ``s_e^2``.

* ``rho``: ``theta / (1 + theta)``, ``theta = max(0, (F - 1) / I)``, ``F = MS_seed / MS_own``.
* ``rho_lo``/``rho_hi``: the exact interval of the intraclass correlation from
  ``F / (1 + I theta) ~ F(J - 1, (I - 1)(J - 1))`` (Searle, Casella and McCulloch 1992, 3.6).
* ``draw_shared``: draws of the shared variance ``rho (J - 1) / chi2_{J-1}``: however many
  configurations ran those seeds, the shared part is known to ``J - 1`` degrees of freedom only
  (``MS_seed``'s), which is why three seeds leave it so uncertain. The selection bootstrap
  (``compare.selection``) draws one shared variance per simulated search, common to every
  configuration, and one shared normal per seed. (The generalised pivotal quantity of ``s_b^2``,
  ``(MS_seed (J-1) / chi2_{J-1} - MS_own dfe / chi2_dfe) / I``, was tried and rejected: it gives
  the shared part the same heavy tail even where ``rho`` is estimated at 0, and the best's
  interval of ten equal architectures with independent noise covered 1.00 over 200 searches.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SeedEffect:
    """The shared seed effect of one cell (see the module docstring); standardised units (a
    configuration's seed variance is 1). ``n_configs``/``n_seeds``: the complete block's size."""

    rho: float
    rho_lo: float
    rho_hi: float
    ms_seed: float
    ms_own: float
    n_configs: int
    n_seeds: int

    @property
    def dof_seed(self) -> int:
        return self.n_seeds - 1

    @property
    def dof_own(self) -> int:
        return (self.n_configs - 1) * (self.n_seeds - 1)

    def draw_shared(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        """``draws`` values of the shared variance, in units of a configuration's variance."""
        return self.rho * self.dof_seed / rng.chisquare(self.dof_seed, draws)


def complete_block(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, columns)`` of the largest complete block of ``y`` (configurations x seeds, NaN
    where not run): for each J, the J seeds run by the most configurations and the configurations
    that ran all of them; the J with the largest ``(I - 1)(J - 1)`` (ties: more seeds). Empty when
    no block has 2+ configurations on 2+ common seeds."""
    ran = np.isfinite(y)
    order = np.argsort(-ran.sum(axis=0), kind="stable")
    best: tuple[int, np.ndarray, np.ndarray] = (0, np.zeros(0, int), np.zeros(0, int))
    for j in range(2, y.shape[1] + 1):
        cols = order[:j]
        rows = np.flatnonzero(ran[:, cols].all(axis=1))
        dof = (rows.size - 1) * (j - 1)
        if rows.size >= 2 and dof >= best[0]:
            best = (dof, rows, np.sort(cols))
    return best[1], best[2]


def seed_effect(y: np.ndarray, sd: np.ndarray | None = None, level: float = 0.95) -> SeedEffect | None:
    """The shared seed effect of ``y`` (configurations x seeds, NaN where not run), each row
    divided by ``sd`` (its configuration's seed sd; none: unscaled). None without a complete block
    of 2+ configurations on 2+ common seeds, or when the block has no residual spread."""
    from scipy import stats

    y = np.asarray(y, float)
    if sd is not None:
        sd = np.asarray(sd, float)
        y = np.where((np.isfinite(sd) & (sd > 0))[:, None], y / np.where(sd > 0, sd, 1.0)[:, None], np.nan)
    rows, cols = complete_block(y)
    if rows.size < 2:
        return None
    x = y[np.ix_(rows, cols)]
    n_configs, n_seeds = x.shape
    resid = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
    dof_seed, dof_own = n_seeds - 1, (n_configs - 1) * (n_seeds - 1)
    ms_own = float(np.sum(resid**2)) / dof_own
    ms_seed = n_configs * float(np.sum((x.mean(axis=0) - x.mean()) ** 2)) / dof_seed
    if not ms_own > 0:
        return None
    f = ms_seed / ms_own
    q_hi, q_lo = stats.f.ppf([(1 + level) / 2, (1 - level) / 2], dof_seed, dof_own)

    def rho(theta: float) -> float:
        theta = max(0.0, theta)
        return theta / (1 + theta)

    return SeedEffect(
        rho=rho((f - 1) / n_configs),
        rho_lo=rho((f / q_hi - 1) / n_configs),
        rho_hi=rho((f / q_lo - 1) / n_configs),
        ms_seed=ms_seed,
        ms_own=ms_own,
        n_configs=n_configs,
        n_seeds=n_seeds,
    )
