"""The trial record: the columns of `trials.parquet` and `curves.parquet`, defined once.

`search` writes these files and `analysis` reads them; both import the definitions here, so a
column cannot exist on one side only. The trial columns are derived, not listed: every
`ArchConfig` field, every recorded `TrainConfig` field, every `Counts` field, plus the identity,
plan, transfer and result columns below. A new architecture or training field therefore reaches
`trials.parquet` (and analysis) with no change here.

Types are named with plain Python types so this module stays import-light; `polars_schema()`
maps them to polars dtypes when polars is wanted.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from typing import Any, Literal, get_args, get_origin

from archscale.spaces import transfer
from archscale.spaces.arch import ArchConfig
from archscale.spaces.counting import LEGACY_FLOPS_CONVENTION, Counts
from archscale.spaces.training import RECORDED_TRAIN_FIELDS, TrainConfig


class TrialStatus(str, enum.Enum):
    """A trial's state in `trials.parquet`. Decided once, from the trial's last report."""

    RUNNING = "running"  # proposed and not finished (or still training)
    COMPLETED = "completed"  # trained to its full token budget
    PRUNED = "pruned"  # stopped early by the scheduler (tokens says how far it got)
    FAILED = "failed"  # infeasible, raised, diverged or its worker died; `error` says which

    def __str__(self) -> str:
        return self.value


STATUSES: tuple[str, ...] = tuple(s.value for s in TrialStatus)

#: One evaluation at a longer context: the element type of `eval_loss_by_length`.
LENGTH_LOSS = {"context_length": int, "eval_loss": float}

# ---- columns that are not derived from a config ------------------------------------------------
IDENTITY_COLUMNS: dict[str, Any] = {
    "trial_id": int,  # the Optuna trial number (unique within a results directory)
    "status": str,  # a TrialStatus value
    "seed": int,  # training seed (init and batch order)
    "group": str,  # a study's architecture name; null for searches
    "arch_id": str,  # hash of every ArchConfig field: equal for seed replicas
    "label": str,  # short human name of the architecture
}
PLAN_COLUMNS: dict[str, Any] = {
    "planned_kind": str,  # what a study's size names (params, non_embedding_params, flops_per_token)
    "planned_size": float,  # the size a study asked for (the realised count is within its tolerance)
    "target_tokens": int,  # training tokens the trial was asked to reach
    "ladder_id": int,  # a ladder search's architecture (its trial number in the ladder study)
    "rung": int,  # the trial's rung in that ladder: 0 = the smallest size
    "lr_factor": float,  # a study's lr sweep: this trial's lr / the transferred lr (1 = it); null without a sweep
}
TRANSFER_COLUMNS: dict[str, Any] = {  # derived from the architecture's parametrisation (`variants`)
    "parametrization_caveat": str,  # why its rules are not derived for this architecture; null when they are
    "lr_hidden": float,  # peak lr of the d_model-fan-in matrices: lr x 1/m_d_model under mup / completep, else lr
}
SHAPE_COLUMNS: dict[str, Any] = {  # the achieved shape, derived from the architecture (spaces/shape_rule.py)
    "ffn_ratio": float,  # d_ff / d_model (a gated FFN under budget.match_gated: 2/3 of the budget's ratio)
    "aspect_ratio": float,  # d_model / n_layers
}
RESULT_COLUMNS: dict[str, Any] = {
    "tokens": int,  # training tokens seen so far (= target_tokens when completed)
    "compute": float,  # training FLOPs so far = flops_per_token x tokens (under the row's flops_convention)
    "epochs": float,  # tokens / the training split's tokens (`epochs`); null for unlimited (synthetic) data
    "eval_loss": float,  # last validation loss, nats per target token
    "eval_bpb": float,  # the same in bits per byte (text data only)
    "train_loss": float,  # mean training loss since the previous evaluation
    "tokens_per_s": float,
    "workers": int,  # training processes of the trial (--workers-per-trial; 1 for a one-process trial)
    "tokens_per_s_per_worker": float,  # tokens_per_s / workers
    "mfu": float,  # model FLOP/s (dense convention) over ARCHSCALE_PEAK_FLOPS; null without that peak
    "wall_s": float,
    "error": str,  # why a trial failed (or was pruned by an interruption)
    "run_status": str,  # how its training run ended (spaces.outcome.RunStatus: completed, stopped, diverged, failed)
    "eval_loss_by_length": list[LENGTH_LOSS],  # type: ignore[valid-type]  # at 1x, 2x, 4x seq_len
    "attention_backend": str,  # sdpa | flex | materialised: how the trainer ran attention (trainers/attention.py)
}

CURVE_COLUMNS: dict[str, Any] = {
    "trial_id": int,
    "tokens": int,
    "compute": float,
    "epochs": float,
    "step": int,
    "train_loss": float,
    "eval_loss": float,
    "lr": float,
    "grad_norm": float,
    "tokens_per_s": float,
    "wall_s": float,
    "ffn_zero_frac": float,
    "ffn_dead_frac": float,
    "grad_norm_by_layer": list[float],
    # router health of ffn_type=moe, over the training steps since the previous evaluation, mean over
    # MoE sublayers (`archscale.trainers.moe.router_health`); null for dense FFNs
    "router_aux_loss": float,  # load-balancing loss: 1 = balanced, n_experts = collapsed onto one expert
    "expert_load_max_over_mean": float,  # busiest expert's token share / mean share (1 = balanced)
    "expert_token_share": list[float],  # each expert's share of the token-expert assignments
    "dropped_token_frac": float,  # assignments dropped by expert_capacity_factor (0 when dropless)
}


#: What a column means in results written before it existed (a loader fills it in, not null): FLOPs
#: were counted `dense` until `flops_convention` was recorded.
ABSENT_COLUMN_VALUES: dict[str, Any] = {"flops_convention": LEGACY_FLOPS_CONVENTION}

#: From this many epochs on, a trial counts as trained on repeated data. Batches are uniform random
#: crops, so a run of E epochs has read before about `repeated_share(E)` = 1 - (1 - exp(-E)) / E of
#: its tokens: 11% at E = 0.25 (a 2.8M-token run on pystdlib's ~11M-token training split), 33% at E = 0.9.
REPEATED_DATA_EPOCHS = 0.25


def epochs(tokens: int | float, train_split_tokens: int | None) -> float | None:
    """Tokens seen / the training split's tokens; None when the data is unlimited (no split size)."""
    if not train_split_tokens:
        return None
    return tokens / train_split_tokens


