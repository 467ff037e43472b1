"""Load on a shared study: benchmarks/bench_storage.py at 3 drivers x 30 trials, its counts asserted.

Real driver processes (archscale's searcher with a trainer stub, no Ray) share one study on a
real PostgreSQL server (the `postgres` fixture) and on one journal file; every trial must be
recorded once, in the study and in exactly one driver's results directory.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import polars as pl

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_storage.py"
DRIVERS, TRIALS = 3, 30


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_storage", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_three_drivers_on_one_study_lose_and_duplicate_nothing(tmp_path, postgres):
    results = _bench_module().bench(DRIVERS, TRIALS, tmp_path, postgres)
    assert set(results) == {"journal", "postgres"}
    for name, r in results.items():
        assert r["lost"] == 0 and r["duplicated"] == 0 and r["orphans"] == 0, r
        assert r["trials"] == r["in_exactly_one_directory"] == DRIVERS * TRIALS, r
        assert r["trials_per_s"] > 0 and r["ask_p99_ms"] >= r["ask_p50_ms"] > 0 and r["tell_p99_ms"] > 0, r
        numbers = []
        for i in range(DRIVERS):  # each driver's own directory holds its own trials, all completed
            frame = pl.read_parquet(tmp_path / f"{name}-driver-{i}" / "trials.parquet")
            assert frame.height == TRIALS and set(frame["status"]) == {"completed"}, name
            numbers += frame["trial_id"].to_list()
        assert sorted(numbers) == list(range(DRIVERS * TRIALS)), f"{name}: Optuna numbers 0..N-1, each once"


def test_the_counts_catch_a_lost_and_a_duplicated_trial(tmp_path):
    """The counts can fail: a trial dropped from one directory is lost (and an orphan), a trial
    copied into a second directory is duplicated."""
    bench = _bench_module()
    storage = str(tmp_path / "shared.journal")
    bench.run_storage("journal", storage, tmp_path, 2, 4)
    a, b = tmp_path / "journal-driver-0", tmp_path / "journal-driver-1"
    frame_a, frame_b = pl.read_parquet(a / "trials.parquet"), pl.read_parquet(b / "trials.parquet")
    frame_a.head(3).write_parquet(a / "trials.parquet")  # a's last trial lost
    pl.concat([frame_b, frame_a.head(1)]).write_parquet(b / "trials.parquet")  # a's first in b too
    counts = bench.count(storage, [a, b], 8)
    assert counts["lost"] == 1 and counts["duplicated"] == 1 and counts["orphans"] == 2, counts
