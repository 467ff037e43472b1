"""The results directory: the contract between search and analysis (see DESIGN.md).

    DIR/trials.parquet   one row per trial (status completed | pruned | failed | running)
    DIR/curves.parquet   long form: one row per (trial, evaluation)
    DIR/run.json         what produced it: resolved space, budget, arguments, versions, git, hardware,
                         the Optuna `storage` and `study_name`
    DIR/optuna.journal   the Optuna study (default storage; optuna-dashboard opens it while running)
    DIR/ray/             the Ray Tune experiment folder (restorable)

Every file is written whole to a temp file and renamed over the old one, as trials report and
finish, so a reader sees either the old or the new file, never half of one. A writer opened on an
existing directory loads what is there first: results already written are never lost.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from archscale.spaces import ArchConfig

TRIAL_STATUSES = ("completed", "pruned", "failed", "running")
ARCH_FIELDS = tuple(ArchConfig.model_fields)
TRAIN_FIELDS = ("lr", "warmup_tokens", "weight_decay", "batch_size")
COUNT_FIELDS = ("params", "non_embedding_params", "flops_per_token", "kv_cache_bytes_per_token")
RESULT_FIELDS = ("tokens", "target_tokens", "compute", "eval_loss", "eval_bpb", "tokens_per_s", "wall_s", "error",
                 "eval_loss_by_length")
CURVE_FIELDS = ("trial_id", "tokens", "compute", "step", "train_loss", "eval_loss", "lr", "grad_norm", "tokens_per_s",
                "wall_s", "ffn_zero_frac", "ffn_dead_frac", "grad_norm_by_layer")


def write_atomically(path: Path, write) -> None:  # noqa: ANN001
    """Call `write(tmp_path)`, then rename the temp file over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=str)))


def trial_row(trial_id: int, seed: int, arch: dict | None, train: dict, counts: dict | None, *, group: str | None,
              target_tokens: int, status: str = "running", error: str | None = None) -> dict[str, Any]:
    """The trials.parquet row of a trial that has just been created."""
    row: dict[str, Any] = {"trial_id": trial_id, "status": status, "seed": seed, "group": group}
    a = ArchConfig(**arch) if arch else None
    row["arch_id"] = a.arch_id if a else None
    row["label"] = a.label if a else None
    row.update({f: (arch or {}).get(f) for f in ARCH_FIELDS})
    row.update({f: train.get(f) for f in TRAIN_FIELDS})
    row.update({f: (counts or {}).get(f) for f in COUNT_FIELDS})
    row.update({f: None for f in RESULT_FIELDS})
    row.update(target_tokens=target_tokens, tokens=0, compute=0.0, error=error)
    return row


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

    def update_trial(self, trial_id: int, **fields: Any) -> None:
        with self._lock:
            if trial_id in self.trials:
                self.trials[trial_id].update(fields)

    def add_curve(self, trial_id: int, metrics: dict[str, Any]) -> None:
        with self._lock:
            row = {f: metrics.get(f) for f in CURVE_FIELDS}
            row["trial_id"] = trial_id
            self.curves[(trial_id, int(metrics["tokens"]))] = row
            t = self.trials.get(trial_id)
            if t is not None and t["status"] == "running":
                t.update(tokens=int(metrics["tokens"]), compute=metrics.get("compute"), eval_loss=metrics.get("eval_loss"),
                         tokens_per_s=metrics.get("tokens_per_s"), wall_s=metrics.get("wall_s"))
            if time.monotonic() - self._last_write >= self.min_interval_s:
                self.flush()

    def finish_trial(self, trial_id: int, status: str, **fields: Any) -> None:
        assert status in TRIAL_STATUSES, status
        with self._lock:
            if trial_id in self.trials:
                self.trials[trial_id].update(status=status, **fields)
            self.flush()

    # ---- files --------------------------------------------------------------------------------
    def flush(self) -> None:
        import polars as pl

        trial_schema, curve_schema = _schemas()
        with self._lock:
            self._last_write = time.monotonic()
            if self.trials:
                rows = [self.trials[k] for k in sorted(self.trials)]
                frame = pl.DataFrame(rows, schema_overrides=trial_schema, infer_schema_length=None, strict=False)
                write_atomically(self.out / "trials.parquet", frame.write_parquet)
            if self.curves:
                rows = [self.curves[k] for k in sorted(self.curves)]
                frame = pl.DataFrame(rows, schema_overrides=curve_schema, infer_schema_length=None, strict=False)
                write_atomically(self.out / "curves.parquet", frame.write_parquet)


@functools.cache
def _schemas():
    import polars as pl

    trial = {"trial_id": pl.Int64, "status": pl.String, "seed": pl.Int64, "group": pl.String, "arch_id": pl.String,
             "label": pl.String, "tokens": pl.Int64, "target_tokens": pl.Int64, "compute": pl.Float64,
             "eval_loss": pl.Float64, "eval_bpb": pl.Float64, "tokens_per_s": pl.Float64, "wall_s": pl.Float64,
             "error": pl.String, "eval_loss_by_length": pl.String, "lr": pl.Float64, "warmup_tokens": pl.Int64,
             "weight_decay": pl.Float64, "batch_size": pl.Int64, "params": pl.Int64, "non_embedding_params": pl.Int64,
             "flops_per_token": pl.Float64, "kv_cache_bytes_per_token": pl.Int64}
    for name, field in ArchConfig.model_fields.items():
        ann = field.annotation
        trial[name] = (pl.Boolean if ann is bool else pl.Float64 if ann is float
                       else pl.Int64 if ann in (int, int | None) else pl.String)
    curve = {"trial_id": pl.Int64, "tokens": pl.Int64, "compute": pl.Float64, "step": pl.Int64,
             "train_loss": pl.Float64, "eval_loss": pl.Float64, "lr": pl.Float64, "grad_norm": pl.Float64,
             "tokens_per_s": pl.Float64, "wall_s": pl.Float64, "ffn_zero_frac": pl.Float64,
             "ffn_dead_frac": pl.Float64, "grad_norm_by_layer": pl.List(pl.Float64)}
    return trial, curve


def summarize(out: str | Path, wall_s: float | None = None) -> dict[str, Any]:
    """Counts by status and the best completed trials, from the results files."""
    import polars as pl

    out = Path(out)
    path = out / "trials.parquet"
    if not path.exists():
        return {"out": str(out), "trials": 0, "by_status": {}, "best": []}
    trials = pl.read_parquet(path)
    by_status = dict(trials.group_by("status").len().iter_rows())
    best = (trials.filter(pl.col("status") == "completed").sort("eval_loss")
            .select("trial_id", "label", "seed", "eval_loss", "params", "tokens").head(5).to_dicts())
    summary = {"out": str(out), "trials": trials.height, "by_status": by_status, "best": best}
    if wall_s is not None:
        summary["wall_s"] = round(wall_s, 1)
    return summary