def repeated_share(trial_epochs: float) -> float:
    """The expected share of a run's tokens it had already read, with uniform random crops."""
    return 1 - (1 - math.exp(-trial_epochs)) / trial_epochs if trial_epochs > 0 else 0.0


def repeats_data(trial_epochs: float | None) -> bool:
    """Whether a trial of `trial_epochs` epochs trained on repeated data: at least `REPEATED_DATA_EPOCHS`
    (analysis compares the `epochs` column with that constant, the same rule on a whole column)."""
    return trial_epochs is not None and trial_epochs >= REPEATED_DATA_EPOCHS


def _column_type(annotation: Any) -> Any:
    """int | float | str | bool for a config field's annotation (Literal -> str, X | None -> X)."""
    if get_origin(annotation) is Literal:
        return type(get_args(annotation)[0])
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return _column_type(next(a for a in get_args(annotation) if a is not type(None)))
    return annotation


def _arch_columns() -> dict[str, Any]:
    return {name: _column_type(f.annotation) for name, f in ArchConfig.model_fields.items()}


def _train_columns() -> dict[str, Any]:
    hints = typing.get_type_hints(TrainConfig)
    return {name: _column_type(hints[name]) for name in RECORDED_TRAIN_FIELDS}


def _count_columns() -> dict[str, Any]:
    hints = typing.get_type_hints(Counts)
    return {f.name: _column_type(hints[f.name]) for f in dataclasses.fields(Counts)}


ARCH_COLUMNS: dict[str, Any] = _arch_columns()
TRAIN_COLUMNS: dict[str, Any] = _train_columns()
COUNT_COLUMNS: dict[str, Any] = _count_columns()

