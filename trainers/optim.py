"""The optimizer and its learning-rate schedule: AdamW over the parametrisation's groups, warmup then cosine or WSD."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from archscale.spaces.training import TrainConfig
from archscale.trainers.parametrization import param_groups


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the parametrisation's groups (`archscale.trainers.parametrization.param_groups`):
    one group per parameter role, each with its own `lr_scale`, weight decay and epsilon. Under the
    standard parametrisation every scale is 1: matrices decay; norms, biases, embedding tables and
    the output head don't (unless `decay_embeddings`), tied or untied alike, so that axis is not
    confounded with regularisation. Each step the loop sets a group's lr to the schedule's x `lr_scale`."""
    groups = param_groups(model, cfg)
    extra = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **extra)


@dataclass(frozen=True)
class Schedule:
    """Learning rate by optimizer step: linear warmup, then cosine or warmup-stable-decay (WSD)."""

    peak: float
    total_steps: int
    warmup_steps: int
    kind: str
    min_ratio: float
    decay_frac: float

    def __call__(self, step: int) -> float:
        lo = self.peak * self.min_ratio
        if step < self.warmup_steps:
            return self.peak * (step + 1) / self.warmup_steps
        if self.kind == "cosine":
            # steps run 0 .. total_steps - 1: the last one is at the minimum
            progress = (step - self.warmup_steps) / max(1, self.total_steps - 1 - self.warmup_steps)
            return lo + (self.peak - lo) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        decay_steps = max(1, round(self.decay_frac * self.total_steps))
        decay_start = max(self.warmup_steps, self.total_steps - decay_steps)
        if step < decay_start:
            return self.peak
        return self.peak - (self.peak - lo) * min(
            1.0, (step - decay_start + 1) / max(1, self.total_steps - decay_start)
        )
