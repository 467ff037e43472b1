"""Laws that are linear in their coefficients once the exponents are fixed, and what that buys:
the variable-projection fitter's grid and likelihood-ratio (profile) intervals.

A law ``L = E + sum_k A_k x_k**(-phi_k)`` (one term: the power law; two: Chinchilla Approach 3)
is, for fixed exponents ``phi``, a linear model in ``(E, A_1..A_K)`` on the basis
``[1, x_1**-phi_1, ..., x_K**-phi_K]``. Each ``x_k`` is divided by its geometric mean over the
runs first (``x~ = x / x_ref``, ``A~ = A * x_ref**-phi``), so the basis is O(1) on the data and
the normal equations stay well conditioned at any scale (1e4 parameters or 1e12 FLOPs).

* ``nnls_grid``: on a grid of exponents, ``(E, A_k) >= 0`` by non-negative least squares
  (``scipy.optimize.nnls``); the residual sum of squares per grid point. The Approach 3 fitter
  starts its Huber refinement from the best of these (``chinchilla``).
* ``profile_region``: the likelihood-ratio confidence set of the Gaussian model with additive
  noise in nats (seed noise is additive: ~0.01-0.14 nats at archscale's small sizes),
  ``S = {theta : RSS(theta) <= RSS_min * (1 + q / df)}``, ``df = runs - parameters``, ``q`` the
  ``level`` quantile of the likelihood-ratio statistic: ``F(1, df)`` for two terms, calibrated by a
  parametric bootstrap for one (``lr_quantile``).
  For any scalar quantity ``g`` (a parameter, a predicted loss, ``N_opt``), the range of ``g`` over
  ``S`` is its profile-likelihood interval (Venzon & Moolgavkar 1988; exact in ``df`` for linear
  models, the F form accounts for the unknown noise level). ``S`` is represented by points: every
  exponent pair on an adaptive grid whose least-squares RSS is under the threshold, times points on
  the ellipsoid of coefficients whose RSS is at the threshold (and its axis extremes, and the
  projections onto ``E, A_k >= 0``). A point whose exponent is at the top of the searched range
  (``PHI_MAX``) is marked ``edge``: a quantity whose extreme lies there is not bounded by the runs.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls
from scipy.special import fdtri

#: Exponents are searched in (0, PHI_MAX] (the same upper edge as the L-BFGS-B box).
PHI_MAX = 10.0


def _coarse_axis(points_to_2: int, points_above: int) -> np.ndarray:
    """Exponents: fine and uniform in (0, 2] (where real exponents live), geometric up to PHI_MAX."""
    return np.concatenate([np.linspace(0.005, 2.0, points_to_2), np.geomspace(2.0, PHI_MAX, points_above + 1)[1:]])


def _phi_grid(axes: list[np.ndarray]) -> np.ndarray:
    """Cartesian product of per-exponent axes, shape (P, K)."""
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


@dataclass(frozen=True)
class LinearLaw:
    """The runs of a law ``E + sum_k A_k x_k**-phi_k``: scaled log inputs and losses."""

    log_x: np.ndarray  # (n, K) natural logs of the inputs
    loss: np.ndarray  # (n,) in nats

    @property
    def k(self) -> int:
        return self.log_x.shape[1]

    @property
    def log_ref(self) -> np.ndarray:  # (K,) log of the geometric mean of each input
        return self.log_x.mean(axis=0)

    def basis(self, phi: np.ndarray) -> np.ndarray:
        """(P, n, K+1): ``[1, x~_k**-phi_k]`` for each row of ``phi`` (P, K)."""
        scaled = self.log_x - self.log_ref  # (n, K)
        powers = np.exp(-phi[:, None, :] * scaled[None, :, :])  # (P, n, K)
        ones = np.ones(powers.shape[:2] + (1,))
        return np.concatenate([ones, powers], axis=2)

    def natural(self, coef: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """``[E, A_1..A_K, phi_1..phi_K]`` from scaled coefficients (S, K+1) and exponents (S, K)."""
        a = coef[:, 1:] * np.exp(phi * self.log_ref[None, :])
        return np.column_stack([coef[:, :1], a, phi])

    def least_squares(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Unconstrained least squares per exponent row, in column-normalised coordinates (a basis
        column may be ~1e10 at a large exponent): coefficients times the column norms (P, K+1), RSS
        (P,), the normalised X'X (P, K+1, K+1) and the column norms (P, K+1)."""
        x = self.basis(phi)
        norms = np.linalg.norm(x, axis=1)  # (P, K+1)
        x = x / norms[:, None, :]
        gram = np.einsum("pni,pnj->pij", x, x)
        rhs = np.einsum("pni,n->pi", x, self.loss)
        coef = np.linalg.solve(gram + 1e-12 * np.eye(self.k + 1), rhs[..., None])[..., 0]
        resid = self.loss[None, :] - np.einsum("pni,pi->pn", x, coef)
        return coef, (resid * resid).sum(axis=1), gram, norms

    def nnls_rss(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Non-negative least squares per exponent row: coefficients (P, K+1) and RSS (P,)."""
        x = self.basis(phi)
        norms = np.linalg.norm(x, axis=1)
        x = x / norms[:, None, :]
        coef = np.empty((len(phi), self.k + 1))
        rss = np.empty(len(phi))
        for i in range(len(phi)):  # scipy's nnls is not batched; ~20 us per call at these sizes
            coef[i], norm = nnls(x[i], self.loss)
            rss[i] = norm * norm
        return coef / norms, rss


def nnls_grid(log_x: np.ndarray, loss: np.ndarray, step: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Variable projection on a grid: exponents in [step, 2.5] (K=2) or [0.01, 3] (K=1) and the
    NNLS coefficients there. Returns natural ``[E, A_k, phi_k]`` rows (P, 1+2K) and their RSS (P,)."""
    law = LinearLaw(log_x, loss)
    if law.k == 1:
        phi = np.arange(0.01, 3.0 + 1e-9, 0.01)[:, None]
    else:
        axis = np.arange(step, 2.5 + 1e-9, step)
        phi = _phi_grid([axis] * law.k)
    coef, rss = law.nnls_rss(phi)
    return law.natural(coef, phi), rss


def _sphere(dim: int) -> np.ndarray:
    """Unit directions in ``dim`` dimensions: 72 on a circle, a 150-point Fibonacci sphere in 3-D."""
    if dim == 2:
        t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        return np.column_stack([np.cos(t), np.sin(t)])
    i = np.arange(150) + 0.5
    z = 1 - 2 * i / 150
    r = np.sqrt(1 - z * z)
    t = np.pi * (1 + 5**0.5) * i
    return np.column_stack([r * np.cos(t), r * np.sin(t), z])


@dataclass(frozen=True)
class Region:
    """Points of the likelihood-ratio confidence set (see module docstring)."""

    theta: np.ndarray  # (S, 1+2K) natural [E, A_k, phi_k]
    edge: np.ndarray  # (S,) True where an exponent is at PHI_MAX (the set is open there)
    df: int
    rss_min: float
    threshold: float


def _rss_min(law: LinearLaw, phi: np.ndarray, rss: np.ndarray) -> tuple[float, np.ndarray]:
    """The constrained (E, A_k >= 0) minimum RSS and the exponents there: NNLS at the 20 best grid
    points, then a local search in the exponents (Nelder-Mead on the projected RSS, continuous)."""
    from scipy.optimize import minimize

    best = phi[np.argsort(rss)[:20]]
    _, rss_c = law.nnls_rss(best)

    def projected(p: np.ndarray) -> float:
        if np.any(p <= 0) or np.any(p > PHI_MAX):
            return np.inf
        return float(law.nnls_rss(p[None, :])[1][0])

    start = best[np.argmin(rss_c)]
    res = minimize(projected, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-14})
    if res.fun <= rss_c.min():
        return float(res.fun), np.asarray(res.x, float)
    return float(rss_c.min()), start


