"""End to end, as a newcomer runs it: `archscale quickstart --small` into a fresh directory."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.analysis.test_report_browser import chromium, console_errors, needs_chromium
from tests.search.test_search import assert_results_agree_with_study


@pytest.mark.slow
@needs_chromium
def test_quickstart_small(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    r = subprocess.run(
        [sys.executable, "-m", "archscale.search.cli", "quickstart", "--small", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    findings = json.loads(r.stdout)
    assert findings["best"] and findings["exponents"] and findings["winner_holds_at_largest"] in (True, False)
    assert "[1/4]" in r.stderr and "[4/4]" in r.stderr  # progress was shown throughout

    for part in ("search", "seeds", "scaling"):
        assert_results_agree_with_study(out / part)
    for name in ("scaling", "pareto"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"

    report = out / "report.html"
    from archscale.analysis.report import section_errors

    assert section_errors(report) == {}  # every section rendered; none raised
    dom = chromium("--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    figures = re.findall(r'<figure class="chart">(.*?)</figure>', dom.stdout, flags=re.S)
    assert figures and all(f.lstrip().startswith("<svg") for f in figures)
    assert not console_errors(dom.stderr)
    shot = tmp_path / "report.png"
    assert chromium(f"--screenshot={shot}", "--window-size=1280,3000", report.as_uri()).returncode == 0
    assert shot.exists()
