"""The report opens in real headless Chromium: every chart renders, no console errors, a screenshot."""

from __future__ import annotations

import re
from pathlib import Path

from archscale.analysis import write_report
from tests.helpers import chromium, console_errors, needs_chromium


@needs_chromium
def test_console_error_detection_works(tmp_path: Path) -> None:
    """Guard for the check below: a page that logs an error is caught."""
    page = tmp_path / "bad.html"
    page.write_text('<html><body><script>console.error("boom-marker"); missingFn();</script></body></html>')
    errors = console_errors(chromium("--dump-dom", page.as_uri()).stderr)
    assert any("boom-marker" in e for e in errors) and any("missingFn" in e for e in errors)


@needs_chromium
def test_report_renders_in_chromium(search_dir: Path, study_dir: Path, running_dir: Path, tmp_path: Path) -> None:
    report = write_report([search_dir, study_dir, running_dir], tmp_path / "report.html", bootstrap=20)
    html = report.read_text()
    expected = html.count('<figure class="chart">')
    assert expected >= 8  # pareto x2, scaling, isoflop, effects, importance, curves, length
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")  # self-contained

    dom = chromium("--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    figures = re.findall(r'<figure class="chart">(.*?)</figure>', dom.stdout, flags=re.S)
    assert len(figures) == expected
    for fig in figures:  # each chart is an SVG with drawn marks, not an empty frame
        assert fig.lstrip().startswith("<svg") and 'class="mark-' in fig
    assert not console_errors(dom.stderr)
    for title in ("What was run", "Best architectures", "Pareto front", "Scaling fits", "Effects", "Learning curves"):
        assert f">{title}</h2>" in dom.stdout

    shot = tmp_path / "report.png"
    result = chromium(f"--screenshot={shot}", "--window-size=1280,4000", report.as_uri())
    assert result.returncode == 0 and shot.exists()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a rendered page, not a blank one
