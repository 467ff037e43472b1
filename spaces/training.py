"""`TrainConfig`: how one architecture is trained, described completely and validated (no torch).

It lives in `spaces` beside `ArchConfig` because three parts read it: `trainers` trains with it,
`search` samples its searchable fields from a space's `train:` block, and the trial record
(`archscale.spaces.record`) derives its training columns from it, so `analysis` can read them
without importing torch. Each field's metadata says whether a space may search it and whether a
trial row records it; those two lists are derived from here and nowhere else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from archscale.spaces.counting import DEFAULT_FLOPS_CONVENTION, FLOPS_CONVENTIONS
from archscale.spaces.errors import UserError

SCHEDULES = ("cosine", "wsd")
DEVICES = ("auto", "cpu", "cuda")


def _f(default: Any, *, searchable: bool = False, recorded: bool = True) -> Any:
    return field(default=default, metadata={"searchable": searchable, "recorded": recorded})


@dataclass
class TrainConfig:
    """How to train one model. Token counts are target tokens (batch rows x seq_len).

    Defaults were chosen by lr / batch sweeps of 100K-200K-parameter decoders on `pystdlib` on a
    2-core CPU (see docs/training.md); they are meant for small CPU-trained models.
    """

    lr: float = _f(3e-3, searchable=True)  # peak; the best of {1e-3, 2e-3, 3e-3, 5e-3, 1e-2} for ~100K-1M params here
    warmup_tokens: int | None = _f(None, searchable=True)  # None: 5% of `tokens`; more than `tokens` is an error
    weight_decay: float = _f(0.1, searchable=True)  # decoupled (AdamW), on matrices only; see decay_embeddings
    batch_size: int = _f(32, searchable=True)  # sequences per micro-batch (memory); tokens_per_step = optimizer batch
    tokens: int = _f(2_000_000, searchable=True, recorded=False)  # training length (recorded as target_tokens)
    seed: int = _f(0, recorded=False)  # model init and batch order (recorded as the trial's seed)
    schedule: str = _f("cosine", searchable=True)  # cosine: warmup, cosine to min_lr_ratio*lr; wsd: warmup, flat, decay
    eval_every_tokens: int | None = _f(None)  # None: tokens/10, at least 2*eval_tokens apart (always one at the end)
    eval_tokens: int = _f(32_768)  # fixed validation sample (target tokens); the same text for every architecture
    checkpoint_every_tokens: int | None = _f(None, recorded=False)  # None: at every evaluation; 0: never
    tokens_per_step: int | None = _f(None, searchable=True)  # optimizer batch; None: batch_size * seq_len
    grad_clip: float | None = _f(1.0, searchable=True)  # max global grad norm; None or 0 = no clipping
    threads: int | None = _f(None, recorded=False)  # CPU torch threads; None: the CPUs this process may use
    device: str = _f("auto", recorded=False)  # "auto": cuda if available, else cpu
    compile: bool = _f(False, recorded=False)  # torch.compile the model (worth it on CUDA for long runs)
    kernels: bool = _f(True, recorded=False)  # fused Triton kernels on CUDA (ignored on CPU)
    min_lr_ratio: float = _f(0.1, searchable=True)  # final lr / peak lr
    wsd_decay_frac: float = _f(0.2)  # wsd: share of the run spent in the final linear decay
    beta1: float = _f(0.9)
    beta2: float = _f(0.95)  # 0.95 rather than 0.999: steadier at the high lrs small models like
    decay_embeddings: bool = _f(False)  # weight decay on the embedding table (and an untied head) too
    # ffn_type=moe: loss += coef x the Switch/GShard load-balancing loss (mean over MoE sublayers);
    # 0.01 is Switch Transformer's (Fedus et al. 2022) and Mixtral's. Ignored by dense models.
    router_aux_loss_coef: float = _f(0.01, searchable=True)
    # multiplies the lr of the embedding tables (token embedding, and a tied readout with it; learned
    # position and T5 bias tables): under mup / completep their lr is width-independent (CompleteP
    # Table 1 "Embedding LR": eta_base), so a multiplier tuned at the base transfers; see docs/transfer.md
    embedding_lr_mult: float = _f(1.0, searchable=True)
    # how `compute` (and the trial's flops_per_token) charge attention's masked entries: causal or
    # dense (spaces/counting.py). A space sets it in `budget:`, so the budget and compute agree.
    flops_convention: str = _f(DEFAULT_FLOPS_CONVENTION)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            problem = value_problem(f.name, getattr(self, f.name))
            if problem is not None:
                raise UserError(f"{f.name}: {problem}")
        if self.warmup_tokens is not None and self.warmup_tokens > self.tokens:
            raise UserError(
                f"warmup_tokens: must be at most the run's {self.tokens:,} tokens (a warmup longer than "
                f"the run never reaches the peak learning rate), got {self.warmup_tokens!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise UserError(f"unknown TrainConfig field(s) {sorted(unknown)}; allowed: {sorted(names)}")
        return cls(**d)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# field -> (whether a value can ever be valid, whatever the other fields are; what is allowed)
_VALUE_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "lr": (lambda v: _number(v) and v > 0, "must be a number > 0"),
    "warmup_tokens": (lambda v: v is None or _number(v) and v >= 0, "must be >= 0 or None"),
    "weight_decay": (lambda v: _number(v) and v >= 0, "must be a number >= 0"),
    "batch_size": (lambda v: _integer(v) and v >= 1, "must be a positive integer"),
    "tokens": (lambda v: _integer(v) and v >= 1, "must be a positive integer"),
    "schedule": (lambda v: v in SCHEDULES, f"allowed values are {list(SCHEDULES)}"),
    "eval_every_tokens": (lambda v: v is None or _number(v) and v >= 1, "must be >= 1 or None"),
    "eval_tokens": (lambda v: _integer(v) and v >= 1, "must be a positive integer"),
    "checkpoint_every_tokens": (lambda v: v is None or _number(v) and v >= 0, "must be >= 0 or None"),
    "tokens_per_step": (lambda v: v is None or _number(v) and v >= 1, "must be >= 1 or None"),
    "grad_clip": (lambda v: v is None or _number(v) and v >= 0, "must be >= 0 or None (0 or None: no clipping)"),
    "threads": (lambda v: v is None or _number(v) and v >= 1, "must be >= 1 or None"),
    "device": (lambda v: v in DEVICES, f"allowed values are {list(DEVICES)}"),
    "min_lr_ratio": (lambda v: _number(v) and 0 <= v <= 1, "must be in [0, 1]"),
    "wsd_decay_frac": (lambda v: _number(v) and 0 <= v <= 1, "must be in [0, 1]"),
    "beta1": (lambda v: _number(v) and 0 <= v < 1, "must be in [0, 1)"),
    "beta2": (lambda v: _number(v) and 0 <= v < 1, "must be in [0, 1)"),
    "router_aux_loss_coef": (lambda v: _number(v) and v >= 0, "must be a number >= 0"),
    "embedding_lr_mult": (lambda v: _number(v) and v > 0, "must be a number > 0"),
    "flops_convention": (lambda v: v in FLOPS_CONVENTIONS, f"allowed values are {list(FLOPS_CONVENTIONS)}"),
}


def value_problem(name: str, value: Any) -> str | None:
    """Why `value` can never be TrainConfig field `name`, whatever the other fields are (what is
    allowed, and the value given); None if it can. `TrainConfig` and space files check with this."""
    rule = _VALUE_RULES.get(name)
    if rule is None or rule[0](value):
        return None
    return f"{rule[1]}, got {value!r}"


#: Training fields a space file's `train:` block may search (or fix).
SEARCHABLE_TRAIN_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.metadata["searchable"]
)
#: Training fields every trial row records, each as a column of the same name.
RECORDED_TRAIN_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.metadata["recorded"]
)
