"""Storage benchmark (not a test): several drivers adding trials to one shared Optuna study.

Each driver is its own process running archscale's searcher exactly as a search does (the
`space` strategy proposing through one `ProposalSearcher`, which writes the driver's own results
directory and tells the shared study every outcome), without Ray: Ray's scheduling is not what is
measured, and the strategy contract suite (tests/search/test_strategy_contract.py) drives the
searcher the same way. The trainer is a stub: each trial "trains" in no time and reports a loss
from a fixed law of its counts, so the figures are the storage's (Optuna's ask and tell, the
searcher's bookkeeping), not training's.

Two storages, each shared by every driver: a real PostgreSQL server (started on a temporary
directory by tests/search/postgres.py; `bash scripts/install-postgres` installs it) and an Optuna
journal file. Per storage it reports trials/s over all drivers, p50 and p99 latency of `ask` and
`tell`, and the counts that must be zero: `lost` (a trial a driver ran whose outcome is missing
from the study or from every results directory, or a trial a driver never got to run),
`duplicated` (a trial number held by more than one driver's directory, or twice by one), and
`orphans` (a study trial in no directory, or in a directory other than its `run_id`'s).

    python benchmarks/bench_storage.py              # 3 drivers x 200 trials per storage
    python benchmarks/bench_storage.py --quick      # 3 drivers x 30
    python benchmarks/bench_storage.py --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STUDY = "bench-storage"
SPACE = {
    "name": "bench-storage",
    "arch": {
        "vocab_size": 256,
        "seq_len": 32,
        "n_layers": 1,
        "n_heads": 2,
        "norm": "rmsnorm",
        "ffn_activation": {"choices": ["relu", "swiglu", "gelu", "geglu"]},
        "position": "rope",
    },
    "train": {"lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True}, "batch_size": 8},
    "budget": {"kind": "params", "value": 12000, "tolerance": 0.03},
}


class _TimedStudy:
    """The study with its `ask` and `tell` timed (everything else passed through)."""

    def __init__(self, study):
        self._inner = study
        self.ask_s: list[float] = []
        self.tell_s: list[float] = []

    def ask(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._inner.ask(*args, **kwargs)
        finally:
            self.ask_s.append(time.perf_counter() - start)

    def tell(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._inner.tell(*args, **kwargs)
        finally:
            self.tell_s.append(time.perf_counter() - start)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def _stub_outcome(config: dict[str, Any]):
    """The trainer stub: a completed trial at its full budget, its loss a fixed law of its compute."""
    from archscale.search.trial import TrialReport
    from archscale.spaces.record import TrialStatus

    base = {"trial_number": config["number"], "seed": config["seed"], "target_tokens": config["target_tokens"]}
    if config["error"]:
        return TrialReport(**base, status=TrialStatus.FAILED, error=config["error"])
    compute = config["counts"]["flops_per_token"] * config["target_tokens"]
    loss = 1.5 + 3.0 * (compute / 1e9) ** -0.3 + 0.01 * (config["number"] % 7)
    return TrialReport(
        **base, status=TrialStatus.COMPLETED, tokens=config["target_tokens"], compute=compute, eval_loss=loss
    )


def drive(storage: str, out: Path, trials: int, seed: int) -> dict[str, Any]:
    """One driver: `trials` proposals through the searcher, each completed at once by the stub.
    Writes `out/driver.json` (the numbers it ran, the latencies) and returns it."""
    from archscale.search.proposals import TrialPlan
    from archscale.search.searcher import ProposalSearcher
    from archscale.search.storage import StudySpec
    from archscale.search.strategies.space import SpaceProposals
    from archscale.spaces.space import space_from_dict

    spec = StudySpec(storage, STUDY, ["eval_loss"], sampler="random", seed=seed)
    strategy = SpaceProposals(space_from_dict(SPACE), TrialPlan(target_tokens=4096), trials=trials)
    searcher = ProposalSearcher(strategy, spec, out, run_id=out.name)
    timed = searcher._study = _TimedStudy(spec.open())
    ran: list[int] = []
    start = time.perf_counter()
    while isinstance(config := searcher.suggest(f"{out.name}-{len(ran)}"), dict):
        ran.append(config["number"])
        searcher.on_trial_complete(f"{out.name}-{len(ran) - 1}", result=_stub_outcome(config).to_result())
    wall_s = time.perf_counter() - start
    searcher.writer.flush()
    record = {"run_id": out.name, "ran": ran, "wall_s": wall_s, "ask_s": timed.ask_s, "tell_s": timed.tell_s}
    (out / "driver.json").write_text(json.dumps(record))
    return record


def _quantile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.quantile(values, q)) if values else float("nan")


def count(storage: str, dirs: list[Path], expected: int) -> dict[str, Any]:
    """The counts after every driver ended: `lost`, `duplicated`, `orphans` (all must be 0)."""
    import polars as pl

    from archscale.search.storage import StudySpec

    study = StudySpec(storage, STUDY, ["eval_loss"], sampler="random").open(create=False)
    finished = {t.number: t for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    held: dict[int, list[str]] = {}  # trial number -> the directories whose trials.parquet holds it
    ran: set[int] = set()
    for d in dirs:
        ran |= set(json.loads((d / "driver.json").read_text())["ran"])
        frame = pl.read_parquet(d / "trials.parquet").filter(pl.col("status") != "running")
        for number in frame["trial_id"].to_list():
            held.setdefault(int(number), []).append(d.name)
    in_every_place = {n for n in ran if n in finished and n in held}
    lost = (len(ran) - len(in_every_place)) + max(0, expected - len(ran))
    duplicated = sum(len(where) - 1 for where in held.values() if len(where) > 1)
    orphans = sum(1 for n, t in finished.items() if held.get(n) != [t.user_attrs.get("run_id")])
    return {
        "trials": len(finished),
        "lost": lost,
        "duplicated": duplicated,
        "orphans": orphans,
        "in_exactly_one_directory": sum(1 for where in held.values() if len(where) == 1),
    }


def run_storage(
    name: str, storage: str, root: Path, drivers: int, trials: int, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """`drivers` driver processes on one storage, started together; their figures and the counts.
    `env` is added to the drivers' environment (PGPASSWORD: the URL itself carries no password)."""
    dirs = [root / f"{name}-driver-{i}" for i in range(drivers)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "_drive", storage, str(d), str(trials), str(i)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        for i, d in enumerate(dirs)
    ]
    failures = [(p.args[3], err) for p in procs if (err := p.communicate()[1]) and p.returncode != 0]
    wall_s = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{name}: a driver failed: {failures[0][0]}:\n{failures[0][1][-3000:]}")
    records = [json.loads((d / "driver.json").read_text()) for d in dirs]
    asks = [s for r in records for s in r["ask_s"]]
    tells = [s for r in records for s in r["tell_s"]]
    with _environment(env or {}):
        counts = count(storage, dirs, drivers * trials)
    return {
        "storage": name,
        "drivers": drivers,
        "trials_per_driver": trials,
        "trials_per_s": counts["trials"] / max(r["wall_s"] for r in records),
        "wall_s": wall_s,  # with each driver's start-up (imports, opening the study)
        "ask_p50_ms": 1e3 * _quantile(asks, 0.5),
        "ask_p99_ms": 1e3 * _quantile(asks, 0.99),
        "tell_p50_ms": 1e3 * _quantile(tells, 0.5),
        "tell_p99_ms": 1e3 * _quantile(tells, 0.99),
        **counts,
    }


