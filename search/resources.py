"""Resources per trial: fractional GPUs from an analytic memory estimate, so small models share a GPU.

The estimate for one training process (bytes), following Korthikanti et al. 2022 for activations:
    weights + grads + AdamW moments (fp32): 16 x params
    activations (bf16, no recomputation):   n_layers x (34 x B x T x d_model + 5 x n_heads x T^2 x B)
    logits and their gradient (fp32):       2 x 4 x B x T x vocab
    CUDA context and allocator slack:       CUDA_CONTEXT_BYTES
The fraction is that over the GPU's memory, rounded up to 1/16 and doubled for safety margin
while tiny (below 1/8), capped at 1.
"""

from __future__ import annotations

import math
import os
from typing import Any

from archscale.spaces import ArchConfig, count

CUDA_CONTEXT_BYTES = 600 * 2**20  # measured range for a torch process: 300-600 MiB; take the high end
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
