"""Quickstart benchmark (not a test): `archscale quickstart [--small]` into a fresh directory, timed.

Prints the wall time of each step (from the quickstart's own `[k/4]` progress lines, timestamped as
they arrive) and of the whole run against the goals of issue 22 (full <= 360 s, --small <= 150 s on
an idle 2-core machine), and the plain reference measured in the same run: the training loops'
own time (the trainer's `wall_s`, summed over every trial of the search, the ladder search and the
held-out runs) spread over the 2 workers, so `wall / training = R` is what the orchestration, the
fits and the report add. Run it on an idle machine; other CPU work inflates every number.

    python benchmarks/bench_quickstart.py            # the full quickstart
    python benchmarks/bench_quickstart.py --small    # the CI-sized one
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOALS = {False: 360.0, True: 150.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="the CI-sized quickstart")
    ap.add_argument("--keep", help="write the quickstart here (a new directory) instead of a temporary one")
    args = ap.parse_args()
    import polars as pl

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or Path(tmp) / "qs")
        cmd = [sys.executable, "-m", "archscale.search.cli", "quickstart", "--out", str(out), "--json"]
        cmd += ["--small"] if args.small else []
        started = time.monotonic()
        steps: list[tuple[str, float]] = []
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in proc.stderr:  # the quickstart's progress: "[1/4] ...", "[2/4] ..." (trial lines skipped)
            if line[:5] in ("[1/4]", "[2/4]", "[3/4]", "[4/4]") and not line[5:].startswith(" trial "):
                steps.append((line[:5], time.monotonic() - started))
        stdout = proc.stdout.read()
        if proc.wait() != 0:
            sys.exit(f"quickstart failed (exit {proc.returncode})")
        wall = time.monotonic() - started
        findings = json.loads(stdout)
        trials = pl.concat(
            [pl.read_parquet(out / part / "trials.parquet") for part in ("search", "ladder", "ladder/validate")],
            how="diagonal_relaxed",
        )
        training = float(trials["wall_s"].fill_null(0).sum())
    ends = [t for _, t in steps[1:]] + [wall]
    for (name, start), end in zip(steps, ends, strict=True):
        print(f"{name} {end - start:6.1f} s")
    goal = GOALS[args.small]
    print(f"quickstart{' --small' if args.small else ''}: wall = {wall:.1f} s (goal <= {goal:.0f} s)")
    print(
        f"training loops: {training:.1f} s in {trials.height} trials, {training / 2:.1f} s over 2 workers; "
        f"wall / training = {wall / (training / 2):.2f}"
    )
    win = findings.get("predicted_winner") or {}
    check = (findings.get("validation") or {}).get("winner_check") or {}
    print(
        f"answer: small-scale best {(findings.get('best') or {}).get('label')}, predicted best "
        f"{win.get('label')}, agree {findings.get('agree')}, held-out verdict {check.get('verdict')}"
    )


if __name__ == "__main__":
    main()
