"""The GPU check's device items: versions and devices, bf16 support, and the measured peaks (matmul, memory copy).

The peaks are measured here, in the same run, because MFU and the kernels' share of bandwidth are
only meaningful against what this device actually does, not a datasheet figure:
- matmul: the best of a few square matmuls (bf16 on CUDA, float32 on CPU) at 2 FLOPs per
  multiply-accumulate, timed after a warm-up;
- memory: `y.copy_(x)` of a large buffer, read + write bytes over time (the HBM bandwidth a
  bandwidth-bound kernel can hope for; the same figure benchmarks/bench_kernels.py uses).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from archscale.trainers import metrics
from archscale.trainers.gpu_check_report import CheckItem


def versions() -> dict[str, str | None]:
    """The run's versions (`trainers.metrics.versions`: python, torch, archscale, triton, ...) and torch's CUDA."""
    return {**metrics.versions(), "cuda": torch.version.cuda}


def devices_item() -> CheckItem:
    """What torch sees: the CUDA devices (name, memory, compute capability) and bf16 support."""
    found = versions()
    if not torch.cuda.is_available():
        numbers = {**found, "cuda_devices": 0, "cpu_threads": torch.get_num_threads()}
        verdict = f"CPU only (torch {found['torch']}, no CUDA device); GPU items are skipped"
        return CheckItem("devices", "pass", numbers=numbers, verdict=verdict)
    props = torch.cuda.get_device_properties(0)
    numbers = {
        **found,
        "cuda_devices": torch.cuda.device_count(),
        "device_name": props.name,
        "memory_gb": round(props.total_memory / 2**30, 2),
        "compute_capability": f"{props.major}.{props.minor}",
        "bf16": bool(torch.cuda.is_bf16_supported()),
    }
    if not numbers["bf16"]:
        reason = f"{props.name} (sm {props.major}.{props.minor}) has no bf16: training would fall back to fp32"
        return CheckItem("devices", "fail", reason=reason, numbers=numbers, verdict=reason)
    verdict = (
        f"{numbers['cuda_devices']} x {props.name} ({numbers['memory_gb']:.0f} GB, sm {numbers['compute_capability']}),"
        f" bf16 supported; torch {found['torch']}, CUDA {found['cuda']}, Triton {found['triton']}"
    )
    return CheckItem("devices", "pass", numbers=numbers, verdict=verdict)


def _best_seconds(fn: Callable[[], object], budget_s: float, sync: Callable[[], None]) -> float:
    """The fastest of repeated timed calls of `fn` (at least 3, then until `budget_s` has passed):
    the best, not the mean, because other processes on a shared machine only ever slow a call down."""
    fn()  # warm-up (kernel selection, allocation)
    sync()
    best, started, calls = float("inf"), time.perf_counter(), 0
    while calls < 3 or time.perf_counter() - started < budget_s:
        t0 = time.perf_counter()
        fn()
        sync()
        best, calls = min(best, time.perf_counter() - t0), calls + 1
    return best


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def peak_matmul_flops(device: torch.device, quick: bool) -> tuple[float, str]:
    """Measured matmul FLOP/s on `device` and the dtype measured (bf16 on CUDA, fp32 on CPU)."""
    if device.type == "cuda":
        n, dtype, inner = (4096 if quick else 8192), torch.bfloat16, 10
    else:
        n, dtype, inner = 512, torch.float32, 2
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)

    def run() -> None:
        for _ in range(inner):
            torch.mm(a, b)

    seconds = _best_seconds(run, budget_s=1.0 if quick else 3.0, sync=_sync(device))
    return 2 * n**3 * inner / seconds, "bf16" if dtype == torch.bfloat16 else "fp32"


def copy_bandwidth(device: torch.device, quick: bool) -> float:
    """Measured bytes/s of `y.copy_(x)` (read + write) on `device`."""
    elements = (64 if quick else 256) * 2**20 if device.type == "cuda" else 8 * 2**20
    x = torch.empty(elements, device=device, dtype=torch.float32)
    y = torch.empty_like(x)
    seconds = _best_seconds(lambda: y.copy_(x), budget_s=0.5 if quick else 1.0, sync=_sync(device))
    return 2 * x.numel() * x.element_size() / seconds


def peaks_item(device: torch.device, quick: bool) -> tuple[CheckItem, float, float]:
    """The peaks item and the two figures the later items divide by (matmul FLOP/s, copy bytes/s)."""
    flops, dtype = peak_matmul_flops(device, quick)
    bandwidth = copy_bandwidth(device, quick)
    numbers = {f"peak_{dtype}_matmul_tflops": flops / 1e12, "copy_bandwidth_gb_s": bandwidth / 1e9}
    where = "CUDA" if device.type == "cuda" else "CPU (fp32: the bf16 peak needs CUDA)"
    verdict = f"{where}: {flops / 1e12:.3g} TFLOP/s {dtype} matmul, {bandwidth / 1e9:.3g} GB/s copy, measured"
    return CheckItem("peaks", "pass", numbers=numbers, verdict=verdict), flops, bandwidth
