"""Chart specs: layered structure, marks, encodings; every kind builds from results dirs and saves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from archscale.analysis import fit_power_law, load_trials
from archscale.analysis.compare.scaling import scaling_fits
from archscale.analysis.data.runs import completed, series_column
from archscale.analysis.present import charts as ch


def marks(spec: dict) -> list[str]:
    out = []
    for layer in spec.get("layer", []):
        mark = layer["mark"]
        out.append(mark if isinstance(mark, str) else mark["type"])
    return out


def test_scaling_chart_layers(study_dir: Path) -> None:
    runs = series_column(completed(study_dir))
    fits = scaling_fits(runs, x="compute", series="series", bootstrap=20)
    assert set(fits) == {"baseline", "swiglu·rope"}
    spec = ch.chart_spec(ch.scaling_chart(runs, fits, x="compute", target=1e21))
    assert marks(spec) == ["area", "line", "circle", "rule"]
    area, line, dots, _ = spec["layer"]
    assert dots["encoding"]["x"]["scale"]["type"] == "log" and dots["encoding"]["y"]["scale"]["type"] == "log"
    assert line["encoding"]["strokeDash"]["field"] == "extrapolated"
    assert area["encoding"]["y"]["field"] == "lo" and area["encoding"]["y2"]["field"] == "hi"
    data = spec["datasets"][line["data"]["name"]]
    assert max(r["x"] for r in data) == pytest.approx(1e21) and any(r["extrapolated"] for r in data)
    assert len(spec["datasets"][dots["data"]["name"]]) == runs.height  # one point per run


def test_fit_lines_long_form() -> None:
    fit = fit_power_law(np.geomspace(1e17, 1e19, 6), 2 + 3000 * np.geomspace(1e17, 1e19, 6) ** -0.2, bootstrap=10)
    lines = ch.fit_lines({"a": fit}, 1e17, 1e21, {"a": 1e19}, n=50)
    assert lines.columns == ["series", "x", "loss", "lo", "hi", "extrapolated"] and lines.height == 50
    assert lines.filter(pl.col("x") > 1e19)["extrapolated"].all()


def test_isoflop_chart_draws_parabolas_and_minima(study_dir: Path) -> None:
    spec = ch.chart_spec(ch.build_chart(study_dir, "isoflop"))
    panels = spec["hconcat"]
    assert len(panels) == 2
    assert marks(panels[0]) == ["line", "circle", "point"]
    minima = spec["datasets"][panels[0]["layer"][2]["data"]["name"]]
    assert len(minima) == 5  # one minimum per compute budget
    # each parabola is drawn over its fitting window only, which is narrower than its budget's sizes
    curves = pl.DataFrame(spec["datasets"][panels[0]["layer"][0]["data"]["name"]])
    runs = pl.DataFrame(spec["datasets"][panels[0]["layer"][1]["data"]["name"]])
    drawn = curves.group_by("budget").agg(lo=pl.col("n").min(), hi=pl.col("n").max())
    sampled = runs.group_by("budget").agg(lo=pl.col("n").min(), hi=pl.col("n").max())
    both = drawn.join(sampled, on="budget", suffix="_runs")
    assert both.height == 5
    assert (both["lo"] >= both["lo_runs"] * (1 - 1e-9)).all() and (both["hi"] <= both["hi_runs"] * (1 + 1e-9)).all()
    assert ((both["hi"] / both["lo"]) < (both["hi_runs"] / both["lo_runs"]) * 0.99).any()


def test_pareto_chart_front_and_tooltips(search_dir: Path) -> None:
    runs = completed(search_dir)
    spec = ch.chart_spec(ch.pareto_chart(runs, x="params", y="eval_loss"))
    assert marks(spec) == ["line", "point"]
    line, dots = spec["layer"]
    assert "shape" not in dots["encoding"]  # one run: no run legend
    assert line["mark"]["interpolate"] == "step-after"
    assert {t["field"] for t in dots["encoding"]["tooltip"]} >= {"label", "params", "eval_loss", "trial_id"}
    front_rows = spec["datasets"][line["data"]["name"]]
    assert 1 <= len(front_rows) < runs.height


def test_pareto_chart_marks_runs_by_shape(search_dir: Path, study_dir: Path) -> None:
    runs = completed([search_dir, study_dir])
    spec = ch.chart_spec(ch.pareto_chart(runs, x="tokens_per_s", y="eval_loss", x_dir="max"))
    assert spec["layer"][1]["encoding"]["shape"]["field"] == "run"
    assert spec["layer"][0]["mark"]["interpolate"] == "step-before"


def test_pareto_chart_samples_large_sets() -> None:
    rng = np.random.default_rng(0)
    df = pl.DataFrame({"params": rng.uniform(1, 10, 100_000), "eval_loss": rng.uniform(2, 4, 100_000)})
    spec = ch.chart_spec(ch.pareto_chart(df, x="params", y="eval_loss", max_points=1000))
    assert len(spec["datasets"][spec["layer"][1]["data"]["name"]]) <= 1000 + 100


@pytest.mark.parametrize("kind", ["curves", "effects", "importance", "length", "scaling", "pareto", "isoflop"])
def test_every_kind_builds_and_validates(search_dir: Path, kind: str) -> None:
    spec = ch.chart_spec(ch.build_chart(search_dir, kind, bootstrap=10))
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/v")
    assert "layer" in spec or "facet" in spec or "hconcat" in spec


def test_effects_chart_is_faceted_layer(search_dir: Path) -> None:
    spec = ch.chart_spec(ch.build_chart(search_dir, "effects"))
    assert spec["facet"]["row"]["field"] == "axis"
    assert [
        layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["spec"]["layer"]
    ] == ["bar", "rule"]


def test_curves_are_limited_and_downsampled(search_dir: Path) -> None:
    spec = ch.chart_spec(ch.build_chart(search_dir, "curves", max_trials=5))
    rows = spec["datasets"][(spec["layer"][0].get("data") or spec["data"])["name"]]
    assert len({r["trial_id"] for r in rows}) == 5


def test_no_data_is_reported(running_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ch.NoData):
        ch.build_chart(tmp_path, "pareto")
    with pytest.raises(ch.NoData):
        ch.build_chart(running_dir, "curves")
    with pytest.raises(ValueError, match="allowed"):
        ch.build_chart(running_dir, "pie")


@pytest.mark.parametrize("suffix", [".svg", ".png", ".json", ".html"])
def test_save_chart_formats(search_dir: Path, tmp_path: Path, suffix: str) -> None:
    out = ch.save_chart(ch.build_chart(search_dir, "pareto"), tmp_path / f"chart{suffix}")
    data = out.read_bytes()
    assert len(data) > 1000
    if suffix == ".svg":
        assert data.lstrip().startswith(b"<svg")
    elif suffix == ".png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    elif suffix == ".json":
        assert "layer" in json.loads(data)
    else:
        assert b"<script" in data and b'src="http' not in data  # Vega inlined: works offline


def test_save_chart_rejects_unknown_format(search_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="allowed"):
        ch.save_chart(ch.build_chart(search_dir, "pareto"), tmp_path / "chart.pdf")


def test_study_trials_have_groups(study_dir: Path) -> None:
    assert load_trials(study_dir).collect()["group"].n_unique() == 2
