"""Fused Triton kernels (gated activations, RMSNorm) with plain-torch fallbacks.

Three layers, each tested against plain torch (tests/trainers/test_kernels.py, on CPU under
TRITON_INTERPRET=1): Triton kernels (`gated.py`, `rmsnorm.py`) -> `torch.autograd.Function`s ->
the two functions below.

Whether a module uses them is decided when the model is built, not per process:
`build_model(arch, fused_kernels=...)` (from `TrainConfig.kernels`) gives RMSNorm and the gated
activations in `FUSED_GATED_ACTIVATIONS` a `fused` flag, after `allowed(...)` applies the
`ARCHSCALE_KERNELS=0` escape. In `forward`, a fused module then calls the kernel only when
`runs_on(x)`: a CUDA tensor, with Triton importable.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

# Gated activations with a fused kernel: the keys of `gated.ACTS` (a test asserts they agree),
# repeated here so that building a model does not import Triton.
FUSED_GATED_ACTIVATIONS: tuple[str, ...] = ("swiglu", "geglu", "reglu")


def allowed(requested: bool) -> bool:
    """Whether a model built now may use fused kernels: requested, and not `ARCHSCALE_KERNELS=0`."""
    return bool(requested) and os.environ.get("ARCHSCALE_KERNELS", "1") != "0"


@functools.cache
def triton_available() -> bool:
    try:
        import triton
        import triton.language  # noqa: F401
    except Exception:  # ImportError, or a broken install on an unsupported platform
        return False
    return True


def runs_on(x: Tensor) -> bool:
    """True when the kernels can run on `x`: a CUDA tensor, with Triton importable (checked once)."""
    return getattr(x, "is_cuda", False) and triton_available()


def fused_gated_activation(name: str, gate, up):
    """act(gate) * up for name in swiglu | geglu | reglu, one pass forward and one backward."""
    from archscale.trainers.kernels.gated import gated_activation

    return gated_activation(name, gate, up)


def fused_rms_norm(x, weight, eps: float):
    """x / rms(x) * weight over the last dimension, one pass forward and one backward."""
    from archscale.trainers.kernels.rmsnorm import rms_norm

    return rms_norm(x, weight, eps)