@contextlib.contextmanager
def _environment(env: dict[str, str]):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def bench(drivers: int, trials: int, root: Path, postgres=None) -> dict[str, dict[str, Any]]:
    """Both storages: the journal file, and a fresh database on `postgres` (a tests/search/postgres.py
    server; None leaves PostgreSQL out)."""
    results = {"journal": run_storage("journal", str(root / "shared.journal"), root, drivers, trials)}
    if postgres is not None:
        postgres.create_database("bench_storage")
        url, env = postgres.url("bench_storage", with_password=False), {"PGPASSWORD": postgres.password}
        results["postgres"] = run_storage("postgres", url, root, drivers, trials, env)
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_drive":  # one driver process (started by run_storage)
        storage, out, trials, seed = sys.argv[2:6]
        drive(storage, Path(out), int(trials), int(seed))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 drivers x 30 trials")
    parser.add_argument("--drivers", type=int, default=3)
    parser.add_argument("--trials", type=int, default=None, help="trials per driver (default 200, 30 with --quick)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    trials = args.trials or (30 if args.quick else 200)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.search.postgres import start_postgres

    pg = start_postgres()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
            results = bench(args.drivers, trials, Path(tmp), pg)
    finally:
        pg.stop()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.drivers} drivers x {trials} stub trials on one shared study (trainer stubbed: storage only)")
    for r in results.values():
        print(
            f"{r['storage']:>9}: {r['trials_per_s']:7.1f} trials/s  ask p50 {r['ask_p50_ms']:6.1f} ms "
            f"p99 {r['ask_p99_ms']:6.1f} ms  tell p50 {r['tell_p50_ms']:6.1f} ms p99 {r['tell_p99_ms']:6.1f} ms  "
            f"lost {r['lost']}  duplicated {r['duplicated']}  orphans {r['orphans']}  "
            f"({r['in_exactly_one_directory']} of {r['trials']} in exactly one directory)"
        )


if __name__ == "__main__":
    main()
