"""The report's content (the browser test checks that it renders)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from archscale.analysis import build_report, section_errors
from archscale.analysis.present.html_tables import html_table


def test_empty_dir_report_says_no_data(tmp_path: Path) -> None:
    html = build_report(tmp_path)
    assert html.count('class="nodata"') >= 7 and "<svg" not in html


def test_running_search_report(running_dir: Path) -> None:
    html = build_report(running_dir, bootstrap=0)
    assert "Best architectures" in html and "gelu·learned" in html
    assert section_errors(html) == {}


def test_study_report_has_fit_tables(study_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from archscale.analysis.compare import scaling
    from archscale.analysis.compare import verdicts as verdicts_module
    from archscale.analysis.present import report

    calls = []
    original = scaling.scaling_analysis

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(report, "scaling_analysis", counted)
    monkeypatch.setattr(verdicts_module, "scaling_analysis", counted)  # what verdicts would call on its own
    html = build_report(study_dir, bootstrap=10, target=1e21)
    assert len(calls) == 1  # the verdicts and the scaling section share one analysis (it refits every family)
    for text in (
        "Power law in compute",
        "Chinchilla Approach 3",
        "Compute-optimal allocation",
        "Ranking by predicted loss",
        "Effective-compute multiplier",
        "Leave-largest-out",
        "Chinchilla Approach 2",
    ):
        assert text in html, text
    assert section_errors(html) == {}


def test_report_never_shows_the_storage_url(tmp_path: Path, search_dir: Path) -> None:
    d = tmp_path / "secret"
    d.mkdir()
    (d / "trials.parquet").write_bytes((search_dir / "trials.parquet").read_bytes())
    run = {
        "kind": "search",
        "storage": "postgresql://u:hunter2@db/optuna",
        "study_name": "s",
        "args": {"storage": "postgresql://u:hunter2@db/optuna", "address": "ray://u:hunter2@head:10001"},
    }
    (d / "run.json").write_text(json.dumps(run))
    html = build_report(d, bootstrap=0)
    assert "hunter2" not in html and "postgresql://" not in html and "ray://u:***@head" in html


def test_html_table_formats_and_escapes() -> None:
    df = pl.DataFrame(
        {
            "name": ["<b>&"],
            "big": [1.23456e9],
            "small": [0.5],
            "tiny": [1.5e-5],
            "round": [1e21],
            "n": [3],
            "none": [None],
        },
        schema_overrides={"none": pl.Float64},
    )
    html = html_table(df)
    assert (
        "&lt;b&gt;&amp;" in html
        and "1.235e9" in html
        and ">0.5<" in html
        and "1.5e-5" in html
        and ">1e21<" in html
        and ">3<" in html
        and ">–<" in html
    )


def test_run_summary_space_table() -> None:
    from archscale.analysis.present.report_parts import describe_run, space_table

    space = {
        "name": "quickstart",
        "arch": {
            "seq_len": {"value": 128, "choices": None, "low": None, "high": None, "log": False},
            "position": {"value": None, "choices": ["rope", "alibi"], "when": None},
        },
        "train": {"lr": {"value": None, "low": 0.002, "high": 0.01, "log": True}},
    }
    rows = space_table(space)
    assert rows == [
        {"axis": "arch.seq_len", "fixed": "128", "searched": ""},
        {"axis": "arch.position", "fixed": "", "searched": "rope, alibi"},
        {"axis": "train.lr", "fixed": "", "searched": "[0.002, 0.01] log"},
    ]
    shown = describe_run({"kind": "search", "storage": "sqlite:////x.db", "space": space, "budget": None})
    assert "storage" not in shown and "budget" not in shown and "choices" not in shown["space"]["arch"]["seq_len"]


def test_no_section_of_a_realistic_report_errors(study_dir: Path, search_dir: Path, tmp_path: Path) -> None:
    """A search and a scaling study together: every section renders (data or "No data"), none fails."""
    from archscale.analysis import write_report

    out = write_report([search_dir, study_dir], tmp_path / "report.html", bootstrap=10)
    text = out.read_text()
    assert section_errors(out) == {} and "data-section-error" not in text and "This section failed" not in text
    # 11: with "Predicted at the target" and "One law for the space" (the study has 5 compute sizes)
    assert text.count("<section ") == 11 and text.count("<svg") >= 9


def test_verdicts_lead_the_report_and_what_was_run_follows(study_dir: Path, search_dir: Path) -> None:
    """The first section says what the data supports (issue 10, section 5); metadata comes last."""
    import re

    html = build_report([search_dir, study_dir], bootstrap=10)
    titles = re.findall(r'<section id="[^"]*"[^>]*><h2>(.*?)</h2>', html)
    assert titles[0] == "Verdicts" and titles[-1] == "What was run", titles
    verdicts = html[html.index('<section id="verdicts"') :].split("</section>")[0]
    assert "Best architecture (" in verdicts and "n=" in verdicts  # the estimate comes with its n
    assert "Holm-adjusted" in verdicts and "Scaling fits" in verdicts
    assert "<th>n</th>" in verdicts  # the ranking table shows n
    assert section_errors(html) == {}


def test_a_failing_verdicts_section_is_reported(study_dir: Path, monkeypatch) -> None:
    from archscale.analysis.present import report

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(report, "verdicts", broken)
    assert section_errors(build_report(study_dir, bootstrap=0)) == {"Verdicts": "RuntimeError: boom"}


def test_a_failing_section_is_shown_as_failed_not_as_no_data(study_dir: Path, monkeypatch) -> None:
    from archscale.analysis.present import report

    def broken(*args, **kwargs):
        raise KeyError("params")

    monkeypatch.setattr(report, "scaling_analysis", broken)
    html = build_report(study_dir, bootstrap=0)
    assert section_errors(html) == {"Scaling fits": "KeyError: 'params'"}
    assert 'data-section-error="KeyError: &#x27;params&#x27;"' in html
    assert "This section failed: KeyError: &#x27;params&#x27;" in html and 'class="section-error"' in html
    scaling = html[html.index('<section id="scaling-fits"') :].split("</section>")[0]
    assert "No data" not in scaling
    assert "Best architectures" in html and "data-section-error" not in html.replace(scaling, "")
