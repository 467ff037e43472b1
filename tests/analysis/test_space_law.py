"""The space law: one law over every run of a space, conditioned on the architecture's axes.

Runs are simulated from known conditioned laws (``analysis.data.synthetic_space``): the fit must
recover the level and slope effects, predict an architecture it never saw, say which values have
no slope estimate (and give them none), refuse a single compute size, and cover the truth at the
rate its intervals claim.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from archscale.analysis import LAWS, fit_space_law, space_record
from archscale.analysis.data.synthetic_space import DEMO_TRUTH, random_truth, space_trials, write_space_search
from archscale.analysis.laws.objective import NotIdentified

SIZES = (3e12, 1e13, 3e13)


def _effects(law, effect: str) -> dict[str, tuple[float, float, float]]:
    rows = law.coefficients().filter((pl.col("effect") == effect) & pl.col("estimated"))
    return {r["name"]: (r["estimate"], r["lo"], r["hi"]) for r in rows.iter_rows(named=True)}


def test_known_level_and_slope_effects_are_recovered(tmp_path: Path) -> None:
    law = fit_space_law(write_space_search(tmp_path / "s", sizes=SIZES, noise=0.005))
    assert law.identified, law.reason
    assert law.encoding.reference() == {"ffn_activation": "gelu", "position": "learned", "norm": "layernorm"}
    level, slope = _effects(law, "level"), _effects(law, "slope")
    for axis, values in DEMO_TRUTH.level.items():
        for value, true in list(values.items())[1:]:
            est, lo, hi = level[f"{axis}={value}"]
            assert est == pytest.approx(true, abs=0.02), (axis, value)
            est_s, lo_s, hi_s = slope[f"{axis}={value}"]
            assert est_s == pytest.approx(DEMO_TRUTH.slope[axis][value], abs=0.01), (axis, value)
    # alibi's slope effect (+0.04) is told apart from zero, and read as an advantage growing with scale
    est, lo, hi = slope["position=alibi"]
    assert lo > 0.01
    row = law.coefficients().filter((pl.col("effect") == "slope") & (pl.col("name") == "position=alibi"))
    assert "grows with scale" in row["meaning"][0]
    heads = law.heads()
    assert heads["E"][1] < DEMO_TRUTH.E < heads["E"][2]
    assert heads["alpha"][0] == pytest.approx(DEMO_TRUTH.alpha, abs=0.03)
    shrink = law.coefficients()["shrinkage"].drop_nulls()
    assert shrink.len() > 0 and ((shrink > 0) & (shrink <= 1)).all()


def test_a_value_trained_at_one_size_gets_no_slope_estimate_and_says_so(tmp_path: Path) -> None:
    d = write_space_search(tmp_path / "s", sizes=SIZES, base_only=[("position", "alibi")], noise=0.005)
    law = fit_space_law(d)
    assert law.identified
    assert "position=alibi has no slope estimate: train it at a second size" in law.no_slope()
    assert len(law.no_slope()) == 1
    row = (
        law.coefficients()
        .filter((pl.col("effect") == "slope") & (pl.col("name") == "position=alibi"))
        .row(0, named=True)
    )
    assert row["estimated"] is False and row["estimate"] is None and "second size" in row["note"]
    record = space_record(law)
    assert "slope[position=alibi]" not in record.params and "level[position=alibi]" in record.params
    # its prediction at scale borrows the space's mean slope, with the prior's width: wider than rope's
    alibi = {"ffn_activation": "gelu", "position": "alibi", "norm": "layernorm"}
    rope = {**alibi, "position": "rope"}
    _, lo_a, hi_a = record.predict(alibi, 1e15)
    _, lo_r, hi_r = record.predict(rope, 1e15)
    assert hi_a - lo_a > 1.5 * (hi_r - lo_r)


def test_an_untrained_architecture_is_predicted_from_its_values(tmp_path: Path) -> None:
    never = {"ffn_activation": "swiglu", "position": "alibi", "norm": "rmsnorm"}
    d = write_space_search(tmp_path / "s", sizes=SIZES, drop=[never], noise=0.005)
    law = fit_space_law(d)
    trials = pl.read_parquet(d / "trials.parquet")
    assert trials.filter((pl.col("ffn_activation") == "swiglu") & (pl.col("position") == "alibi")
                         & (pl.col("norm") == "rmsnorm")).height == 0  # fmt: skip
    target = 1e14
    mean, lo, hi = law.predict(never, [target])
    true = float(DEMO_TRUTH.loss(never, target))
    assert lo[0] < true < hi[0] and abs(mean[0] - true) < 0.02
    ranking = law.ranking(target, top=18)
    assert ranking.height == 18  # the whole space, trained or not
    row = ranking.filter(pl.col("arch") == "ffn_activation=swiglu, position=alibi, norm=rmsnorm").row(0, named=True)
    assert row["trained_runs"] == 0 and row["lo"] < row["predicted_loss"] < row["hi"]
    assert ranking["p_best"].sum() == pytest.approx(1.0, abs=1e-9)
    best = min(DEMO_TRUTH.architectures(), key=lambda a: float(DEMO_TRUTH.loss(a, target)))
    assert ranking["arch"][0] == ", ".join(f"{k}={v}" for k, v in best.items())


def test_one_compute_size_is_refused_with_the_reason(tmp_path: Path) -> None:
    law = fit_space_law(write_space_search(tmp_path / "s", sizes=(1e13,)))
    assert not law.identified and "2+ sizes" in (law.reason or "")
    record = space_record(law)
    with pytest.raises(NotIdentified, match="second size"):
        record.predict({"position": "rope"}, 1e14)


def test_the_registry_entry_predicts_any_architecture() -> None:
    sim = LAWS["space"].simulate(np.random.default_rng(3), True)
    fit = LAWS["space"].fit(sim.runs, sim.by, sim.columns)["a"]
    arch = {"ffn_activation": "swiglu", "position": "rope", "norm": "rmsnorm"}
    mean, lo, hi = fit.predict(arch, np.array([1e14, 1e15]))
    assert mean.shape == (2,) and np.all(lo < mean) and np.all(mean < hi) and mean[1] < mean[0]
    assert np.all(np.abs(mean - DEMO_TRUTH.loss(arch, np.array([1e14, 1e15]))) < 0.03)
    with pytest.raises(TypeError, match="not conditioned"):
        LAWS["power"].fit(*_power_runs())["a"].predict({"a": 1}, 1e13)


def _power_runs():
    sim = LAWS["power"].simulate(np.random.default_rng(0), True)
    return sim.runs, sim.by, sim.columns


def test_intervals_cover_the_truth_at_the_target_at_their_rate() -> None:
    """30 simulated searches (random truths, unequal noise, half of it shared by seed): the 95%
    interval of a random architecture's loss at 10x the largest size covers its true loss."""
    rng = np.random.default_rng(11)
    hits = []
    for _ in range(30):
        truth = random_truth(rng, {"a": 3, "b": 2, "c": 2})
        archs = truth.architectures()
        design = [(a, SIZES if i % 2 == 0 else SIZES[:2]) for i, a in enumerate(archs)]
        noise = rng.choice([0.004, 0.04], len(design), p=[0.7, 0.3])
        runs = space_trials(rng, truth, design, seeds=2, noise=noise, shared=0.5)
        law = fit_space_law(runs, seed=int(rng.integers(1 << 30)))
        arch = archs[int(rng.integers(len(archs)))]
        _, lo, hi = law.predict(arch, [3e14])
        hits.append(lo[0] <= float(truth.loss(arch, 3e14)) <= hi[0])
    assert 0.8 <= np.mean(hits) <= 1.0


