"""Scaling-law fits recover known laws; intervals cover the truth; derived quantities are right."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import check_grad

from archscale.analysis.compare.law_ranking import effective_compute_multiplier, rank_architectures, rankable
from archscale.analysis.laws import intervals as fits_intervals
from archscale.analysis.laws import objective as fits_objective
from archscale.analysis.laws.chinchilla import ChinchillaFit, design_problems, fit_chinchilla
from archscale.analysis.laws.groups import fit_groups, leave_largest_out
from archscale.analysis.laws.inputs import FlopsModel, compute_budgets
from archscale.analysis.laws.isoflop import fit_isoflop
from archscale.analysis.laws.objective import NotIdentified
from archscale.analysis.laws.power import PowerLawFit, fit_power_law

CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann et al. 2022


def chinchilla_loss(n: np.ndarray, d: np.ndarray, p: dict[str, float] = CHINCHILLA) -> np.ndarray:
    return p["E"] + p["A"] * n ** -p["alpha"] + p["B"] * d ** -p["beta"]


@pytest.fixture(scope="module")
def chinchilla_runs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """200 runs at Chinchilla scales (N 7e7..1.6e10, D 1e9..5e11), 0.5% lognormal noise."""
    rng = np.random.default_rng(0)
    n = np.exp(rng.uniform(np.log(7e7), np.log(1.6e10), 200))
    d = np.exp(rng.uniform(np.log(1e9), np.log(5e11), 200))
    return n, d, chinchilla_loss(n, d) * np.exp(rng.normal(0, 0.005, 200))


def test_objective_gradient_is_exact() -> None:
    rng = np.random.default_rng(1)
    log_x = np.log(rng.uniform(1e8, 1e10, (30, 2)))
    log_loss = np.log(rng.uniform(2, 3, 30))
    for theta in ([0.5, 6.0, 6.0, 0.3, 0.3], [0.1, 5.0, 7.0, 0.5, 0.2]):

        def f(t: np.ndarray) -> float:  # delta=1: the smooth region
            return fits_objective.objective(t[None, :], log_x, log_loss, 1.0)[0][0]

        def g(t: np.ndarray) -> np.ndarray:
            return fits_objective.objective(t[None, :], log_x, log_loss, 1.0)[1][0]

        assert check_grad(f, g, np.array(theta), epsilon=1e-7) < 1e-4 * (1 + np.linalg.norm(g(np.array(theta))))


def test_objective_is_vectorised_over_starts() -> None:
    rng = np.random.default_rng(2)
    log_x, log_loss = np.log(rng.uniform(1e8, 1e10, (20, 2))), np.log(rng.uniform(2, 3, 20))
    grid = fits_objective.grid(2)
    assert grid.shape == (4500, 5)  # Hoffmann et al.'s grid
    batched = fits_objective.objective(grid[:7], log_x, log_loss, 1e-3)[0]
    single = [fits_objective.objective(t[None, :], log_x, log_loss, 1e-3)[0][0] for t in grid[:7]]
    np.testing.assert_allclose(batched, single)


def test_power_law_recovers_known_parameters() -> None:
    rng = np.random.default_rng(3)
    x = np.geomspace(1e6, 1e10, 40)
    loss = (1.8 + 400.0 * x**-0.3) * np.exp(rng.normal(0, 0.002, x.size))
    fit = fit_power_law(x, loss, x_name="params")
    assert isinstance(fit, PowerLawFit) and fit.inputs == ("params",)
    assert fit.params["E"] == pytest.approx(1.8, rel=0.02)
    assert fit.params["alpha"] == pytest.approx(0.3, rel=0.05)
    assert fit.params["A"] == pytest.approx(400.0, rel=0.35)
    np.testing.assert_allclose(fit.predict(x), 1.8 + 400.0 * x**-0.3, rtol=0.005)


def test_power_law_in_compute_recovers_exponent() -> None:
    c = np.geomspace(1e17, 1e22, 25)
    fit = fit_power_law(c, 2.0 + 3000.0 * c**-0.2, x_name="compute")
    assert fit.params["alpha"] == pytest.approx(0.2, rel=1e-3)
    assert fit.params["E"] == pytest.approx(2.0, rel=1e-3)


def test_chinchilla_approach3_recovers_known_law(chinchilla_runs) -> None:
    fit = fit_chinchilla(*chinchilla_runs)
    assert isinstance(fit, ChinchillaFit)
    p = fit.params
    assert p["E"] == pytest.approx(CHINCHILLA["E"], rel=0.03)
    assert p["alpha"] == pytest.approx(CHINCHILLA["alpha"], abs=0.03)
    assert p["beta"] == pytest.approx(CHINCHILLA["beta"], abs=0.02)
    n, d, _ = chinchilla_runs
    np.testing.assert_allclose(fit.predict(n, d), chinchilla_loss(n, d), rtol=0.01)


def test_chinchilla_exact_data_is_fitted_exactly() -> None:
    n = np.repeat(np.geomspace(7e7, 1.6e10, 8), 6)
    d = np.tile(np.geomspace(1e9, 5e11, 6), 8)
    fit = fit_chinchilla(n, d, chinchilla_loss(n, d))
    for key, value in CHINCHILLA.items():
        assert fit.params[key] == pytest.approx(value, rel=2e-3), key


def test_bootstrap_intervals_contain_truth(chinchilla_runs) -> None:
    fit = fit_chinchilla(*chinchilla_runs, bootstrap=60, seed=1)
    ci = fit.ci()
    assert set(ci) == {"E", "A", "B", "alpha", "beta"} and len(fit.samples) == 60
    for key, value in CHINCHILLA.items():
        lo, hi = ci[key]
        assert lo <= value <= hi, (key, lo, value, hi)
    n, d, _ = chinchilla_runs
    lo, hi = fit.predict_interval(n[:20], d[:20])
    truth = chinchilla_loss(n[:20], d[:20])
    assert np.mean((lo <= truth) & (truth <= hi)) >= 0.9


def test_power_law_bootstrap_interval_contains_truth() -> None:
    rng = np.random.default_rng(4)
    x = np.geomspace(1e6, 1e10, 30)
    loss = (1.8 + 400.0 * x**-0.3) * np.exp(rng.normal(0, 0.003, x.size))
    ci = fit_power_law(x, loss, bootstrap=100, seed=2).ci()
    for key, value in {"E": 1.8, "A": 400.0, "alpha": 0.3}.items():
        assert ci[key][0] <= value <= ci[key][1], (key, ci[key])


def test_compute_optimal_allocation_matches_brute_force() -> None:
    fit = ChinchillaFit("chinchilla", dict(CHINCHILLA), np.empty((0, 5)), 0, 0.0, ("params", "tokens"))
    for flops in (FlopsModel(), FlopsModel(c=7.5, gamma=1.02)):
        alloc = fit.optimal_allocation([1e21, 5.76e23], flops)
        for i, c in enumerate((1e21, 5.76e23)):
            n_grid = np.geomspace(1e7, 1e13, 200_001)
            loss = chinchilla_loss(n_grid, flops.tokens(c, n_grid))
            assert alloc["n_opt"][i] == pytest.approx(n_grid[np.argmin(loss)], rel=1e-3)
            assert alloc["loss"][i] == pytest.approx(loss.min(), rel=1e-9)
            assert alloc["d_opt"][i] * flops.c * alloc["n_opt"][i] ** flops.gamma == pytest.approx(c)


def test_chinchilla_optimum_at_chinchilla_compute() -> None:
    """With Hoffmann et al.'s Approach 3 law, 5.76e23 FLOPs gives N_opt of a few tens of billions."""
    fit = ChinchillaFit("chinchilla", dict(CHINCHILLA), np.empty((0, 5)), 0, 0.0, ("params", "tokens"))
    n_opt = fit.optimal_allocation(5.76e23)["n_opt"][0]
    assert 2e10 < n_opt < 6e10


