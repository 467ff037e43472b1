"""The contract every scaling law in ``LAWS`` keeps, run against every entry.

Each entry simulates runs from a known truth (``Law.simulate``, from ``analysis.data.synthetic``):
at an identifying design the law returns one ``FittedLaw`` per series, identified, with parameters
near the truth and a prediction inside its own interval; at a design that cannot identify it, a
``FittedLaw`` that says so and why, and that refuses to predict. A new law gets these tests by
adding its registry entry.
"""

from __future__ import annotations

import numpy as np
import pytest

from archscale.analysis import LAWS, FittedLaw
from archscale.analysis.laws.objective import NotIdentified
from archscale.analysis.laws.registry import Law

BOOTSTRAP = 100  # asks every law for intervals (a bootstrap, or the law's own interval)


@pytest.fixture(params=sorted(LAWS), ids=sorted(LAWS))
def law(request: pytest.FixtureRequest) -> Law:
    return LAWS[request.param]


def test_the_registry_is_keyed_by_each_laws_name() -> None:
    assert {"power", "chinchilla", "isoflop", "ladder", "ladder_nofloor", "space"} <= set(LAWS)
    assert all(name == law.name for name, law in LAWS.items())


def test_an_identifying_design_gives_an_identified_law_near_the_truth(law: Law) -> None:
    sim = law.simulate(np.random.default_rng(0), True)
    fits = law.fit(sim.runs, sim.by, sim.columns, bootstrap=BOOTSTRAP, seed=0)
    assert set(fits) == set(sim.truth)  # one record per series, none dropped
    for series, fit in fits.items():
        assert isinstance(fit, FittedLaw) and fit.law == law.name and fit.series == series
        assert fit.identified and fit.reason is None, fit.reason
        assert fit.n > 0 and fit.interval_method
        for name, true in sim.truth[series].items():
            assert fit.params[name] == pytest.approx(true, rel=0.2, abs=0.05), (series, name)
        assert fit.intervals and set(fit.intervals) <= set(fit.params)
        for lo, hi in fit.intervals.values():
            assert not (lo > hi)  # NaN allowed for a side the runs do not bound
        x = np.array([sim.at / 10, sim.at])
        mean, lo, hi = fit.predict(x)
        assert mean.shape == lo.shape == hi.shape == x.shape
        assert np.all(np.isfinite(mean)) and np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))
        assert np.all(lo <= mean) and np.all(mean <= hi) and np.all(lo < hi)


def test_a_design_that_cannot_identify_it_is_refused_with_the_reason(law: Law) -> None:
    sim = law.simulate(np.random.default_rng(1), False)
    fits = law.fit(sim.runs, sim.by, sim.columns, bootstrap=BOOTSTRAP, seed=0)
    assert fits and set(fits) == set(sim.truth)
    for fit in fits.values():
        assert isinstance(fit, FittedLaw) and not fit.identified
        assert isinstance(fit.reason, str) and len(fit.reason) > 10
        with pytest.raises(NotIdentified, match=fit.series):
            fit.predict(sim.at)
