"""A ladder search under a shape rule: its planned rungs follow the rule (no training), a budget
below the rule's minimum is refused before any work, and (slow) a real ladder search records the
rungs' shapes in trials.parquet and shows them in the report."""

from __future__ import annotations

import json
from html import escape as html_escape

import polars as pl
import pytest
import yaml

from archscale.search.options import SearchOptions, ladder_study, prepare
from archscale.search.strategies.ladder import LadderProposals
from archscale.spaces.errors import UserError
from archscale.spaces.shape_rule import ShapeRule, off_rule, strays

RULE = {"rule": "fixed_ratio", "ffn_ratio": 4, "head_dim": 32, "aspect_ratio": 64}
SPACE = {
    "name": "shaped-ladder",
    "arch": {
        "vocab_size": 256,
        "seq_len": 32,
        "norm": "rmsnorm",
        "position": "rope",
        "ffn_activation": {"choices": ["relu", "swiglu", "gelu", "geglu"]},
    },
    "train": {"lr": 3.0e-3, "batch_size": 8},
    "budget": {"kind": "params", "value": 4e7, "tolerance": 0.03},
    "shape": RULE,
}


def _options(tmp_path, space=SPACE, **kw) -> SearchOptions:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    base = dict(space=str(path), out=str(tmp_path / "out"), trials=4, tokens_per_param=4, sampler="random")
    return SearchOptions.from_args({**base, "target_compute": 1e20, "progress": False, **kw})


def _planned(tmp_path, space=SPACE) -> list[dict]:
    """Every ladder the strategy plans (rungs solved, nothing trained)."""
    opts = _options(tmp_path, space)
    space_, study, plan = prepare(opts)
    (tmp_path / "out").mkdir()
    proposals = LadderProposals(space_, plan, opts.strategy.ladder, ladder_study(opts, study), 4, tmp_path / "out")
    record = study.open()
    while proposals.started < 4:
        proposals.propose(record)
    return [lad for lad in proposals.ladders.values() if lad["specs"]]


def test_a_ladders_planned_rungs_and_its_target_follow_the_shape_rule(tmp_path):
    rule = ShapeRule(**RULE)
    ladders = _planned(tmp_path)
    assert ladders
    for lad in ladders:
        archs = [spec["arch"] for spec in lad["specs"]] + [lad["target_arch"]]
        assert len(archs) == 4  # three rungs (budget, 2x, 4x) and the target size
        for arch in archs:
            assert arch["head_dim"] == 32 and arch["n_heads"] * 32 == arch["d_model"]
            assert off_rule(rule, arch, flag=0.08) == [], arch  # at 4e7+ params a layer is < 8% of the depth
        assert [a["n_layers"] for a in archs] == sorted(a["n_layers"] for a in archs)
        assert archs[-1]["n_layers"] > archs[0]["n_layers"] and archs[-1]["d_model"] > archs[0]["d_model"]
        ratios = [next(s.achieved for s in strays(rule, a) if s.dim == "aspect_ratio") for a in archs]
        assert max(ratios) / min(ratios) < 1.2  # one shape up the ladder


def test_without_a_rule_the_same_ladder_changes_shape(tmp_path):
    """The plain solver's rungs at fixed depth and heads: head_dim and the aspect ratio change with
    the size (the confound the rule removes)."""
    plain = {k: v for k, v in SPACE.items() if k != "shape"}
    plain = {**plain, "arch": {**plain["arch"], "n_layers": 4, "n_heads": 4}}
    for lad in _planned(tmp_path, plain):
        archs = [spec["arch"] for spec in lad["specs"]]
        assert len({a["head_dim"] for a in archs}) == 3 and len({a["n_layers"] for a in archs}) == 1


def test_a_budget_below_the_rules_minimum_is_refused_before_any_work(tmp_path):
    small = {**SPACE, "budget": {**SPACE["budget"], "value": 20000}}
    with pytest.raises(
        UserError, match=r"budget.value: shape rule fixed_ratio with aspect_ratio 64 needs d_model >= 64"
    ):
        prepare(_options(tmp_path, small))
    assert not (tmp_path / "out").exists()


TINY = {
    **SPACE,
    "arch": {**SPACE["arch"], "ffn_activation": {"choices": ["relu", "swiglu"]}},
    "budget": {"kind": "params", "value": 12000, "tolerance": 0.05},
    "shape": {"rule": "fixed_ratio", "ffn_ratio": 4, "head_dim": 8, "aspect_ratio": 16},
}


@pytest.mark.slow
def test_a_shape_rule_ladder_search_records_and_reports_its_rung_shapes(tmp_path, ray_cluster):
    from archscale.analysis.present.report import write_report
    from archscale.analysis.present.report_parts import section_errors
    from archscale.search.run import run_search

    opts = _options(tmp_path, TINY, trials=2, target_compute=1e12, ladder_prune_margin=10.0)
    opts = SearchOptions.from_args({**opts.to_args(), "train": {"eval_every_tokens": 16384, "eval_tokens": 2048}})
    run_search(opts)
    out = tmp_path / "out"
    trials = pl.read_parquet(out / "trials.parquet").sort("ladder_id", "rung")
    assert trials.height >= 3 and set(trials["status"]) == {"completed"}
    rule = ShapeRule(**TINY["shape"])
    for row in trials.iter_rows(named=True):
        assert row["head_dim"] == 8 and row["n_heads"] * 8 == row["d_model"]
        assert row["ffn_ratio"] == pytest.approx(row["d_ff"] / row["d_model"])
        assert row["aspect_ratio"] == pytest.approx(row["d_model"] / row["n_layers"])
        assert abs(next(s.relative for s in strays(rule, row) if s.dim == "aspect_ratio")) <= 0.5 + 1e-9
    report = write_report([out], tmp_path / "report.html", bootstrap=10)
    html = report.read_text()
    assert section_errors(report) == {} and "<h3>Rung shapes</h3>" in html and "fixed_ratio (head_dim 8" in html
    flagged = [off_rule(rule, row) for row in trials.iter_rows(named=True)]
    assert any(flagged)  # rungs this small round off the rule (the e2e must see a flag)
    for row, off in zip(trials.iter_rows(named=True), flagged, strict=True):
        for text in off:  # every stray beyond 5% is flagged in the report, by ladder and rung
            assert f"(ladder {row['ladder_id']}) rung {row['rung']}: " in html and html_escape(text) in html
    from typer.testing import CliRunner

    from archscale.search.cli import app

    status = CliRunner().invoke(app, ["search", "status", str(out), "--json"])
    assert status.exit_code == 0, status.output
    lines = json.loads(status.stdout)["off_rule"]  # `search status` lists the same strays, one line per rung
    assert len(lines) == sum(1 for off in flagged if off) and all(html_escape(x) in html for x in lines)