def test_flops_model_fit_recovers_counted_flops() -> None:
    n = np.geomspace(1e6, 1e9, 10)
    model = FlopsModel.fit(n, 6.2 * n**1.01)
    assert model.c == pytest.approx(6.2, rel=1e-6) and model.gamma == pytest.approx(1.01, rel=1e-6)


def _isoflop_runs(noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    budgets = np.geomspace(1e18, 1e21, 6)
    c = np.repeat(budgets, 11)
    n = np.sqrt(c / 120.0) * 10 ** np.tile(np.linspace(-0.8, 0.8, 11), budgets.size)
    loss = chinchilla_loss(n, c / (6 * n)) * np.exp(rng.normal(0, noise, c.size))
    return n, loss, c


def test_approach2_recovers_known_exponent() -> None:
    a_true = CHINCHILLA["beta"] / (CHINCHILLA["alpha"] + CHINCHILLA["beta"])  # N_opt ∝ C^a under C = 6ND
    iso = fit_isoflop(*_isoflop_runs())
    assert iso.params["a"] == pytest.approx(a_true, abs=0.01)
    assert iso.params["b"] == pytest.approx(1 - a_true, abs=0.01)
    assert iso.budgets.height == 6 and iso.budgets["interior"].all()


def test_approach2_bootstrap_interval_contains_truth() -> None:
    a_true = CHINCHILLA["beta"] / (CHINCHILLA["alpha"] + CHINCHILLA["beta"])
    iso = fit_isoflop(*_isoflop_runs(noise=0.003, seed=5), bootstrap=300, seed=3)
    lo, hi = iso.ci()["a"]
    assert lo <= a_true <= hi and hi - lo < 0.15
    alloc = iso.optimal_allocation([1e22])
    assert alloc["n_opt_lo"][0] < alloc["n_opt"][0] < alloc["n_opt_hi"][0]


def test_approach2_needs_two_budgets() -> None:
    with pytest.raises(ValueError, match="2 or more compute budgets"):
        fit_isoflop([1e6, 2e6, 3e6], [3.0, 2.9, 3.1], [1e18, 1e18, 1e18])


def test_compute_budgets_cluster_nearby_values() -> None:
    budget = compute_budgets([1e18, 1.01e18, 3e18, 0.995e18, 2.98e18, 1e19])
    assert budget.tolist() == [0, 0, 1, 0, 1, 2]


def test_leave_largest_out_predicts_held_out_budget() -> None:
    n, loss, c = _isoflop_runs(noise=0.002)
    check = leave_largest_out("chinchilla", (n, c / (6 * n)), loss, c)
    assert check["n_held_out"] == 11 and check["held_out_compute"] == pytest.approx(1e21, rel=0.01)
    assert check["mean_rel_error"] < 0.01


def _power(e: float, a: float, alpha: float, samples: np.ndarray | None = None) -> PowerLawFit:
    return PowerLawFit(
        "power",
        {"E": e, "A": a, "alpha": alpha},
        np.empty((0, 3)) if samples is None else samples,
        10,
        0.0,
        ("compute",),
    )


def test_effective_compute_multiplier_of_a_shifted_law() -> None:
    """A variant that equals the baseline given 3x the compute has a multiplier of 3 everywhere."""
    base = _power(2.0, 3000.0, 0.2)
    variant = _power(2.0, 3000.0 * 3.0**-0.2, 0.2)
    for at in (1e18, 1e22):
        assert effective_compute_multiplier(base, variant, at=at)["multiplier"] == pytest.approx(3.0, rel=1e-9)
    worse = effective_compute_multiplier(variant, base, at=1e20)
    assert worse["multiplier"] == pytest.approx(1 / 3.0, rel=1e-9)


def test_effective_compute_multiplier_with_chinchilla_fits_and_intervals() -> None:
    base = ChinchillaFit(
        "chinchilla", dict(CHINCHILLA), np.tile(list(CHINCHILLA.values()), (5, 1)), 0, 0.0, ("params", "tokens")
    )
    better = {**CHINCHILLA, "E": 1.60}
    variant = ChinchillaFit("chinchilla", better, np.tile(list(better.values()), (5, 1)), 0, 0.0, ("params", "tokens"))
    out = effective_compute_multiplier(base, variant, at=1e21)
    assert out["multiplier"] > 1.0 and out["lo"] == pytest.approx(out["multiplier"], rel=1e-6)
    # check: the baseline at multiplier x compute reaches the variant's loss
    reach = base.loss_at_compute(out["multiplier"] * 1e21)[0, 0]
    assert reach == pytest.approx(variant.loss_at_compute(1e21)[0, 0], rel=1e-6)


def test_rank_architectures_orders_by_predicted_loss() -> None:
    rng = np.random.default_rng(0)
    fits_by_name = {
        "worse": _power(
            2.1, 3000.0, 0.2, np.column_stack([rng.normal(2.1, 0.01, 50), np.full(50, 3000.0), np.full(50, 0.2)])
        ),
        "better": _power(
            2.0, 3000.0, 0.2, np.column_stack([rng.normal(2.0, 0.01, 50), np.full(50, 3000.0), np.full(50, 0.2)])
        ),
    }
    ranks = rank_architectures(fits_by_name, at=1e21)
    assert ranks["name"].to_list() == ["better", "worse"] and ranks["rank"].to_list() == [1, 2]
    row = ranks.row(0, named=True)
    assert row["lo"] < row["predicted_loss"] < row["hi"]


def test_fit_groups_fits_each_family(study_dir) -> None:
    import polars as pl

    from archscale.analysis import load_trials

    trials = load_trials(study_dir, status="completed").collect()
    by_group = fit_groups(trials, by="group", law="chinchilla")
    assert set(by_group) == {"baseline", "swiglu·rope"}
    assert by_group["swiglu·rope"].params["E"] < by_group["baseline"].params["E"] + 0.05
    power = fit_groups(trials.filter(pl.col("group") == "baseline"), by="group", x="compute")
    assert 0 < power["baseline"].params["alpha"] < 1


def test_too_few_runs_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 3 runs"):
        fit_power_law([1.0, 2.0], [3.0, 2.0])
    with pytest.raises(ValueError, match="at least 5 runs"):
        fit_chinchilla([1e6] * 3, [1e9] * 3, [3.0] * 3)


# ---- identifiability, variable projection, design units, calibrated intervals ------------------


def test_varpro_reaches_the_grid_fitters_optimum(chinchilla_runs) -> None:
    """The variable-projection fitter (default) ends where Hoffmann et al.'s 4,500-start grid does."""
    vp = fit_chinchilla(*chinchilla_runs, method="varpro")
    grid = fit_chinchilla(*chinchilla_runs, method="grid")
    assert vp.objective <= grid.objective * (1 + 1e-9)
    for key in CHINCHILLA:
        assert vp.params[key] == pytest.approx(grid.params[key], rel=1e-4), key
    with pytest.raises(ValueError, match="allowed: varpro, grid"):
        fit_chinchilla(*chinchilla_runs, method="newton")


def _ladder(tokens_per_param: float | list[float] = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """The quickstart's scaling design: sizes 40K-320K at fixed tokens per parameter (or several)."""
    ratios = np.atleast_1d(tokens_per_param)
    n = np.repeat([40e3, 60e3, 80e3, 120e3, 160e3, 320e3], ratios.size)
    return n, n * np.tile(ratios, 6)


def test_approach3_refuses_a_fixed_tokens_per_parameter_ladder() -> None:
    n, d = _ladder(3.0)
    with pytest.raises(NotIdentified) as err:
        fit_chinchilla(n, d, chinchilla_loss(n, d))
    message = str(err.value)
    assert "\n" not in message and "tokens per parameter do not vary independently of size" in message
    assert "isoFLOP grid" in message and "tokens-per-parameter ratios" in message


def test_design_check_uses_conditioning_not_counts() -> None:
    """Enough runs, sizes and token counts, but N and D collinear: refused; a spread of ratios: accepted."""
    n, d = _ladder(3.0)
    d = d * np.exp(np.random.default_rng(0).normal(0, 0.01, d.size))  # 6 sizes, 6 token counts, no spread
    problems = design_problems(n, d)
    assert len(problems) == 1 and "weakest direction" in problems[0]
    assert design_problems(*_ladder([3.0, 30.0])) == []
    _, _, c = _isoflop_runs()
    n_iso, *_ = _isoflop_runs()
    assert design_problems(n_iso, c / (6 * n_iso)) == []


def test_power_law_needs_four_distinct_x() -> None:
    x = np.repeat([1e10, 1e11, 1e12], 3)
    with pytest.raises(NotIdentified, match="3 distinct compute values.*4\\+"):
        fit_power_law(x, 2.0 + 300 * x**-0.3, x_name="compute")


def test_a_fit_at_the_box_edge_is_not_identified_and_derives_nothing() -> None:
    """A pure power law (no floor) drives E to the edge of the box: no ranking, no multiplier."""
    x = np.geomspace(1e10, 1e13, 6)
    edge = fit_power_law(x, 300 * x**-0.2, x_name="compute", bootstrap=50)
    assert not edge.identified and "E=" in edge.not_identified and edge.interval == "none"
    good = fit_power_law(x, 1.0 + 300 * x**-0.2, x_name="compute")
    assert good.identified
    ranking = rank_architectures({"edge": edge, "good": good}, at=1e14)
    assert ranking["name"].to_list() == ["good"]
    assert "edge" in rankable({"edge": edge, "good": good}, at=1e14)
    with pytest.raises(NotIdentified):
        effective_compute_multiplier(good, edge, at=1e14)


def test_bootstrap_resamples_whole_design_units() -> None:
    units = np.repeat(np.arange(6), 3)  # 6 sizes x 3 seeds
    resamples = fits_intervals.bootstrap_indices(units.size, 50, 0, units, min_levels=2)
    assert resamples
    for idx in resamples:
        counts = np.bincount(units[idx], minlength=6)
        per_unit = np.bincount(idx, minlength=units.size).reshape(6, 3)
        assert (counts % 3 == 0).all() and (per_unit == per_unit[:, :1]).all()  # all seeds of a unit together


def test_degenerate_resamples_are_dropped_counted_and_can_veto_the_bootstrap(monkeypatch) -> None:
    rng = np.random.default_rng(5)
    x = np.repeat(np.geomspace(1e10, 1e13, 5), 2)
    loss = 1.8 + 1000 * x**-0.3 + rng.normal(0, 0.01, x.size)
    monkeypatch.setattr(fits_intervals, "MIN_BOOTSTRAP_UNITS", 4)
    fit = fit_power_law(x, loss, x_name="compute", bootstrap=100, seed=1)
    # with 5 units, most resamples hold fewer than 4 distinct sizes: the bootstrap is vetoed
    assert fit.n_dropped > 10 and fit.interval == "profile" and "could not determine" in fit.interval_note
    monkeypatch.setattr(fits_intervals, "MIN_BOOTSTRAP_UNITS", 12)
    fit = fit_power_law(x, loss, x_name="compute", bootstrap=100, seed=1)
    assert fit.interval == "profile" and "too few for a bootstrap" in fit.interval_note
    assert fit.to_dict()["n_bootstrap"] == 0 and fit.to_dict()["interval"] == "profile"


def test_likelihood_ratio_interval_of_alpha_matches_brute_force_profile() -> None:
    """The range of alpha over the region equals the exact profile: {alpha: min RSS(alpha) <= threshold}."""
    from scipy.special import fdtri

    from archscale.analysis.laws.profile import LinearLaw

    rng = np.random.default_rng(11)
    x = np.repeat(np.geomspace(3e10, 2e12, 4), 3)
    loss = 1.78 + 1137 * x**-0.3 + rng.normal(0, 0.045, x.size)
    fit = fit_power_law(x, loss, x_name="compute", bootstrap=1)
    assert fit.interval == "profile"
    law = LinearLaw(np.log(x)[:, None], loss)
    alphas = np.linspace(0.001, 3.0, 6000)[:, None]
    rss = law.nnls_rss(alphas)[1]
    threshold = rss.min() * (1 + fdtri(1, x.size - 3, 0.95) / (x.size - 3))
    inside = alphas[rss <= threshold, 0]
    lo, hi = fit.ci()["alpha"]
    assert lo == pytest.approx(inside.min(), abs=0.01) and hi == pytest.approx(inside.max(), abs=0.01)
    assert lo < fit.params["alpha"] < hi


def test_unbounded_interval_is_reported_as_not_determined() -> None:
    """Noisy points on a nearly flat curve: alpha's interval runs to the edge: not determined."""
    x = np.repeat(np.geomspace(1e10, 1e12, 4), 2)
    loss = np.array([2.30, 2.28, 2.05, 2.07, 2.32, 2.30, 2.04, 2.06])
    fit = fit_power_law(x, loss, x_name="compute", bootstrap=1)
    assert fit.identified and fit.interval == "profile"
    assert "alpha" in fit.undetermined() and "not bounded" in fit.undetermined()["alpha"]
    assert np.isnan(fit.ci()["alpha"][1])


def test_one_residual_degree_of_freedom_gives_no_interval_and_no_estimate() -> None:
    """The quickstart's ladder (4 sizes, 1 seed): intervals asked for cannot be made, so nothing is
    determined: no estimate in the table, no prediction, no ranking; the note says what to run."""
    from archscale.analysis import fit_results
    from archscale.analysis.data import synthetic

    runs = synthetic.ladder_runs(np.random.default_rng(0), seeds=1)
    fit = fit_power_law(runs["compute"], runs["loss"], x_name="compute", bootstrap=100)
    assert fit.identified and fit.interval == "unavailable" and len(fit.samples) == 0
    assert set(fit.undetermined()) == {"E", "A", "alpha"} and "3 seeds per size" in fit.interval_note
    assert rank_architectures({"q": fit}, at=1e13).height == 0
    doc = fit_results(runs, law="power", x="compute", bootstrap=100, target=1e13)
    assert doc["prediction"]["loss"] is None and "prediction.loss" in doc["undetermined"]
    three_seeds = synthetic.ladder_runs(np.random.default_rng(0), seeds=3)
    doc = fit_results(three_seeds, law="power", x="compute", bootstrap=100, target=1e13)
    assert doc["interval"] == "profile" and doc["n_units"] == 4 and doc["prediction"]["loss"] is not None


def test_approach2_fits_parabolas_near_the_minimum_with_the_runs_flops() -> None:
    """Sizes over +-1.5 decades: a parabola over all of them is biased; the window is not. D_opt
    follows the given FLOP model, not 6ND."""
    flops = FlopsModel(c=7.2, gamma=0.98)
    budgets = np.geomspace(1e18, 1e21, 4)
    c = np.repeat(budgets, 13)
    n = np.sqrt(c / 120.0) * 10 ** np.tile(np.linspace(-1.5, 1.5, 13), budgets.size)
    loss = chinchilla_loss(n, flops.tokens(c, n))
    truth = ChinchillaFit("chinchilla", dict(CHINCHILLA), np.empty((0, 5)), 0, 0.0, ("params", "tokens"))
    n_true = truth.optimal_allocation(budgets, flops)["n_opt"]
    windowed = fit_isoflop(n, loss, c, flops=flops)
    whole = fit_isoflop(n, loss, c, flops=flops, window=1e6)
    err_window = np.abs(np.log(windowed.budgets["n_opt"].to_numpy() / n_true)).max()
    err_whole = np.abs(np.log(whole.budgets["n_opt"].to_numpy() / n_true)).max()
    assert err_window < 0.05 < err_whole
    assert (windowed.budgets["window_runs"] < 13).all() and windowed.budgets["used"].all()
    d_opt = windowed.budgets["d_opt"].to_numpy()
    np.testing.assert_allclose(d_opt, budgets / (7.2 * windowed.budgets["n_opt"].to_numpy() ** 0.98), rtol=1e-9)


def test_approach2_drops_budgets_whose_minimum_is_not_bracketed() -> None:
    n, loss, c = _isoflop_runs()
    shifted = np.where(c == c.max(), n * 10, n)  # the largest budget's sizes all above its optimum
    loss = np.where(c == c.max(), chinchilla_loss(shifted, c / (6 * shifted)), loss)
    iso = fit_isoflop(shifted, loss, c, bootstrap=10)
    assert iso.budgets["used"].to_list() == [True] * 5 + [False]
    assert any("not bracketed" in w for w in iso.warnings) and iso.interval == "t"
    top_two = c >= np.unique(c)[-2]  # one bracketed budget and one not: nothing to fit a line to
    with pytest.raises(NotIdentified, match="bracketed"):
        fit_isoflop(shifted[top_two], loss[top_two], c[top_two])


def test_fit_command_refuses_an_unidentifiable_design_in_one_line(tmp_path) -> None:
    import polars as pl
    import typer
    from typer.testing import CliRunner

    from archscale.analysis.commands import register

    app = typer.Typer()
    register(app)
    n, d = _ladder(3.0)
    path = tmp_path / "ladder.csv"
    pl.DataFrame({"params": n, "tokens": d, "loss": chinchilla_loss(n, d)}).write_csv(path)
    result = CliRunner().invoke(app, ["fit", str(path), "--law", "chinchilla"])
    err = " ".join(result.stderr.translate(str.maketrans("", "", "│╭╮╰╯─")).split())
    assert result.exit_code == 2 and "Traceback" not in result.stdout + result.stderr
    assert err.count("error:") == 1 and "not identified" in err and "isoFLOP grid" in err
