"""Chinchilla Approach 3: ``L(N, D) = E + A / N**alpha + B / D**beta`` (Hoffmann et al. 2022).

``chinchilla_loss`` is the one definition of the law: fitting (through the shared log-sum-exp
objective of ``objective``, whose two-term form it is), prediction, the compute-optimal
allocation, rankings and effective-compute multipliers all evaluate it.

Compute is ``C = c * N**gamma * D`` (``FlopsModel``; ``c = 6, gamma = 1`` is the ``6ND`` rule).
Minimising ``A N^-alpha + B (C / (c N^gamma))^-beta`` over N gives the closed form
``N^(alpha + gamma beta) = alpha A C^beta / (gamma beta B c^beta)`` (``compute_optimal``).

Identifiability (``design_problems``, checked before fitting): the five parameters need six or
more distinct (N, D) points at 3+ sizes and 3+ token counts, and, above all, tokens per parameter
that vary independently of size: on a ladder with a fixed tokens-per-parameter ratio, ``log D`` is
``log N`` plus a constant, ``A/N^alpha`` and ``B/D^beta`` are two power laws of one variable, and
nothing separates them. The check is the conditioning of the design in ``(log10 N, log10 D)``: the
spread (standard deviation) of the runs along its weakest direction must be at least
``MIN_SPREAD_DECADES``. After fitting, a parameter at the edge of the box, or a Jacobian of the
fitted log-loss (in the scale-free parametrisation, columns normalised) with condition number
above ``MAX_JACOBIAN_COND``, makes the fit not identified.

Fitters: ``"varpro"`` (default) is variable projection: on a grid of (alpha, beta), E, A, B >= 0 by
non-negative least squares (``profile.nnls_grid``), then Hoffmann et al.'s Huber objective
refined by L-BFGS-B from the best grid points. ``"grid"`` is Hoffmann et al.'s 4,500-start grid
(``objective.fit_lse``). Both reach the same optimum on the published refits (tests); varpro
searches the exponents densely (0.05 steps instead of 0.5), which the five-parameter grid cannot
afford, and needs no grid over E, A, B at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .inputs import FlopsModel, clean
from .intervals import design_units
from .objective import HUBER_DELTA, NotIdentified, bound_warnings, bounds, fit_lse, lbfgs, objective, single_blas_thread
from .profile import nnls_grid
from .record import LawFit, law_fit

PARAMS = ("E", "A", "B", "alpha", "beta")
#: Fewest runs ``fit_chinchilla`` accepts (five parameters).
MIN_RUNS = 5
#: Least spread (std, decades) of the runs along the weakest direction of (log10 N, log10 D).
#: A fixed tokens-per-parameter ladder has ~0 (rounding of counts only); an isoFLOP grid of sizes
#: over +-0.5 decades has ~0.3; two token ratios a decade apart at every size have 0.35.
MIN_SPREAD_DECADES = 0.1
#: Largest condition number of the fit's normalised Jacobian: beyond it the runs determine fewer
#: than five combinations of the parameters (measured: 1e2-1e4 on identifying designs).
MAX_JACOBIAN_COND = 1e7
#: What to run when the design is sound but the fit still ends at the edge of its box (noise too
#: large for the range of losses covered).
EDGE_REMEDY = "run seeds at each grid point and more compute budgets (a wider range of losses)"
#: What to run instead, named by every refusal of a design.
REMEDY = (
    "run an isoFLOP grid (3+ sizes at each of 3+ compute budgets) or train each size at 3+ tokens-per-parameter ratios"
)


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
    """Why runs at sizes ``n`` and token counts ``d`` cannot identify Approach 3 (empty: they can):
    counts of runs, distinct points, sizes and token counts, and the design's conditioning (the
    spread along the weakest direction of (log10 N, log10 D); see the module docstring)."""
    n, d = clean(n, d)
    problems = []
    if n.size < min_runs:
        problems.append(f"{n.size} runs (needs at least {min_runs} runs)")
    points = np.unique(np.column_stack([n, d]), axis=0).shape[0] if n.size else 0
    if points < len(PARAMS) + 1:
        problems.append(f"{points} distinct (N, D) points (needs {len(PARAMS) + 1}+: five parameters and a residual)")
    if np.unique(n).size < min_sizes:
        problems.append(f"{np.unique(n).size} sizes (needs {min_sizes}+)")
    if np.unique(d).size < min_token_counts:
        problems.append(f"{np.unique(d).size} token counts (needs {min_token_counts}+)")
    if n.size >= 2:
        spread, ratio = design_spread(n, d)
        if spread < MIN_SPREAD_DECADES:
            problems.append(
                f"tokens per parameter do not vary independently of size ({ratio}; the spread along the "
                f"weakest direction of (log10 N, log10 D) is {spread:.3f} decades, needs {MIN_SPREAD_DECADES}+), "
                "so A/N^alpha and B/D^beta cannot be told apart"
            )
    return problems


def design_spread(n: np.ndarray, d: np.ndarray) -> tuple[float, str]:
    """Standard deviation (decades) of the runs along the weakest direction of the centred
    (log10 N, log10 D) design, and the tokens-per-parameter range in words."""
    x = np.column_stack([np.log10(n), np.log10(d)])
    singular = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    ratio = d / n
    lo, hi = ratio.min(), ratio.max()
    words = f"{lo:.3g} tokens per parameter" if hi <= lo * 1.05 else f"{lo:.3g}-{hi:.3g} tokens per parameter"
    return float(singular[-1] / np.sqrt(n.size)), words


def jacobian_condition(theta: np.ndarray, log_x: np.ndarray) -> float:
    """Condition number of the Jacobian of the fitted log-loss in the scale-free parametrisation
    (``a_k`` taken at the geometric mean of ``x_k``), columns normalised to unit length."""
    k = log_x.shape[1]
    centred = log_x - log_x.mean(axis=0)
    shifted = theta.copy()
    shifted[1 : 1 + k] = theta[1 : 1 + k] - theta[1 + k :] * log_x.mean(axis=0)
    e, a, alpha = shifted[0], shifted[1 : 1 + k], shifted[1 + k :]
    terms = np.column_stack([np.full(len(log_x), e), a[None, :] - alpha[None, :] * centred])
    w = np.exp(terms - terms.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    jac = np.column_stack([w, -w[:, 1:] * centred])
    norms = np.linalg.norm(jac, axis=0)
    if np.any(norms == 0):
        return np.inf
    singular = np.linalg.svd(jac / norms, compute_uv=False)
    return float(singular[0] / singular[-1]) if singular[-1] > 0 else np.inf


def fit_varpro(log_x: np.ndarray, log_loss: np.ndarray, *, delta: float, n_refine: int) -> tuple[np.ndarray, float]:
    """Variable projection: NNLS for E, A, B on a grid of (alpha, beta), then L-BFGS-B on the Huber
    objective from the ``n_refine`` best grid points (half by least squares, half by Huber)."""
    grid, rss = nnls_grid(log_x, np.exp(log_loss))
    box = np.array(bounds(log_x.shape[1]))
    k = log_x.shape[1]
    with np.errstate(divide="ignore"):
        starts = np.column_stack([np.log(grid[:, : 1 + k]), grid[:, 1 + k :]])
    starts = np.clip(starts, box[:, 0], box[:, 1])
    huber = objective(starts, log_x, log_loss, delta)[0]
    half = max(1, n_refine // 2)
    picks = np.unique(np.concatenate([np.argsort(rss)[:half], np.argsort(huber)[: n_refine - half]]))
    results = [lbfgs(start, log_x, log_loss, delta) for start in starts[picks]]
    return min(results, key=lambda tv: tv[1])


@dataclass(frozen=True)
class ChinchillaFit(LawFit):
    """``L(N, D) = E + A / N**alpha + B / D**beta``; params ``E, A, B, alpha, beta``."""

    def _predict(self, theta: np.ndarray, *x: np.ndarray) -> np.ndarray:
        return chinchilla_loss(theta, x[0][None, :], x[1][None, :])

    def optimal_allocation(self, compute: Any, flops: FlopsModel | None = None) -> dict[str, np.ndarray]:
        """Compute-optimal ``N_opt(C)``, ``D_opt(C)`` and the loss there, with intervals
        (``*_lo``/``*_hi``; NaN where the runs do not bound them) when the fit has them.

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
            with np.errstate(all="ignore"):
                ns, ds = compute_optimal(self.samples, compute, flops)
                for name, s in (("n_opt", ns), ("d_opt", ds), ("loss", chinchilla_loss(self.samples, ns, ds))):
                    out[f"{name}_lo"], out[f"{name}_hi"] = self.interval_of(s)
        return out

    def curve(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Loss along compute ``at`` at the compute-optimal allocation (6ND) and its interval, as charts draw it."""
        alloc = self.optimal_allocation(at)
        nan = np.full(np.shape(at), np.nan)
        return alloc["loss"], alloc.get("loss_lo", nan), alloc.get("loss_hi", nan)

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
    units: Any = None,
    method: str = "varpro",
    check_design: bool = True,
) -> ChinchillaFit:
    """Chinchilla Approach 3 (see the module docstring and ``objective``).

    Needs at least 5 runs (``ValueError``); with ``check_design`` a design that cannot identify the
    law raises ``NotIdentified`` with one line naming the reason and what to run instead.
    ``method``: ``"varpro"`` or ``"grid"``. ``units``: a design-unit id per run (the seeds of one
    planned grid point share one; default: the distinct (N, D) pairs). ``bootstrap=B`` asks for
    intervals (``intervals.law_intervals``)."""
    n, d, loss = np.asarray(n, float).ravel(), np.asarray(d, float).ravel(), np.asarray(loss, float).ravel()
    ok = np.isfinite(n) & (n > 0) & np.isfinite(d) & (d > 0) & np.isfinite(loss) & (loss > 0)
    unit_ids = design_units(n, d) if units is None else design_units(np.asarray(units).ravel())
    n, d, loss, unit_ids = n[ok], d[ok], loss[ok], np.unique(unit_ids[ok], return_inverse=True)[1].ravel()
    if check_design:
        problems = design_problems(n, d)
        if problems:
            raise NotIdentified(f"Approach 3 is not identified by these runs: {'; '.join(problems)}; {REMEDY}")
    if n.size < MIN_RUNS:
        raise ValueError(f"Approach 3 needs at least {MIN_RUNS} runs with positive N, D and loss, got {n.size}")
    log_x, log_loss = np.column_stack([np.log(n), np.log(d)]), np.log(loss)
    if method == "varpro":
        theta, value = fit_varpro(log_x, log_loss, delta=delta, n_refine=n_refine)
    elif method == "grid":
        theta, value = fit_lse(log_x, log_loss, delta=delta, n_refine=n_refine)
    else:
        raise ValueError(f"unknown method {method!r}; allowed: varpro, grid")
    edges = bound_warnings(theta, PARAMS)
    cond = jacobian_condition(theta, log_x)
    problems = list(edges)
    if cond > MAX_JACOBIAN_COND:
        problems.append(f"the fit's Jacobian has condition number {cond:.2g}: the runs pin down fewer than 5")
    kwargs = {"bootstrap": bootstrap, "seed": seed, "delta": delta, "level": level}
    return law_fit(  # type: ignore[return-value]
        ChinchillaFit, "chinchilla", PARAMS, theta, value, log_x, log_loss, unit_ids,
        problems=problems, remedy=EDGE_REMEDY, inputs=inputs, **kwargs,
    )  # fmt: skip
