"""The space law's fit: MAP by least squares, prior scales by marginal likelihood, Laplace posterior draws.

The model, for run i of architecture x_i (its encoded columns) at compute C_i:

    y_i = E + exp(b0 + x_i . b + u_k(i) - (a0 + x_i . s) * log(C_i / C0)) + eps_i,   eps_i ~ N(0, sigma_i^2)

with priors b_j ~ N(0, tau_b^2) (level effects), s_j ~ N(0, tau_s^2) (slope effects), u_k ~
N(0, tau_u^2) (architecture k's own level deviation: what its values' effects do not explain), weak
priors on the intercepts, and E = y_min * sigmoid(u), u ~ N(0, U_SD^2) (E below every loss seen).
``sigma_i`` is given (the run's configuration's seed noise, ``space_data``). The MAP is one
``scipy.optimize.least_squares`` over the stacked data and prior residuals; the posterior is its
Laplace approximation N(MAP, (J^T J)^-1), inflated by the reduced chi-square when the data scatter
more than their noise says (lack of fit). ``tau_b``, ``tau_s`` and ``tau_u`` are chosen on grids
by the Laplace approximation of the marginal likelihood (empirical Bayes; coordinate ascent): the
data decide how much the values of an axis are allowed to differ, and so how strongly a value
seen once is pulled toward the space's mean, and how far an architecture may stray from the
sum of its values' effects (an untrained one draws its deviation from N(0, tau_u^2)).
Only the level columns some run has (``level_seen``) and the slope columns of the values seen
are fitted; the others are drawn from their prior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

U_SD = 2.0  # prior sd of logit(E / y_min): weak, it keeps E's posterior proper with 2 sizes
B0_SD = 3.0  # prior sd of the reference log-gap around its start
A0_PRIOR = (0.3, 0.5)  # prior mean and sd of the space's mean exponent alpha (weak)
TAU_B_GRID = np.geomspace(0.003, 1.0, 6)  # candidate prior sds of the level effects (log_A units)
TAU_S_GRID = np.geomspace(0.001, 0.3, 6)  # candidate prior sds of the slope effects (alpha units)
TAU_U_GRID = np.geomspace(0.001, 0.3, 6)  # candidate prior sds of an architecture's own level deviation
#: The prior sd of a slope the runs do not identify (a value trained at one size) is at least this:
#: the prior scale chosen from the *identified* slopes says little about one never seen change (a
#: space of small slope effects can hold one large one), so its prediction away from the size it
#: was trained at fans out as a slope effect of 0.03 in alpha would (the simulation's effects are
#: ~N(0, 0.02), benchmarks/bench_space_law.py).
UNSEEN_SLOPE_SD = 0.03


@dataclass
class SpaceFit:
    """The MAP, its Laplace covariance, the chosen prior scales, and what entered the fit."""

    theta: np.ndarray  # [u, b0, a0, b (level columns fitted), s (slope columns fitted)]
    cov: np.ndarray
    tau_b: float
    tau_s: float
    tau_u: float  # prior sd of an architecture's own level deviation (the non-additive part)
    y_min: float
    c0: float
    level_cols: np.ndarray  # indices of the fitted level columns
    slope_cols: np.ndarray  # indices of the fitted slope columns
    slope_sd: np.ndarray  # their prior sds (tau_s, or UNSEEN_SLOPE_SD for the unidentified ones)
    n_cols: int
    n_arch: int  # architectures with their own level deviation (after the level columns in theta)
    chi2: float  # sum of squared standardised data residuals at the MAP
    dof: int
    inflation: float  # the factor the covariance was multiplied by (>= 1)
    log_evidence: float

    @property
    def E(self) -> float:
        return float(self.y_min / (1 + np.exp(-self.theta[0])))

    def full(
        self, theta: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(E, b0, a0)`` and level / slope coefficient arrays over every column, for parameter
        rows ``theta`` (S, P); unfitted columns are 0, or drawn from their prior when ``rng`` is given."""
        theta = np.atleast_2d(theta)
        s_n = theta.shape[0]
        b = np.zeros((s_n, self.n_cols + self.n_arch))  # the effect columns, then each architecture's deviation
        s = np.zeros((s_n, self.n_cols))
        k = 3 + self.level_cols.size
        b[:, self.level_cols] = theta[:, 3:k]
        b[:, self.n_cols :] = theta[:, k : k + self.n_arch]
        s[:, self.slope_cols] = theta[:, k + self.n_arch :]
        if rng is not None:
            free_b = np.setdiff1d(np.arange(self.n_cols), self.level_cols)  # never-trained values
            free_s = np.setdiff1d(np.arange(self.n_cols), self.slope_cols)
            b[:, free_b] = rng.normal(0, self.tau_b, (s_n, free_b.size))
            s[:, free_s] = rng.normal(0, max(self.tau_s, UNSEEN_SLOPE_SD), (s_n, free_s.size))
        heads = np.column_stack([self.y_min / (1 + np.exp(-theta[:, 0])), theta[:, 1], theta[:, 2]])
        return heads, b, s

    def draws(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` Laplace posterior draws, as ``full`` returns them (unfitted columns from their prior)."""
        rng = np.random.default_rng(seed)
        theta = rng.multivariate_normal(self.theta, self.cov, size=n, method="cholesky")
        return self.full(theta, rng)


def _model(theta: np.ndarray, xb: np.ndarray, xs: np.ndarray, lc: np.ndarray, y_min: float):
    nb = xb.shape[1]
    u, b0, a0 = theta[:3]
    b, s = theta[3 : 3 + nb], theta[3 + nb :]
    sig = 1 / (1 + np.exp(-u))
    alpha = a0 + xs @ s
    term = np.exp(b0 + xb @ b - alpha * lc)
    return y_min * sig, sig, term


def _map(theta0, y, w, xb, xs, lc, y_min, prior_mean, prior_sd):
    """MAP for fixed prior sds: least squares over [data residuals; prior residuals]."""
    from scipy.optimize import least_squares

    nb = xb.shape[1]

    def residuals(theta):
        e, _, term = _model(theta, xb, xs, lc, y_min)
        return np.concatenate([(y - e - term) * w, (theta - prior_mean) / prior_sd])

    def jac(theta):
        _, sig, term = _model(theta, xb, xs, lc, y_min)
        d_mu = np.column_stack([np.full(y.size, y_min * sig * (1 - sig)), term, -lc * term, term[:, None] * xb,
                                (-lc * term)[:, None] * xs])  # fmt: skip
        assert d_mu.shape[1] == 3 + nb + xs.shape[1]
        return np.vstack([-d_mu * w[:, None], np.diag(1 / prior_sd)])

    res = least_squares(residuals, theta0, jac=jac, method="trf", x_scale="jac", max_nfev=200)
    return res.x, res.fun, res.jac


def _start(y, w, xb, xs, lc, y_min) -> np.ndarray:
    """Weighted ridge regression of log(y - E) for a few E: the start with the smallest misfit."""
    best = None
    for frac in (0.5, 0.8, 0.95):
        e = frac * y_min
        z = np.log(y - e)
        d = np.column_stack([np.ones_like(lc), xb, -lc, -lc[:, None] * xs])
        ridge = np.full(d.shape[1], 1e-2)
        ridge[[0, 1 + xb.shape[1]]] = 1e-8
        gap = y - e  # d log(y - E) = dy / (y - E): weight each run by its noise on that scale
        ww = (w * gap) ** 2
        beta = np.linalg.solve(d.T @ (d * ww[:, None]) + np.diag(ridge), d.T @ (z * ww))
        pred = e + np.exp(d @ beta)
        sse = float(np.sum(((y - pred) * w) ** 2))
        if best is None or sse < best[0]:
            nb = xb.shape[1]
            u = np.log(frac / (1 - frac))
            best = (sse, np.array([u, beta[0], beta[1 + nb], *beta[1 : 1 + nb], *beta[2 + nb :]]))
    assert best is not None
    return best[1]


def fit_map(
    y: np.ndarray,
    sigma: np.ndarray,
    x: np.ndarray,
    compute: np.ndarray,
    level_cols: np.ndarray,
    slope_cols: np.ndarray,
    slope_known: np.ndarray | None = None,
    *,
    arch: np.ndarray | None = None,
    taus: tuple[float, float, float] | None = None,
) -> SpaceFit:
    """Fit the space law (module docstring) to losses ``y`` with noise sds ``sigma``, encoded
    architectures ``x`` (runs x columns) and ``compute``; the prior sds by marginal likelihood.
    ``slope_known`` (per slope column, default all): the runs identify it; the others get a prior
    sd of at least ``UNSEEN_SLOPE_SD``. ``arch`` (per run, its architecture's index 0..K-1): each
    architecture also gets its own level deviation u_k ~ N(0, tau_u^2), the part of its curve
    the axes' effects do not explain (an interaction, or a seed's shared noise that moved all its
    runs alike). ``taus``: fixed ``(tau_b, tau_s, tau_u)`` instead of the search."""
    y, sigma, compute = (np.asarray(a, float) for a in (y, sigma, compute))
    c0 = float(np.exp(np.mean(np.log(compute))))
    lc = np.log(compute / c0)
    y_min = float(y.min())
    n_arch = 0 if arch is None else int(np.max(arch)) + 1
    g = np.zeros((y.size, n_arch)) if arch is None else np.eye(n_arch)[np.asarray(arch)]
    xb, xs = np.hstack([x[:, level_cols], g]), x[:, slope_cols]
    w = 1 / sigma
    start = _start(y, w, xb, xs, lc, y_min)
    ne, nb, ns = len(level_cols), xb.shape[1], xs.shape[1]
    known = np.ones(ns, bool) if slope_known is None else np.asarray(slope_known, bool)
    prior_mean = np.array([0.0, start[1], A0_PRIOR[0], *np.zeros(nb + ns)])
    state = {"theta": start.copy()}

    def solve(tau_b: float, tau_s: float, tau_u: float):
        slope_sd = np.where(known, tau_s, max(tau_s, UNSEEN_SLOPE_SD))
        level_sd = np.concatenate([np.full(ne, tau_b), np.full(n_arch, tau_u)])
        prior_sd = np.array([U_SD, B0_SD, A0_PRIOR[1], *level_sd, *slope_sd])
        theta, r, j = _map(state["theta"], y, w, xb, xs, lc, y_min, prior_mean, prior_sd)
        h = j.T @ j
        sign, logdet = np.linalg.slogdet(h)
        if sign <= 0:
            return None
        state["theta"] = theta
        evidence = -0.5 * float(r @ r) - 0.5 * logdet - float(np.sum(np.log(prior_sd[3:])))
        return evidence, (tau_b, tau_s, tau_u), theta.copy(), r.copy(), h, slope_sd

    grid_b = TAU_B_GRID if ne else TAU_B_GRID[-1:]
    grid_s = TAU_S_GRID if known.any() else TAU_S_GRID[-1:]
    grid_u = TAU_U_GRID if n_arch else TAU_U_GRID[:1]
    if taus is not None:
        grid_b, grid_s, grid_u = np.array([taus[0]]), np.array([taus[1]]), np.array([taus[2]])
    best = None

    def search(cells) -> None:
        nonlocal best
        for cell in cells:
            found = solve(*cell)
            if found is not None and (best is None or found[0] > best[0]):
                best = found
        if best is not None:
            state["theta"] = best[2].copy()

    # coordinate ascent on the evidence: (tau_b, tau_s) on their grid, then tau_u, then (tau_b, tau_s) again
    search([(b, s_, grid_u[0]) for b in grid_b for s_ in grid_s])
    if len(grid_u) > 1 and best is not None:
        tb, ts, _ = best[1]
        search([(tb, ts, u) for u in grid_u])
        tu = best[1][2]
        search([(b, s_, tu) for b in grid_b for s_ in grid_s])
    if best is None:
        raise ValueError("the space law's posterior is not proper at any prior scale (singular Hessian)")
    evidence, (tau_b, tau_s, tau_u), theta, r, h, slope_sd = best
    chi2 = float(np.sum(r[: y.size] ** 2))
    dof = max(1, y.size - theta.size)
    inflation = max(1.0, chi2 / dof)
    cov = np.linalg.inv(h) * inflation
    cov = (cov + cov.T) / 2
    return SpaceFit(
        theta, cov, float(tau_b), float(tau_s), float(tau_u), y_min, c0, np.asarray(level_cols),
        np.asarray(slope_cols), np.asarray(slope_sd, float), x.shape[1], n_arch, chi2, dof, inflation,
        float(evidence),
    )  # fmt: skip


def fitted_values(fit: SpaceFit, x: np.ndarray, compute: np.ndarray, arch: np.ndarray | None = None) -> np.ndarray:
    """The MAP's mean loss of runs with encoded architectures ``x`` (and architecture indices
    ``arch`` when the fit has per-architecture deviations) at ``compute``."""
    heads, b, s = fit.full(fit.theta)
    lc = np.log(np.asarray(compute, float) / fit.c0)
    dev = b[0, fit.n_cols + np.asarray(arch)] if arch is not None and fit.n_arch else 0.0
    return heads[0, 0] + np.exp(heads[0, 1] + x @ b[0, : fit.n_cols] + dev - (heads[0, 2] + x @ s[0]) * lc)


def shrinkage(fit: SpaceFit) -> tuple[np.ndarray, np.ndarray]:
    """Per fitted level and slope column: posterior variance / prior variance (1: the prior
    alone decides it, the value borrowed everything from the space's mean; near 0: its own data)."""
    var = np.diag(fit.cov)
    k = 3 + fit.level_cols.size
    return var[3:k] / fit.tau_b**2, var[k + fit.n_arch :] / fit.slope_sd**2
