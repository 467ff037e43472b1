"""Measurements taken at each evaluation besides the loss: FFN activation sparsity and per-block
gradient norms; and the run's self-description (versions, git revision, hardware)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from archscale.trainers.model import Activation

# A hidden activation counts as zero when |a| < ZERO_THRESHOLD. 1e-3 rather than 1e-6: it is
# safely above bf16 rounding noise of small values on GPU, relu-family zeros count exactly, and
# smooth activations count as "off" only deep in their negative tail (gelu below about -3.9,
# silu below about -9.5; a gated unit when either factor is near zero).
ZERO_THRESHOLD = 1e-3


class ActivationStats:
    """Forward hooks on every FFN `Activation` module, active inside a `with` block.

    zero_frac: share of all FFN hidden activations (every unit, position and layer) with |a| < threshold.
    dead_frac: share of FFN units (hidden channels of every FFN) never above threshold on any
    position seen while active.
    """

    def __init__(self, model: nn.Module, threshold: float = ZERO_THRESHOLD):
        self.modules = [m for m in model.modules() if isinstance(m, Activation)]
        self.threshold = threshold
        self.zeros = 0
        self.total = 0
        self.ever_active: dict[int, torch.Tensor] = {}
        self._handles: list = []

    def _hook(self, index: int):
        def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
            near_zero = output.detach().abs() < self.threshold  # (B, T, d_ff)
            self.zeros += int(near_zero.sum())
            self.total += near_zero.numel()
            active = (~near_zero).reshape(-1, near_zero.shape[-1]).any(0)  # (d_ff,)
            prev = self.ever_active.get(index)
            self.ever_active[index] = active if prev is None else prev | active

        return hook

    def __enter__(self) -> ActivationStats:
        self._handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self.modules)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    @property
    def zero_frac(self) -> float | None:
        return self.zeros / self.total if self.total else None

    @property
    def dead_frac(self) -> float | None:
        if not self.ever_active:
            return None
        units = sum(a.numel() for a in self.ever_active.values())
        dead = sum(int((~a).sum()) for a in self.ever_active.values())
        return dead / units


def grad_norm_by_block(model: nn.Module) -> list[float]:
    """L2 norm of the gradients of each block's parameters (before clipping), one per block."""
    norms = []
    for block in model.blocks:
        grads = [p.grad for p in block.parameters() if p.grad is not None]
        if not grads:
            norms.append(0.0)
            continue
        norms.append(float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))))
    return norms


def versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("archscale", "numpy", "triton", "tokenizers", "polars"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def git_revision() -> str | None:
    """HEAD of the checkout this package is imported from (with "+dirty" if modified), or None."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "."],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "") if rev else None
    except (OSError, subprocess.SubprocessError):
        return None


def hardware(device: torch.device, threads: int) -> dict:
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": threads,
        "device": str(device),
        "python_executable": sys.executable,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_bytes=props.total_memory, gpu_count=torch.cuda.device_count())
    return info
