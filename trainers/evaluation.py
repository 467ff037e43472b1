"""Evaluation: mean validation loss over fixed batches, at the training context and at longer ones."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from archscale.spaces import ArchConfig
from archscale.spaces.training import TrainConfig
from archscale.trainers.metrics import ActivationStats
from archscale.trainers.source import IGNORE, DataSource

LENGTH_FACTORS = (1, 2, 4)  # length generalisation: eval at 1x, 2x, 4x seq_len after training


def eval_rows(batch_size: int, seq_len: int, vocab_size: int) -> int:
    """Rows per evaluation batch: no gradients are kept, so use batches of up to 2^22 logits
    (16 MB in float32) when that is more than the training batch; fewer Python steps per eval."""
    return max(
        1,
        min(batch_size, 2**22 // (seq_len * vocab_size))
        if batch_size * seq_len * vocab_size > 2**22
        else max(batch_size, 2**22 // (seq_len * vocab_size)),
    )


def evaluate(
    model: nn.Module, batches: list, device: torch.device, autocast, stats: ActivationStats | None = None
) -> float:
    """Mean loss in nats per target token over fixed batches."""
    was_training = model.training
    model.eval()
    total, n = torch.zeros((), dtype=torch.float64, device=device), 0
    with torch.no_grad(), stats or contextlib.nullcontext():
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast():
                logits = model(x)
            total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="sum")
            n += int((y != IGNORE).sum())
    model.train(was_training)
    return float(total) / max(1, n)


def loss_by_length(
    model: nn.Module,
    source: DataSource,
    arch: ArchConfig,
    cfg: TrainConfig,
    device: torch.device,
    autocast,
    eval_loss: float | None,
) -> dict[str, float | None]:
    """Validation loss at each of `LENGTH_FACTORS` x seq_len, keyed by the length as a string.
    1x is `eval_loss` (already measured); a length the position coding cannot run, or that the
    validation split is too short for, is None."""
    by_length: dict[str, float | None] = {}
    for factor in LENGTH_FACTORS:
        length = arch.seq_len * factor
        if factor == 1:
            by_length[str(length)] = eval_loss
        elif model.pos.max_len is not None and length > model.pos.max_len:
            by_length[str(length)] = None
        else:
            try:
                batches = source.val_batches(
                    length, cfg.eval_tokens, eval_rows(cfg.batch_size, length, arch.vocab_size), seed=0
                )
            except ValueError:  # validation split shorter than this context: not measurable
                by_length[str(length)] = None
                continue
            by_length[str(length)] = evaluate(model, batches, device, autocast)
    return by_length