def test_fit_law_space_json_on_a_results_directory(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from archscale.search.cli import app

    d = write_space_search(tmp_path / "s", sizes=SIZES, base_only=[("position", "alibi")], noise=0.005)
    result = CliRunner().invoke(app, ["fit", str(d), "--law", "space", "--target-compute", "1e14", "--top", "4",
                                      "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    import json

    out = json.loads(result.output)
    assert out["law"] == "space" and out["target_compute"] == 1e14 and out["compute_sizes"] == 3
    assert [r["rank"] for r in out["ranking"]] == [1, 2, 3, 4]
    assert {"predicted_loss", "lo", "hi", "p_best", "p_best_mc_se", "trained_runs"} <= set(out["ranking"][0])
    assert out["no_slope"] == ["position=alibi has no slope estimate: train it at a second size"]
    assert any(w.startswith("position=alibi has no slope") for w in out["what_to_train"])
    effects = {(e["effect"], e["name"]): e for e in out["effects"]}
    assert effects[("slope", "position=alibi")]["estimate"] is None
    assert effects[("slope", "position=rope")]["lo"] < 0.01 < effects[("slope", "position=rope")]["hi"]
    text = CliRunner().invoke(app, ["fit", str(d), str(d), "--law", "space"])
    assert text.exit_code == 0 and "position=alibi has no slope estimate" in text.output
    assert "10x the largest compute trained" in text.output


def test_fit_law_space_refuses_one_size_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from archscale.search.cli import app

    d = write_space_search(tmp_path / "s", sizes=(1e13,))
    result = CliRunner().invoke(app, ["fit", str(d), "--law", "space"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "2+ sizes" in lines[0]
    two = CliRunner().invoke(app, ["fit", str(d), str(d), "--law", "power"])
    assert two.exit_code == 2 and "one results directory" in two.output


def test_the_report_shows_the_space_law_only_when_the_runs_identify_it(tmp_path: Path) -> None:
    from archscale.analysis import build_report, section_errors
    from archscale.analysis.present.chart_base import chart_spec
    from archscale.analysis.present.space_law import effects_chart

    d = write_space_search(tmp_path / "s", sizes=SIZES, base_only=[("position", "alibi")], noise=0.005)
    page = build_report([d], bootstrap=0)
    assert section_errors(page) == {}
    start = page.index('<section id="one-law-for-the-space">')
    section = page[start : page.index("</section>", start)]
    assert "<svg" in section and "p_best" in section and "What to train next" in section
    assert "position=alibi has no slope estimate: train it at a second size" in section
    spec = chart_spec(effects_chart(fit_space_law(d).coefficients()))
    assert len(spec["hconcat"]) == 2  # level and slope panels
    one_size = build_report([write_space_search(tmp_path / "one", sizes=(1e13,))], bootstrap=0)
    assert "One law for the space" not in one_size
