"""`TrainConfig`: how one architecture is trained, described completely and validated (no torch).

It lives in `spaces` beside `ArchConfig` because three parts read it: `trainers` trains with it,
`search` samples its searchable fields from a space's `train:` block, and the trial record
(`archscale.spaces.record`) derives its training columns from it, so `analysis` can read them
without importing torch. Each field's metadata says whether a space may search it and whether a
trial row records it; those two lists are derived from here and nowhere else.
"""

from __future__ import annotations

import dataclasses
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
    # how `compute` (and the trial's flops_per_token) charge attention's masked entries: causal or
    # dense (spaces/counting.py). A space sets it in `budget:`, so the budget and compute agree.
    flops_convention: str = _f(DEFAULT_FLOPS_CONVENTION)

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str) -> UserError:
            return UserError(f"{name}: {allowed}, got {getattr(self, name)!r}")

        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"allowed values are {list(SCHEDULES)}")
        if self.device not in DEVICES:
            raise bad("device", f"allowed values are {list(DEVICES)}")
        if self.flops_convention not in FLOPS_CONVENTIONS:
            raise bad("flops_convention", f"allowed values are {list(FLOPS_CONVENTIONS)}")
        for name in ("tokens", "batch_size", "eval_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise bad(name, "must be a positive integer")
        for name in ("warmup_tokens", "checkpoint_every_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise bad(name, "must be >= 0 or None")
        for name in ("eval_every_tokens", "tokens_per_step", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise bad(name, "must be >= 1 or None")
        if not self.lr > 0:
            raise bad("lr", "must be > 0")
        if self.weight_decay < 0:
            raise bad("weight_decay", "must be >= 0")
        if not self.router_aux_loss_coef >= 0:
            raise bad("router_aux_loss_coef", "must be >= 0")
        if not 0 <= self.min_lr_ratio <= 1:
            raise bad("min_lr_ratio", "must be in [0, 1]")
        if not 0 <= self.wsd_decay_frac <= 1:
            raise bad("wsd_decay_frac", "must be in [0, 1]")
        if self.warmup_tokens is not None and self.warmup_tokens > self.tokens:
            raise bad(
                "warmup_tokens",
                f"must be at most the run's {self.tokens:,} tokens (a warmup longer than "
                "the run never reaches the peak learning rate)",
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


#: Training fields a space file's `train:` block may search (or fix).
SEARCHABLE_TRAIN_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.metadata["searchable"]
)
#: Training fields every trial row records, each as a column of the same name.
RECORDED_TRAIN_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.metadata["recorded"]
)
