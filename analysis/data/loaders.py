"""Lazy loading of results directories.

A results directory (written by `archscale.search`) holds ``trials.parquet`` (one row per trial),
``curves.parquet`` (one row per trial and evaluation), ``run.json`` and the Optuna study storage.
Everything here returns polars ``LazyFrame`` objects: nothing is read until ``.collect()``.

Conventions
-----------
* Every frame carries a ``run`` column naming the directory it came from (the directory's name,
  or its full path when two loaded directories share a name), so ``(run, trial_id)`` is the key:
  trial ids restart at 0 in every search.
* A search that is still running is fine: either file may be missing (an empty frame with the
  expected schema stands in), columns the writer has not produced yet are added as nulls, and
  ``running`` rows (null ``eval_loss``) are kept unless a ``status`` filter drops them. Writers
  replace files by rename, so a file is always either the old or the new version.
* ``load`` joins curves to trials: one row per (run, trial, evaluation). Curve columns keep their
  names (``tokens``, ``eval_loss``, ...); trial-level columns with the same name are prefixed with
  ``final_`` (``final_eval_loss`` is the trial's final evaluation). A trial with no curve rows yet
  appears once, with null curve columns.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from archscale.spaces.record import ABSENT_COLUMN_VALUES, ARCH_COLUMNS, STATUSES, curve_schema, trial_schema

PathLike = str | os.PathLike[str]

#: The columns of trials.parquet and curves.parquet with their dtypes (defined once, in
#: `archscale.spaces.record`); columns a file lacks are added as typed nulls.
TRIAL_SCHEMA: dict[str, pl.DataType] = trial_schema()
CURVE_SCHEMA: dict[str, pl.DataType] = curve_schema()

#: ``ArchConfig`` fields that are numeric settings rather than choices an effect compares: data
#: (``vocab_size``, ``seq_len``), widths the budget solver derives (``d_ff``, ``expert_d_ff``),
#: constants of one variant (``rope_theta``, ``t5_*``, ``expert_capacity_factor``) and the base
#: shape a parametrisation transfers from (``base_*``).
NOT_AXES: frozenset[str] = frozenset(
    {"vocab_size", "seq_len", "d_ff", "expert_d_ff", "expert_capacity_factor", "rope_theta", "t5_num_buckets",
     "t5_max_distance", "base_d_model", "base_n_layers"}
)  # fmt: skip


def _arch_axes() -> tuple[str, ...]:
    """Every architecture axis a search can vary, derived from the record: each variant table's
    field (``variants.BY_FIELD``: activation, FFN kind, norm, placement, position, block layout,
    embedding scale, parametrisation), every switch and choice of ``ArchConfig`` (its str and bool
    fields) and its integer shape fields (heads, depth, width, experts, window, ...). The MoE
    axes are null for dense rows, so they compare MoE settings only; a null ``attention_window``
    (full attention) is a value of its own (``NULL_VALUES``)."""
    return tuple(name for name in ARCH_COLUMNS if name not in NOT_AXES)


#: Categorical architecture axes a search can vary (used by effects and importance).
ARCH_AXES: tuple[str, ...] = _arch_axes()

#: Axes whose null is a choice of its own, with the name effects give it (other axes' nulls mean
#: "not applicable": a dense model's n_experts, a full-attention model's global_every).
NULL_VALUES: dict[str, str] = {"attention_window": "full"}


def _as_dirs(dir_or_dirs: PathLike | Iterable[PathLike]) -> list[Path]:
    if isinstance(dir_or_dirs, (str, os.PathLike)):
        return [Path(dir_or_dirs)]
    return [Path(d) for d in dir_or_dirs]


def run_names(dirs: Sequence[Path]) -> list[str]:
    """The ``run`` value for each directory: its name, or its full path when names collide."""
    names = [d.resolve().name for d in dirs]
    if len(set(names)) == len(names):
        return names
    return [str(d.resolve()) for d in dirs]


def _legacy_lengths(column: str) -> pl.Expr:
    """``eval_loss_by_length`` as written before it became a list of structs: a JSON object string
    such as ``{"128": 2.1, "256": null}`` (results directories from archscale 0.1)."""
    pair = r'"(\d+)"\s*:\s*(null|[-+0-9.eE]+|NaN|Infinity)'
    return (
        pl.col(column)
        .str.extract_all(pair)
        .list.eval(
            pl.struct(
                context_length=pl.element().str.extract(pair, 1).cast(pl.Int64),
                eval_loss=pl.element().str.extract(pair, 2).cast(pl.Float64, strict=False),
            )
        )
        .alias(column)
    )


def _conform(lf: pl.LazyFrame, schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    """Add missing expected columns (as typed nulls, or what they meant before they existed:
    `ABSENT_COLUMN_VALUES`, which also fills their nulls: rows an older writer carried over when a
    resumed run added the column) and cast present ones to the expected dtype."""
    present = lf.collect_schema()
    if present.get("eval_loss_by_length") == pl.String and "eval_loss_by_length" in schema:
        lf = lf.with_columns(_legacy_lengths("eval_loss_by_length"))
        present = lf.collect_schema()
    exprs = [
        pl.col(name).cast(dtype, strict=False)
        if name in present
        else pl.lit(ABSENT_COLUMN_VALUES.get(name), dtype).alias(name)
        for name, dtype in schema.items()
        if name not in present or present[name] != dtype
    ]
    lf = lf.with_columns(exprs) if exprs else lf
    legacy = [pl.col(name).fill_null(value) for name, value in ABSENT_COLUMN_VALUES.items() if name in schema]
    return lf.with_columns(legacy) if legacy else lf


def _scan(path: Path, schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    if path.exists():
        return _conform(pl.scan_parquet(path), schema)
    return pl.LazyFrame(schema=schema)


def _filter_status(lf: pl.LazyFrame, status: str | Sequence[str] | None) -> pl.LazyFrame:
    if status is None:
        return lf
    wanted = [status] if isinstance(status, str) else list(status)
    unknown = sorted(set(wanted) - set(STATUSES))
    if unknown:
        raise ValueError(f"unknown status {unknown}; allowed: {', '.join(STATUSES)}")
    return lf.filter(pl.col("status").is_in(wanted))


def load_trials(
    dir_or_dirs: PathLike | Iterable[PathLike], *, status: str | Sequence[str] | None = None
) -> pl.LazyFrame:
    """Scan ``trials.parquet`` of one or more results directories (one row per trial).

    ``status`` keeps only trials in that status (or statuses), e.g. ``"completed"``.
    """
    dirs = _as_dirs(dir_or_dirs)
    frames = [
        _scan(d / "trials.parquet", TRIAL_SCHEMA).with_columns(run=pl.lit(name))
        for d, name in zip(dirs, run_names(dirs), strict=True)
    ]
    trials = pl.concat(frames, how="diagonal_relaxed") if frames else pl.LazyFrame(schema=TRIAL_SCHEMA)
    return _filter_status(trials, status)


def load_curves(dir_or_dirs: PathLike | Iterable[PathLike]) -> pl.LazyFrame:
    """Scan ``curves.parquet`` of one or more results directories (one row per evaluation)."""
    dirs = _as_dirs(dir_or_dirs)
    frames = [
        _scan(d / "curves.parquet", CURVE_SCHEMA).with_columns(run=pl.lit(name))
        for d, name in zip(dirs, run_names(dirs), strict=True)
    ]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.LazyFrame(schema=CURVE_SCHEMA)


def load(dir_or_dirs: PathLike | Iterable[PathLike], *, status: str | Sequence[str] | None = None) -> pl.LazyFrame:
    """Trials joined to their curves: one row per (run, trial_id, evaluation).

    Trial-level columns that share a name with a curve column get a ``final_`` prefix.
    Trials without curve rows yet are kept (left join) with null curve columns.
    """
    trials = load_trials(dir_or_dirs, status=status)
    curves = load_curves(dir_or_dirs)
    clashing = (set(trials.collect_schema()) & set(curves.collect_schema())) - {"run", "trial_id"}
    trials = trials.rename({name: f"final_{name}" for name in sorted(clashing)})
    return trials.join(curves, on=["run", "trial_id"], how="left", maintain_order="left")


def load_run(dir: PathLike) -> dict[str, Any]:
    """``run.json`` of a results directory, or ``{}`` when it is absent or mid-write."""
    path = Path(dir) / "run.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def length_losses(trials: pl.LazyFrame) -> pl.LazyFrame:
    """Long form of ``eval_loss_by_length``: one row per (run, trial_id, context_length).

    The column is a list of ``{context_length, eval_loss}`` structs; null losses (the model could
    not be evaluated at that length) are kept as nulls.
    """
    if trials.collect_schema().get("eval_loss_by_length") == pl.String:
        trials = trials.with_columns(_legacy_lengths("eval_loss_by_length"))
    return (
        trials.select("run", "trial_id", "label", "arch_id", "eval_loss_by_length")
        .explode("eval_loss_by_length")
        .drop_nulls("eval_loss_by_length")
        .unnest("eval_loss_by_length")
    )


def redact_url(url: str) -> str:
    """Hide the password of a database URL (``scheme://user:secret@host`` -> ``user:***@``)."""
    import re

    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def _relocated(path: Path, dir: Path) -> Path:
    """A storage path written on another machine: fall back to the same file name inside ``dir``."""
    if path.exists() or not (dir / path.name).exists():
        return path
    return dir / path.name


def study_storage(dir: PathLike, storage: str | None = None) -> Any:
    """The Optuna storage recorded in ``run.json`` (RDB URL or ``.journal`` file path), or ``storage``
    when given (a URL whose password ``run.json`` does not keep: ``postgresql://user:***@...``).

    Raises ``FileNotFoundError`` when there is no storage to open. Passwords are never shown.
    """
    import optuna

    dir = Path(dir)
    storage = storage or load_run(dir).get("storage")
    if storage and ":***@" in storage:
        raise FileNotFoundError(
            f"{dir / 'run.json'}: the study storage {storage} is recorded without its password; "
            "pass the URL with --storage, or give the password through PGPASSWORD / ~/.pgpass"
        )
    if not storage:
        raise FileNotFoundError(f"{dir / 'run.json'}: no 'storage' recorded (is this a results directory?)")
    if storage.endswith(".journal") and "://" not in storage:
        path = _relocated(Path(storage), dir)
        if not path.exists():
            raise FileNotFoundError(f"journal storage {path} does not exist")
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    if storage.startswith("sqlite:///"):
        path = _relocated(Path(storage.removeprefix("sqlite:///")), dir)
        if not path.exists():
            raise FileNotFoundError(f"sqlite storage {path} does not exist")
        storage = f"sqlite:///{path}"
    try:
        return optuna.storages.RDBStorage(storage)
    except Exception as exc:  # the message may contain the URL; never show the password
        raise RuntimeError(f"cannot open storage {redact_url(storage)}: {type(exc).__name__}") from None


def open_study(dir: PathLike, storage: str | None = None) -> Any:
    """Load the search's ``optuna.Study`` from the storage named in ``DIR/run.json``.

    ``storage`` is an Optuna RDB URL (``sqlite:///abs/path/study.db``, PostgreSQL, ...) or the
    absolute path of a journal file ending in ``.journal``. When the directory was copied from
    another machine and the absolute path no longer exists, a file of the same name inside ``dir``
    is used. The study name comes from ``run.json`` (``study_name``), or is the storage's only study.
    """
    import optuna

    storage = study_storage(dir, storage)
    name = load_run(dir).get("study_name")
    if not name:
        names = optuna.get_all_study_names(storage)
        if len(names) != 1:
            raise ValueError(f"{Path(dir) / 'run.json'}: no study_name and the storage holds {len(names)} studies")
        name = names[0]
    return optuna.load_study(study_name=name, storage=storage)
