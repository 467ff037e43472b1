"""The GPU check's kernel items: archscale's Triton kernels compiled on CUDA, against their torch references.

For each fused kernel (SwiGLU, GeGLU, ReGLU, RMSNorm), on bf16 inputs: the output and every input
gradient against the plain-torch reference computed in float32 from the same rounded inputs, with
the tolerances of tests/trainers/test_kernels.py (one bf16 rounding of the output and a little for
sums); then the time of forward and of forward+backward (`triton.testing.do_bench`, median) and the
bytes each must move (as benchmarks/bench_kernels.py counts them) over the copy bandwidth measured
in the same run: these kernels are bandwidth-bound, so that share is the number to read.
Without CUDA the items are skipped: the kernels are tested on CPU under TRITON_INTERPRET=1 by the
test suite, and interpreting them here would measure nothing about a GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from archscale.trainers.gpu_check_report import NEEDS_CUDA, CheckItem
from archscale.trainers.kernels import FUSED_GATED_ACTIVATIONS, triton_available

KERNELS = (*FUSED_GATED_ACTIVATIONS, "rmsnorm")
# bf16 against a float32 reference (tests/trainers/test_kernels.py's TOL; d_weight sums many rows)
TOLERANCE = {"default": (2e-2, 2e-2), "d_weight": (3e-2, 5e-2)}  # (rtol, atol)


def _grads(fn: Callable, inputs: tuple[torch.Tensor, ...], dout: torch.Tensor) -> tuple[torch.Tensor, ...]:
    out = fn(*inputs)
    return (out, *torch.autograd.grad(out, inputs, dout))


def _leaf(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.detach().to(dtype).clone().requires_grad_(True)


def worst_violation(got: torch.Tensor, want: torch.Tensor, rtol: float, atol: float) -> float:
    """max |got - want| / (atol + rtol |want|): at most 1 means within tolerance (torch.isclose's rule)."""
    got, want = got.float(), want.float()
    return float(((got - want).abs() / (atol + rtol * want.abs())).max())


def _kernel_case(name: str, quick: bool):
    """(fused fn, reference fn, bf16 inputs, dout, bytes fwd, bytes fwd+bwd, gradient names)."""
    from archscale.trainers.kernels import gated, rmsnorm

    g = torch.Generator(device="cuda").manual_seed(0)
    rows, width = (4096, 4096) if quick else (8192, 5632)
    es = 2  # bf16 bytes
    n = rows * width
    if name == "rmsnorm":
        x = torch.randn(rows, width, device="cuda", generator=g) * 2 + 0.5
        w = torch.randn(width, device="cuda", generator=g) + 1
        dout = torch.randn(rows, width, device="cuda", generator=g, dtype=torch.bfloat16)
        return (
            lambda a, b: rmsnorm.rms_norm(a, b, 1e-6),
            lambda a, b: rmsnorm.reference(a, b, 1e-6),
            (x, w),
            dout,
            2 * n * es,
            5 * n * es,
            ("d_x", "d_weight"),
        )
    gate = torch.randn(rows, width, device="cuda", generator=g) * 3
    up = torch.randn(rows, width, device="cuda", generator=g)
    dout = torch.randn(rows, width, device="cuda", generator=g, dtype=torch.bfloat16)
    return (
        lambda a, b: gated.gated_activation(name, a, b),
        lambda a, b: gated.reference(name, a, b),
        (gate, up),
        dout,
        3 * n * es,
        8 * n * es,
        ("d_gate", "d_up"),
    )


def kernel_item(name: str, quick: bool, copy_bytes_per_s: float) -> CheckItem:
    """One kernel: correct forward and backward against torch, and its share of the copy bandwidth."""
    from triton.testing import do_bench

    fused, reference, inputs, dout, bytes_fwd, bytes_both, grad_names = _kernel_case(name, quick)
    got = _grads(fused, tuple(_leaf(t, torch.bfloat16) for t in inputs), dout)
    want = _grads(reference, tuple(_leaf(t.to(torch.bfloat16), torch.float32) for t in inputs), dout.float())
    violations = {}
    for what, a, b in zip(("out", *grad_names), got, want, strict=True):
        rtol, atol = TOLERANCE.get(what, TOLERANCE["default"])
        violations[what] = worst_violation(a, b, rtol, atol)
    leaves = tuple(_leaf(t, torch.bfloat16) for t in inputs)
    fwd_ms = do_bench(lambda: fused(*leaves), return_mode="median")
    both_ms = do_bench(lambda: torch.autograd.grad(fused(*leaves), leaves, dout), return_mode="median")
    share_fwd = bytes_fwd / (fwd_ms * 1e-3) / copy_bytes_per_s
    share_both = bytes_both / (both_ms * 1e-3) / copy_bytes_per_s
    numbers = {
        **{f"{k}_worst_over_tolerance": v for k, v in violations.items()},
        "fwd_ms": fwd_ms,
        "fwd_bwd_ms": both_ms,
        "fwd_share_of_copy_bandwidth": share_fwd,
        "fwd_bwd_share_of_copy_bandwidth": share_both,
    }
    over = [k for k, v in violations.items() if not v <= 1.0]
    if over:
        reason = f"{name}: {', '.join(over)} outside bf16 tolerance (worst {max(violations.values()):.3g} x)"
        return CheckItem(f"kernels.{name}", "fail", reason=reason, numbers=numbers, verdict=reason)
    verdict = (
        f"compiled Triton matches torch (fwd, bwd); {share_fwd:.0%} of copy bandwidth forward, "
        f"{share_both:.0%} forward+backward"
    )
    return CheckItem(f"kernels.{name}", "pass", numbers=numbers, verdict=verdict)


def kernel_items(device: torch.device, quick: bool, copy_bytes_per_s: float | None) -> list[CheckItem]:
    if device.type != "cuda":
        reason = f"{NEEDS_CUDA} (the kernels run on CUDA tensors; the test suite interprets them on CPU)"
        return [CheckItem.skipped(f"kernels.{k}", reason) for k in KERNELS]
    if not triton_available():
        reason = "triton is not importable on this CUDA node"
        return [CheckItem(f"kernels.{k}", "fail", reason=reason, verdict=reason) for k in KERNELS]
    items = []
    for name in KERNELS:
        try:
            items.append(kernel_item(name, quick, copy_bytes_per_s or float("nan")))
        except Exception as e:  # one kernel failing to compile must not hide the others
            items.append(CheckItem.failed(f"kernels.{name}", e))
    return items
