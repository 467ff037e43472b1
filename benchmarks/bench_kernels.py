"""Fused Triton kernels against torch eager and torch.compile, on a GPU.

    .venv/bin/python benchmarks/bench_kernels.py [--dtype bf16|fp32]

For each kernel and shape it prints the time of forward and forward+backward, the achieved
bytes/s (the minimum bytes each pass must move: gated fwd reads gate and up and writes out, bwd
reads grad_out, gate, up and writes two gradients; RMSNorm fwd reads x and writes y, bwd reads x
and grad_y and writes grad_x), that as a share of the copy bandwidth measured in the same run
(`y.copy_(x)`), and the speed ratio against torch eager and torch.compile of the same formula.
These kernels are bandwidth-bound, so share-of-copy-bandwidth is the number to read.
Where no CUDA GPU (or no Triton) is present it prints that it skipped and exits 0.
"""

from __future__ import annotations

import argparse
import sys

import torch


def _skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA GPU visible to torch"
    try:
        import triton  # noqa: F401
    except ImportError:
        return "triton is not installed"
    return None


def bench(fn, reps: int = 50) -> float:
    """Median milliseconds of fn() (triton.testing.do_bench: warm-up, L2 flush, CUDA events)."""
    from triton.testing import do_bench

    return do_bench(fn, rep=reps, return_mode="median")


def copy_bandwidth(dtype: torch.dtype) -> float:
    x = torch.empty(64 * 2**20, dtype=dtype, device="cuda")
    y = torch.empty_like(x)
    ms = bench(lambda: y.copy_(x))
    return 2 * x.numel() * x.element_size() / (ms * 1e-3)


def _fwd_bwd(fn, inputs, dout):
    def run():
        out = fn(*inputs)
        torch.autograd.grad(out, inputs, dout)

    return run


def report(label: str, nbytes: int, times: dict[str, float], copy_bps: float) -> None:
    fused = times["fused"]
    bps = nbytes / (fused * 1e-3)
    print(
        f"{label:<42} fused {fused:7.3f} ms  {bps / 1e9:7.1f} GB/s ({bps / copy_bps:4.0%} of copy)  "
        f"x{times['eager'] / fused:4.2f} vs eager  x{times['compile'] / fused:4.2f} vs compile",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    args = ap.parse_args()
    reason = _skip_reason()
    if reason:
        print(f"bench_kernels: skipped ({reason}); the fused kernels only run on CUDA tensors")
        return 0

    from archscale.trainers.kernels import gated, rmsnorm

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    es = torch.empty((), dtype=dtype).element_size()
    copy_bps = copy_bandwidth(dtype)
    print(
        f"{torch.cuda.get_device_name()}, {args.dtype}; copy bandwidth {copy_bps / 1e9:.1f} GB/s "
        f"(read + write, y.copy_(x) of 64M elements)"
    )

    for name in ("swiglu", "geglu", "reglu"):
        eager = lambda g, u, _n=name: gated.reference(_n, g, u)  # noqa: E731
        compiled = torch.compile(eager)
        fused = lambda g, u, _n=name: gated.gated_activation(_n, g, u)  # noqa: E731
        for rows, width in ((8192, 2048), (16384, 5632)):
            gate, up = (torch.randn(rows, width, device="cuda", dtype=dtype, requires_grad=True) for _ in range(2))
            dout = torch.randn(rows, width, device="cuda", dtype=dtype)
            n = rows * width
            fns = {"fused": fused, "eager": eager, "compile": compiled}
            report(
                f"{name} fwd {rows}x{width}",
                3 * n * es,
                {k: bench(lambda f=f, gate=gate, up=up: f(gate, up)) for k, f in fns.items()},
                copy_bps,
            )
            report(
                f"{name} fwd+bwd {rows}x{width}",
                8 * n * es,
                {k: bench(_fwd_bwd(f, (gate, up), dout)) for k, f in fns.items()},
                copy_bps,
            )

    eager = lambda x, w: rmsnorm.reference(x, w, 1e-6)  # noqa: E731
    compiled = torch.compile(eager)
    fused = lambda x, w: rmsnorm.rms_norm(x, w, 1e-6)  # noqa: E731
    for rows, width in ((16384, 1024), (8192, 4096), (4096, 8192)):
        x = torch.randn(rows, width, device="cuda", dtype=dtype, requires_grad=True)
        w = torch.ones(width, device="cuda", dtype=dtype, requires_grad=True)
        dout = torch.randn(rows, width, device="cuda", dtype=dtype)
        n = rows * width
        fns = {"fused": fused, "eager": eager, "compile": compiled}
        report(
            f"rmsnorm fwd {rows}x{width}",
            2 * n * es,
            {k: bench(lambda f=f, x=x, w=w: f(x, w)) for k, f in fns.items()},
            copy_bps,
        )
        report(
            f"rmsnorm fwd+bwd {rows}x{width}",
            5 * n * es,
            {k: bench(_fwd_bwd(f, (x, w), dout)) for k, f in fns.items()},
            copy_bps,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
