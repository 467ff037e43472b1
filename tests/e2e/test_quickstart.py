"""End to end, as a newcomer runs it: `archscale quickstart --small` into a fresh directory."""

import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from archscale.search.storage import open_storage
from tests.helpers import assert_results_agree_with_study, chromium, console_errors, needs_chromium

#: what Ray prints that a user of archscale must not see: its banners, and any warning or error line
RAY_NOISE = re.compile(
    r"Traceback|View detailed results here|Configuration for experiment|tensorboard --logdir|"
    r"NaN or Inf found|\bWARNING\b|\bERROR\b|Warning:|\((raylet|pid=\d+|gcs_server)\)"
)


def assert_clean_console(console: str) -> None:
    noise = [line for line in console.splitlines() if RAY_NOISE.search(line)]
    assert not noise, "\n".join(noise[:20])


def test_console_check_can_fail() -> None:
    assert_clean_console("[1/4] searching ...\n[1/12] trial 0 completed eval_loss 2.9")
    for line in (
        "Traceback (most recent call last):",
        "View detailed results here: /tmp/x/ray/search",
        "2026-11-24 01:57:45,249\tWARNING experiment_state.py:206 -- Experiment state snapshotting ...",
        "(raylet) Raylet is terminated.",
    ):
        with pytest.raises(AssertionError):
            assert_clean_console(line)


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
    # the story: the small search's winner, the ladder's predicted winner at the target (or why not),
    # the held-out check on 2 seeds, and the closing lines that compare them
    assert findings["best"] and findings["started_with"] and findings["best"]["label"] == findings["started_with"][0]
    assert findings["predicted_winner"] or findings["why_no_prediction"]
    if findings["predicted_winner"]:
        win = findings["predicted_winner"]
        assert win["lo"] <= win["predicted_loss"] <= win["hi"]
        assert win["p_best"] is None or 0 <= win["p_best"] <= 1  # None: the law has no bootstrap refits (said)
        assert findings["agree"] == (findings["best"]["label"] == win["label"])
        check = findings["validation"]["winner_check"]  # a prediction is checked on held-out runs
        assert check["verdict"] in ("confirmed", "within noise", "refuted", "no noise estimate"), check
        assert all(row["seeds"] == 2 for row in findings["validation"]["validated"])  # --validate-seeds 2
    for step in ("[1/4] searching", "[2/4] ladder search", "[3/4] held-out check", "[4/4] fits"):  # progress
        assert step in r.stderr, r.stderr[-2000:]
    assert_clean_console(r.stdout + r.stderr)
    from archscale.search.quickstart import describe

    text = describe(findings)
    assert "small-scale winner" in text and ("held-out runs" in text or "No held-out verdict" in text)
    parts = ["search", "ladder"] + (["ladder/validate"] if findings["predicted_winner"] else [])
    for part in parts:  # the trainer's staging files never enter Ray's synced folders
        synced = [p.name for p in (out / part / "ray").rglob("*")]
        assert synced and not [n for n in synced if ".tmp" in n or n in ("run", "state.pt.tmp")], synced

    for part in parts:  # the held-out runs' study is named by ladder_validate.py (no run.json of its own)
        study = None
        if part == "ladder/validate":
            study = optuna.load_study(
                study_name="archscale-validate", storage=open_storage(str(out / part / "optuna.journal"))
            )
        assert_results_agree_with_study(out / part, study)
    for name in (["ladder"] if findings["predicted_winner"] else []) + ["pareto"]:
        assert (out / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"

    report = out / "report.html"
    from archscale.analysis.present.report_parts import section_errors

    assert section_errors(report) == {}  # every section rendered; none raised
    dom = chromium("--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    figures = re.findall(r'<figure class="chart">(.*?)</figure>', dom.stdout, flags=re.S)
    assert figures and all(f.lstrip().startswith("<svg") for f in figures)
    assert not console_errors(dom.stderr)
    shot = tmp_path / "report.png"
    assert chromium(f"--screenshot={shot}", "--window-size=1280,3000", report.as_uri()).returncode == 0
    assert shot.exists()