#: Data sets simulated to calibrate the likelihood-ratio threshold (``lr_quantile``): the 95%
#: quantile of 4,000 draws of an F(1, 15) has a Monte Carlo error of ~3.5% (of 1,000: ~7%; with
#: 1,000 and one fixed seed for every data set, that error was common to all of them and raised
#: the coverage at 0.015 nats from 0.953 to 0.967, measured). ~0.1 s.
N_CALIBRATION = 4000


def lr_quantile(
    law: LinearLaw, phi_hat: np.ndarray, rss_min: float, df: int, level: float, n_sim: int = N_CALIBRATION
) -> float:
    """The ``level`` quantile of the exponent's likelihood-ratio statistic
    ``T = (RSS(phi_hat) - RSS_min) / (RSS_min / df)``, by a parametric bootstrap: data sets
    simulated from the fitted law with the fitted noise (``sigma^2 = RSS_min / df``), each profiled
    over a fine grid of exponents (least squares is linear at each; the minimum refined by a
    parabola through the best grid point and its neighbours). For a linear model ``T`` is exactly
    ``F(1, df)``; for these laws at high noise it is not: on 4 sizes x 3 seeds at 0.14 nats its 95%
    quantile was 4.45 against F's 5.12, so the F threshold over-covered (0.97-0.98, measured on
    800 data sets). One term only (the power law); two-term laws keep ``F(1, df)``."""
    if law.k != 1:
        return float(fdtri(1, df, level))
    coef, _ = law.nnls_rss(phi_hat[None, :])
    mean = law.basis(phi_hat[None, :])[0] @ coef[0]
    # seeded by the data: the same runs give the same interval, and the simulation error of one
    # data set is independent of another's (a fixed seed made it a common bias)
    rng = np.random.default_rng(zlib.crc32(law.loss.tobytes()))
    y = mean[None, :] + rng.normal(0.0, np.sqrt(rss_min / df), (n_sim, mean.size))
    grid = np.concatenate([np.linspace(0.005, 2.0, 400), np.geomspace(2.0, PHI_MAX, 41)[1:]])
    phi = np.unique(np.concatenate([grid, phi_hat]))
    q, _ = np.linalg.qr(law.basis(phi[:, None]))  # (P, n, 2): the fit at each exponent is a projection
    projected = np.matmul(np.swapaxes(q, 1, 2), y.T[None, :, :])  # (P, 2, B)
    rss = (y * y).sum(axis=1)[None, :] - (projected**2).sum(axis=1)  # (P, B)
    at_hat = rss[int(np.searchsorted(phi, phi_hat[0]))]
    i = np.clip(rss.argmin(axis=0), 1, phi.size - 2)
    cols = np.arange(n_sim)
    x0, x1, x2 = phi[i - 1], phi[i], phi[i + 1]
    y0, y1, y2 = rss[i - 1, cols], rss[i, cols], rss[i + 1, cols]
    # the vertex value of the parabola through the three points (non-uniform spacing)
    d1, d2 = (y1 - y0) / (x1 - x0), (y2 - y1) / (x2 - x1)
    curv = (d2 - d1) / (x2 - x0)  # Newton form: y0 + d1 (x - x0) + curv (x - x0)(x - x1)
    with np.errstate(all="ignore"):
        xv = (x0 + x1) / 2 - d1 / (2 * curv)
        vertex = y0 + d1 * (xv - x0) + curv * (xv - x0) * (xv - x1)
    inside = (curv > 0) & (xv >= x0) & (xv <= x2)
    rss_min_b = np.minimum(rss.min(axis=0), np.where(inside, vertex, np.inf))
    stat = (at_hat - rss_min_b) / (np.maximum(rss_min_b, 1e-300) / df)
    return float(np.quantile(stat, level))


