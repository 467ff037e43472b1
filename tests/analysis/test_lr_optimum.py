"""The learning rate of lowest loss from a parabola in log lr (`fit_lr_optimum`), against numpy's
polynomial fit, the delta method, and its coverage simulated from a known optimum."""

import numpy as np
import pytest

from archscale.analysis import fit_lr_optimum

LRS = np.array([1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2])


def _runs(rng, optimum=4e-3, curvature=0.08, seeds=2, sd=0.01, lrs=LRS, hetero=0.0):
    """Seeds x lrs runs on a U in log lr; `hetero` > 0 grows the noise toward the large lrs (sd up to
    (1 + hetero) x sd at the largest lr), as it does near the edge of stability."""
    x = np.repeat(lrs, seeds)
    z = np.log(x / lrs.min()) / np.log(lrs.max() / lrs.min())
    y = 2.0 + curvature * np.log(x / optimum) ** 2 + sd * (1 + hetero * z**2) * rng.standard_normal(x.size)
    return x, y


def test_the_optimum_is_the_vertex_of_numpys_least_squares_parabola():
    x, y = _runs(np.random.default_rng(0), sd=0.01)
    fit = fit_lr_optimum(x, y)
    c2, c1, _ = np.polyfit(np.log(x), y, 2)
    assert fit.identified and fit.lr == pytest.approx(np.exp(-c1 / (2 * c2)), rel=1e-9)
    assert fit.lo < fit.lr < fit.hi and (fit.distinct, fit.runs) == (5, 10)


def test_at_low_noise_fiellers_interval_is_the_delta_methods():
    """Where the curvature is far from zero the ratio's interval is the delta method's (with the same
    HC3 covariance): the two agree to first order; Fieller differs only where the delta method is wrong."""
    from scipy import stats

    x, y = _runs(np.random.default_rng(1), sd=0.001, seeds=3)
    fit = fit_lr_optimum(x, y)
    u = np.log(x) - np.log(x).mean()
    design = np.column_stack([np.ones_like(u), u, u**2])
    beta = np.linalg.lstsq(design, y, rcond=None)[0]
    bread = np.linalg.inv(design.T @ design)
    resid = y - design @ beta
    h = np.einsum("ij,jk,ik->i", design, bread, design)
    cov = bread @ (design.T @ (design * (resid / (1 - h))[:, None] ** 2)) @ bread
    grad = np.array([0, -1 / (2 * beta[2]), beta[1] / (2 * beta[2] ** 2)])
    half = stats.t.ppf(0.975, x.size - 3) * np.sqrt(grad @ cov @ grad)
    centre = np.log(fit.lr)
    assert np.log(fit.lo) == pytest.approx(centre - half, abs=0.02 * half)
    assert np.log(fit.hi) == pytest.approx(centre + half, abs=0.02 * half)


@pytest.mark.parametrize(
    "lrs,y,why",
    [
        ([1e-3, 1e-3, 2e-3, 2e-3], [2.1, 2.2, 2.0, 2.05], "the search tried 2 learning rates"),
        ([1e-3, 2e-3, 4e-3], [2.1, 2.0, 2.1], "3 runs at 3 learning rates leave no residual"),
        ([1e-3, 2e-3, 4e-3, 8e-3], [2.3, 2.2, 2.1, 2.0], "does not curve up"),  # falling: the optimum is beyond
        ([1e-3, 2e-3, 4e-3, 8e-3, 1e-3, 2e-3], [2.3, 2.1, 2.0, 1.96, 2.3, 2.1], "above the learning rates tried"),
        ([1e-3, 2e-3, 4e-3, 8e-3] * 2, [2.1, 2.0, 2.05, 2.12, 2.0, 2.15, 1.95, 2.0], "within the noise"),  # flat
        ([1e-3, 2e-3, 4e-3, 8e-3] * 2, [2.3, 2.12, 2.02, 2.0, 2.32, 2.1, 2.0, 2.03], "reaches above"),  # unbracketed
    ],
)
def test_an_optimum_the_runs_do_not_identify_is_refused_with_the_reason(lrs, y, why):
    fit = fit_lr_optimum(lrs, y)
    assert not fit.identified and fit.lo is None and why in fit.why


@pytest.mark.parametrize("hetero,low", [(0.0, 0.93), (3.0, 0.87)])
def test_the_interval_covers_the_true_optimum_at_its_level(hetero, low):
    """300 simulated searches of 5 lrs x 2 seeds from a known optimum, with equal noise and with noise
    growing 4x toward the largest lr: the 95% interval covers the truth in the identified fits at
    near its level (measured over 1000: 0.97 equal; 0.90-0.92 growing, where plain OLS covered
    0.60-0.74). HC3 on 7 residual degrees of freedom is a little liberal; docs/transfer.md."""
    rng = np.random.default_rng(11)
    hits = identified = 0
    for _ in range(300):
        fit = fit_lr_optimum(*_runs(rng, sd=0.01, hetero=hetero))
        if fit.identified:
            identified += 1
            hits += fit.lo <= 4e-3 <= fit.hi
    assert identified >= 270
    assert low <= hits / identified <= 0.99
