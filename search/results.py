"""The results directory: the contract between search and analysis (see DESIGN.md).

    DIR/trials.parquet   one row per trial; its columns are `archscale.spaces.record.TRIAL_COLUMNS`
    DIR/curves.parquet   long form: one row per (trial, evaluation); `record.CURVE_COLUMNS`
    DIR/run.json         what produced it: resolved space, budget, arguments, versions, git, hardware,
                         the Optuna `storage` and `study_name`
    DIR/optuna.journal   the Optuna study (default storage; optuna-dashboard opens it while running)
    DIR/ray/             the Ray Tune experiment folder (restorable)

Every file is written whole to a temp file and renamed over the old one, as trials report and
finish, so a reader sees either the old or the new file, never half of one. A writer opened on an
existing directory loads what is there first: results already written are never lost.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from archscale.spaces.errors import UserError
from archscale.spaces.record import CURVE_COLUMNS, TrialStatus, curve_schema, trial_schema

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(UserError):
    """The results directory's disk is full: the file being written keeps its last complete version."""

    def __init__(self, path: Path, out: Path | None = None):
        out = out or path.parent
        kept = f"the last complete {path.name} is kept" if path.suffix else "every file already written is kept"
        super().__init__(
            f"{out}: no space left on the device while writing {path}; {kept}. "
            f"Free some space, then run `archscale search resume {out}` to finish the search."
        )
        self.path = path


def no_space(error: BaseException | None) -> bool:
    """Whether `error` (or what caused it) is a full disk or an exceeded quota. Polars and pyarrow
    raise their own errors with the OS message inside ("... (os error 28)"), so the text counts too."""
    while error is not None:
        if isinstance(error, DiskFullError) or (isinstance(error, OSError) and error.errno in NO_SPACE):
            return True
        text = str(error)
        if any(os.strerror(code) in text or f"os error {code}" in text for code in NO_SPACE):
            return True
        error = error.__cause__ or error.__context__
    return False


def disk_nearly_full(path: Path, min_free_bytes: int = 1 << 20) -> bool:
    """Less than `min_free_bytes` free where `path` lives: some writers report a full disk vaguely
    (polars: "Invalid thrift: transport error")."""
    import shutil

    try:
        return shutil.disk_usage(path).free < min_free_bytes
    except OSError:
        return False


def write_atomically(path: Path, write) -> None:
    """Call `write(tmp_path)`, then rename the temp file over `path`. A full disk raises
    DiskFullError and leaves `path` as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise (DiskFullError(path) if e.errno in NO_SPACE else e) from e
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, Exception) and (no_space(e) or disk_nearly_full(path.parent)):
            raise DiskFullError(path) from e
        raise


def write_json(path: Path, obj: Any) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=str)))


class ResultsWriter:
    """Keeps trials and curves in memory and rewrites the parquet files atomically.

    Thread-safe (Ray Tune callbacks and the driver may call it from different threads). Curves are
    de-duplicated on (trial_id, tokens), keeping the latest, so a trial restarted from a
    checkpoint shows once.
    """

    def __init__(self, out: Path, min_interval_s: float = 1.0):
        import polars as pl

        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.trials: dict[int, dict[str, Any]] = {}
        self.curves: dict[tuple[int, int], dict[str, Any]] = {}
        self.min_interval_s = min_interval_s
        self._last_write = 0.0
        self._lock = threading.RLock()
        if (self.out / "trials.parquet").exists():
            for row in pl.read_parquet(self.out / "trials.parquet").to_dicts():
                self.trials[int(row["trial_id"])] = row
        if (self.out / "curves.parquet").exists():
            for row in pl.read_parquet(self.out / "curves.parquet").to_dicts():
                self.curves[(int(row["trial_id"]), int(row["tokens"]))] = row

    # ---- updates ------------------------------------------------------------------------------
    def add_trial(self, row: dict[str, Any]) -> None:
        with self._lock:
            self.trials[int(row["trial_id"])] = row
            self.flush()

    def add_curve(self, trial_id: int, metrics: dict[str, Any]) -> None:
        with self._lock:
            row = {f: metrics.get(f) for f in CURVE_COLUMNS}
            row["trial_id"] = trial_id
            self.curves[(trial_id, int(metrics["tokens"]))] = row
            t = self.trials.get(trial_id)
            if t is not None and t["status"] == TrialStatus.RUNNING:
                t.update(
                    tokens=int(metrics["tokens"]),
                    compute=metrics.get("compute"),
                    eval_loss=metrics.get("eval_loss"),
                    tokens_per_s=metrics.get("tokens_per_s"),
                    wall_s=metrics.get("wall_s"),
                )
            if time.monotonic() - self._last_write >= self.min_interval_s:
                self.flush()

    def finish_trial(self, trial_id: int, status: TrialStatus, **fields: Any) -> None:
        """Record a trial's final status (and its final result fields); unknown trials are ignored."""
        with self._lock:
            if trial_id in self.trials:
                self.trials[trial_id].update(status=TrialStatus(status).value, **fields)
            self.flush()

    # ---- files --------------------------------------------------------------------------------
    def flush(self) -> None:
        import polars as pl

        with self._lock:
            self._last_write = time.monotonic()
            if self.trials:
                rows = [self.trials[k] for k in sorted(self.trials)]
                frame = pl.DataFrame(rows, schema=trial_schema(), strict=False)
                write_atomically(self.out / "trials.parquet", frame.write_parquet)
            if self.curves:
                rows = [self.curves[k] for k in sorted(self.curves)]
                frame = pl.DataFrame(rows, schema=curve_schema(), strict=False)
                write_atomically(self.out / "curves.parquet", frame.write_parquet)


def summarize(out: str | Path, wall_s: float | None = None) -> dict[str, Any]:
    """Counts by status and the best completed trials, from the results files."""
    import polars as pl

    out = Path(out)
    path = out / "trials.parquet"
    if not path.exists():
        return {"out": str(out), "trials": 0, "by_status": {}, "best": []}
    trials = pl.read_parquet(path)
    by_status = dict(trials.group_by("status").len().iter_rows())
    best = (
        trials.filter(pl.col("status") == "completed")
        .sort("eval_loss")
        .select("trial_id", "label", "seed", "eval_loss", "params", "tokens")
        .head(5)
        .to_dicts()
    )
    summary = {"out": str(out), "trials": trials.height, "by_status": by_status, "best": best}
    if wall_s is not None:
        summary["wall_s"] = round(wall_s, 1)
    return summary


def describe_environment() -> dict[str, Any]:
    """Versions, git revision and hardware, for run.json (every run describes itself)."""
    import importlib.metadata as md
    import subprocess

    versions = {}
    for pkg in ("archscale", "torch", "ray", "optuna", "polars", "altair"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    versions["python"] = platform.python_version()
    try:
        git = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).resolve().parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        git = None
    hardware = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    return {"versions": versions, "git_revision": git, "hardware": hardware}
