"""Attention backends against the materialised reference, measured in the same run.

    .venv/bin/python benchmarks/bench_attention.py [--seq-len 1024] [--reps 5]

For each position coding and attention layout it times one forward + backward of a whole decoder
with the backend the automatic rule picks on this device (`choose_backend`), and with the
materialised reference, and prints the ratio (reference time / chosen time; > 1 = the chosen one
is faster). On CPU the choice is sdpa or materialised, so ALiBi, T5 and windows show x1.00 unless
the window is narrow, where the reference itself computes only the band. On CUDA the chosen
backend for ALiBi, T5 and windows is compiled FlexAttention, the case the backends exist for.
"""

from __future__ import annotations

import argparse
import time

import torch

from archscale.spaces import ArchConfig
from archscale.trainers.attention import choose_backend
from archscale.trainers.model import build_model


def step_s(model, idx, reps: int) -> float:
    """Median seconds of forward + backward."""
    times = []
    for _ in range(reps + 1):  # the first call warms up (and compiles on CUDA)
        if idx.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model(idx).float().square().mean().backward()
        if idx.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    T = args.seq_len
    print(f"device {device.type}, T = {T}, decoder d_model 256, 4 layers, 8 heads; forward + backward")
    for position in ("rope", "alibi", "t5_bias"):
        for window, global_every in ((None, None), (T // 8, 2)):
            arch = ArchConfig(
                vocab_size=256, seq_len=T, d_model=256, n_layers=4, n_heads=8, n_kv_heads=2, d_ff=1024,
                position=position, attention_window=window, global_every=global_every,
            )  # fmt: skip
            chosen = choose_backend(arch, device)
            idx = torch.randint(0, 256, (4, T), device=device)
            times = {}
            for backend in dict.fromkeys((chosen, "materialised")):
                torch.manual_seed(0)
                model = build_model(arch, attention_backend=backend, device=device).to(device)
                times[backend] = step_s(model, idx, args.reps)
            layout = "full" if window is None else f"window {window}, every 2nd layer global"
            print(
                f"{position:<8} {layout:<32} {chosen:<12} {times[chosen] * 1e3:8.1f} ms   "
                f"materialised {times['materialised'] * 1e3:8.1f} ms   x{times['materialised'] / times[chosen]:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
