"""Resources per trial: fractional GPUs from an analytic memory estimate, so small models share a GPU.

The estimate for one training process (bytes), following Korthikanti et al. 2022 for activations:
    weights + grads + AdamW moments (fp32): 16 x params
    activations (bf16, no recomputation):   n_layers x (34 x B x T x d_model + 5 x n_heads x T^2 x B)
    logits and their gradient (fp32):       2 x 4 x B x T x vocab
    CUDA context and allocator slack:       CUDA_CONTEXT_BYTES
The fraction is that over the GPU's memory, rounded up to 1/16 and doubled for safety margin
while tiny (below 1/8), capped at 1. A trial on several workers (`--workers-per-trial`) asks for
its CPUs and GPUs per worker (`TrialResources`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from archscale.spaces import ArchConfig, count

CUDA_CONTEXT_BYTES = 600 * 2**20  # measured range for a torch process: 300-600 MiB; take the high end
DRIVER_MEMORY_BYTES = 256 * 2**20  # a Tune trial that only drives a Ray Train run (Python, Ray, no torch)
DEFAULT_GPU_MEMORY_GB = 24.0  # override with ARCHSCALE_GPU_MEMORY_GB (the cluster's smallest GPU)


def training_memory_bytes(arch: ArchConfig, batch_size: int) -> int:
    B, T = batch_size, arch.seq_len
    params = count(arch).params
    activations = arch.n_layers * (34 * B * T * arch.d_model + 5 * arch.n_heads * T * T * B)
    logits = 2 * 4 * B * T * arch.vocab_size
    return int(16 * params + activations + logits + CUDA_CONTEXT_BYTES)


def gpu_fraction_for(config: dict[str, Any], gpu_memory_gb: float | None = None) -> float:
    if not config.get("arch"):
        return 0.0
    arch = ArchConfig(**config["arch"])
    batch = int((config.get("train") or {}).get("batch_size") or 32)
    total = (gpu_memory_gb or float(os.environ.get("ARCHSCALE_GPU_MEMORY_GB", DEFAULT_GPU_MEMORY_GB))) * 2**30
    fraction = training_memory_bytes(arch, batch) / total
    fraction = math.ceil(fraction * 16) / 16
    if fraction < 1 / 8:
        fraction *= 2
    return min(1.0, fraction)


@dataclass(frozen=True)
class TrialResources:
    """What one trial asks Ray for: `workers` training processes of (`cpus`, `gpus`) each.

    One worker: the Tune trial itself trains, and asks for (cpus, gpus). Several: the Tune trial
    is only the driver of a Ray Train run (search/trial.py) and asks for nothing; Ray Train's
    `ScalingConfig` asks for `workers` x (cpus, gpus), all at once, for the workers."""

    cpus: float = 1.0
    gpus: str = "0"  # a fraction per worker, or "auto" (from the memory estimate)
    workers: int = 1

    @property
    def cpus_total(self) -> float:
        """CPUs the whole trial holds while it trains (what bounds the concurrency)."""
        return self.cpus * self.workers

    def tune_request(self):
        """The Tune trial's own request (`tune.with_resources`): a dict, or a function of the config."""
        if self.workers > 1:  # the driver of the Train run only: no CPU (the workers ask for theirs), and
            # memory for its process, as Ray refuses a request of nothing
            return {"cpu": 0, "memory": DRIVER_MEMORY_BYTES}
        if self.gpus == "auto":
            return lambda config: {"cpu": self.cpus, "gpu": gpu_fraction_for(config)}
        g = float(self.gpus)
        return {"cpu": self.cpus, "gpu": g} if g else {"cpu": self.cpus}

    def per_worker(self, config: dict[str, Any]) -> dict[str, float]:
        """One Ray Train worker's resources (`ScalingConfig.resources_per_worker`)."""
        gpus = gpu_fraction_for(config) if self.gpus == "auto" else float(self.gpus)
        return {"CPU": self.cpus, "GPU": gpus} if gpus else {"CPU": self.cpus}
