"""Fused Triton kernels (gated activations, RMSNorm) with plain-torch fallbacks.

Three layers, each tested against plain torch (tests/trainers/test_kernels.py, on CPU under
TRITON_INTERPRET=1): Triton kernels (`gated.py`, `rmsnorm.py`) -> `torch.autograd.Function`s ->
the two functions below, which the model calls when `enabled_for(x)` is true.

Enabled for a tensor when: it is a CUDA tensor, Triton imports, the environment does not say
`ARCHSCALE_KERNELS=0`, and the trainer has not switched them off (`set_enabled(False)`, from
`TrainConfig.kernels`).
"""

from __future__ import annotations

import functools
import os

_enabled = True


def set_enabled(flag: bool) -> None:
    """Switch the fused kernels on or off for this process (the trainer sets it from TrainConfig.kernels)."""
    global _enabled
    _enabled = bool(flag)


@functools.cache
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # ImportError, or a broken install on an unsupported platform
        return False
    return True


def enabled_for(x) -> bool:  # noqa: ANN001
    """True when `x` should go through a fused kernel (CUDA tensor, Triton present, not disabled)."""
    return (
        _enabled
        and getattr(x, "is_cuda", False)
        and os.environ.get("ARCHSCALE_KERNELS", "1") != "0"
        and triton_available()
    )


def fused_gated_activation(name: str, gate, up):  # noqa: ANN001
    """act(gate) * up for name in swiglu | geglu | reglu, one pass forward and one backward."""
    from archscale.trainers.kernels.gated import gated_activation

    return gated_activation(name, gate, up)


def fused_rms_norm(x, weight, eps: float):  # noqa: ANN001
    """x / rms(x) * weight over the last dimension, one pass forward and one backward."""
    from archscale.trainers.kernels.rmsnorm import rms_norm

    return rms_norm(x, weight, eps)