TRIAL_COLUMNS: dict[str, Any] = {
    **IDENTITY_COLUMNS,
    **PLAN_COLUMNS,
    **TRANSFER_COLUMNS,
    **SHAPE_COLUMNS,
    **ARCH_COLUMNS,
    **TRAIN_COLUMNS,
    **COUNT_COLUMNS,
    **RESULT_COLUMNS,
}
_clash = (
    set(IDENTITY_COLUMNS) | set(PLAN_COLUMNS) | set(TRANSFER_COLUMNS) | set(SHAPE_COLUMNS) | set(RESULT_COLUMNS)
) & (set(ARCH_COLUMNS) | set(TRAIN_COLUMNS) | set(COUNT_COLUMNS))
assert not _clash and not set(ARCH_COLUMNS) & set(TRAIN_COLUMNS), f"trial columns defined twice: {_clash}"


def new_trial_row(
    *,
    trial_id: int,
    seed: int,
    arch: ArchConfig | None,
    train: dict[str, Any],
    counts: Counts | None,
    target_tokens: int,
    group: str | None = None,
    planned: tuple[str, float] | None = None,
    ladder: tuple[int, int] | None = None,
    lr_factor: float | None = None,
    status: TrialStatus = TrialStatus.RUNNING,
    error: str | None = None,
) -> dict[str, Any]:
    """The row of a trial that has just been proposed: every column present (None where unknown).

    `train` holds the trial's training settings (defaults, sampled and fixed values); a field it
    leaves out is recorded with TrainConfig's default, so the row says how the trial was trained.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    row: dict[str, Any] = dict.fromkeys(TRIAL_COLUMNS)
    row.update(
        trial_id=trial_id,
        status=TrialStatus(status).value,
        seed=seed,
        group=group,
        target_tokens=target_tokens,
        tokens=0,
        compute=0.0,
        error=error,
    )
    if planned is not None:
        row.update(planned_kind=planned[0], planned_size=float(planned[1]))
    if ladder is not None:
        row.update(ladder_id=int(ladder[0]), rung=int(ladder[1]))
    if lr_factor is not None:
        row.update(lr_factor=float(lr_factor))
    if arch is not None:
        row.update(arch.to_dict(), arch_id=arch.arch_id, label=arch.label)
    row.update({name: train.get(name, defaults[name]) for name in TRAIN_COLUMNS})
    if arch is not None:
        lr = train.get("lr", defaults["lr"])
        row.update(
            parametrization_caveat=transfer.parametrization_caveat(arch),
            lr_hidden=lr * transfer.PARAMETER_ROLES["hidden_d_model"].lr(arch),
            ffn_ratio=arch.d_ff / arch.d_model,
            aspect_ratio=arch.d_model / arch.n_layers,
        )
    if counts is not None:
        row.update(counts.to_dict())
    return row


def polars_schema(columns: dict[str, Any]) -> dict[str, Any]:
    """polars dtypes for a column table (TRIAL_COLUMNS or CURVE_COLUMNS)."""
    import polars as pl

    def dtype(t: Any) -> Any:
        if get_origin(t) is list:
            (inner,) = get_args(t)
            if isinstance(inner, dict):
                return pl.List(pl.Struct({k: dtype(v) for k, v in inner.items()}))
            return pl.List(dtype(inner))
        return {bool: pl.Boolean(), int: pl.Int64(), float: pl.Float64(), str: pl.String()}[t]

    return {name: dtype(t) for name, t in columns.items()}


def trial_schema() -> dict[str, Any]:
    return polars_schema(TRIAL_COLUMNS)


def curve_schema() -> dict[str, Any]:
    return polars_schema(CURVE_COLUMNS)


def lengths_as_records(by_length: dict[Any, float | None] | list | None) -> list[dict[str, Any]]:
    """`eval_loss_by_length` as the column's list of {context_length, eval_loss}, from the trainer's
    `{"128": 2.1, "256": None}` mapping (or an already-converted list)."""
    if not by_length:
        return []
    if isinstance(by_length, list):
        return [{"context_length": int(r["context_length"]), "eval_loss": r["eval_loss"]} for r in by_length]
    return [
        {"context_length": int(k), "eval_loss": None if v is None else float(v)}
        for k, v in sorted(by_length.items(), key=lambda kv: int(kv[0]))
    ]