def profile_region(log_x: np.ndarray, loss: np.ndarray, n_params: int, level: float = 0.95) -> Region | None:
    """The likelihood-ratio confidence set at ``level`` as points, or None without residual
    degrees of freedom (``runs <= n_params``) or with an exact fit (RSS 0)."""
    law = LinearLaw(np.asarray(log_x, float), np.asarray(loss, float))
    df = law.loss.size - n_params
    if df < 1:
        return None
    k = law.k
    axis = _coarse_axis(100, 20) if k == 1 else _coarse_axis(40, 10)
    phi = _phi_grid([axis] * k)
    _, rss, _, _ = law.least_squares(phi)
    rss_min, phi_hat = _rss_min(law, phi, rss)
    if not rss_min > 0:
        return None
    threshold = rss_min * (1.0 + lr_quantile(law, phi_hat, rss_min, df, level) / df)

    # refine: a fine grid over the coarse points inside the set, widened by one coarse step
    inside = rss <= threshold
    if not inside.any():
        inside = rss <= rss.min()
    fine_axes = []
    for j in range(k):
        lo_i = max(int(np.searchsorted(axis, phi[inside, j].min())) - 1, 0)
        hi_i = min(int(np.searchsorted(axis, phi[inside, j].max())) + 1, axis.size - 1)
        fine_axes.append(np.linspace(axis[lo_i], axis[hi_i], 400 if k == 1 else 50))
    phi = _phi_grid(fine_axes)
    coef, rss, gram, norms = law.least_squares(phi)  # normalised coordinates: coef = norms * (E, A~_k)
    keep = rss <= threshold
    phi, coef, rss, gram, norms = phi[keep], coef[keep], rss[keep], gram[keep], norms[keep]
    if phi.size == 0:  # a set thinner than the fine grid: the optimum alone
        return None

    # coefficient points with RSS = rss + d' G d <= threshold: ellipsoid surface, axis extremes, centre
    radius = np.sqrt(np.maximum(threshold - rss, 0.0))  # (P,)
    chol = np.linalg.cholesky(gram + 1e-12 * np.eye(k + 1))
    dirs = _sphere(k + 1)  # (U, K+1)
    # d = L^-T u r satisfies d' G d = r^2
    surface = np.linalg.solve(np.swapaxes(chol, 1, 2)[:, None], dirs[None, :, :, None])[..., 0]  # (P, U, K+1)
    inv = np.linalg.inv(gram + 1e-12 * np.eye(k + 1))  # axis extremes of coordinate j: +-G^-1 e_j / sqrt(G^-1_jj)
    extremes = np.swapaxes(inv, 1, 2) / np.sqrt(np.diagonal(inv, axis1=1, axis2=2))[:, :, None]
    offsets = np.concatenate([surface, extremes, -extremes, np.zeros((len(phi), 1, k + 1))], axis=1)
    points = coef[:, None, :] + radius[:, None, None] * offsets  # (P, V, K+1)
    # project infeasible points onto E, A_k >= 0 and keep those still under the threshold
    clipped = np.maximum(points, 0.0)
    d = clipped - coef[:, None, :]
    rss_pts = rss[:, None] + np.einsum("pvi,pij,pvj->pv", d, gram, d)
    ok = rss_pts <= threshold * (1 + 1e-9)
    clipped = clipped / norms[:, None, :]  # back to (E, A~_k)
    flat_phi = np.broadcast_to(phi[:, None, :], points.shape[:2] + (k,))[ok]
    theta = law.natural(clipped[ok], flat_phi)
    edge = (flat_phi >= PHI_MAX - 1e-9).any(axis=1)
    if theta.size == 0:
        return None
    return Region(theta=theta, edge=edge, df=df, rss_min=rss_min, threshold=float(threshold))


def region_interval(values: np.ndarray, edge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Range of ``values`` (S, m) over the region's points (non-finite values ignored). A side
    whose extreme is reached only at an ``edge`` point is unbounded: NaN."""
    values = np.where(np.isfinite(values), values, np.nan)
    inner = np.where(edge[:, None], np.nan, values)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: reported as NaN
        lo, hi = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        inner_lo, inner_hi = np.nanmin(inner, axis=0), np.nanmax(inner, axis=0)
    tol = 1e-9 * np.maximum(np.abs(lo), np.abs(hi))
    lo = np.where(inner_lo <= lo + tol, lo, np.nan)
    hi = np.where(inner_hi >= hi - tol, hi, np.nan)
    return lo, hi
