"""The MoE sublayer's cost grows with experts_top_k, not with n_experts.

    .venv/bin/python benchmarks/bench_moe.py [--tokens 4096] [--d-model 256] [--threads N] [--device cpu|cuda]

One FFN sublayer, forward + backward on `tokens` tokens of width `d_model`. The reference is a
dense FFN of the same expert width, measured in the same run; every MoE row prints its time as a
ratio to it. With top-k routing each token runs through k experts, so the ideal ratio is about k
(plus the router and the sort / gather / scatter overhead) whatever n_experts is; a layer that ran
every expert under a mask would cost about n_experts. A second reference shows that masked way
for the largest n_experts, so the gap is visible.

Each expert costs a fixed dispatch overhead too (one gather, two or three small matmuls and one
scatter-add, forward and backward), so with few tokens per expert (tokens x top_k / n_experts) the
time does grow with n_experts; the default sizes keep at least 64 tokens per expert. Times are the
minimum over `--reps` after two warm-up calls (the least disturbed run on a shared machine).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from archscale.spaces import ArchConfig
from archscale.trainers.model import FFN
from archscale.trainers.moe import MoE


def timed_ms(fn, device: torch.device, reps: int) -> float:
    """Minimum wall milliseconds of fn() over `reps` calls, after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return min(times)


def fwd_bwd(layer: nn.Module, x: torch.Tensor):
    def run() -> None:
        layer.zero_grad(set_to_none=True)
        layer(x).sum().backward()

    return run


class MaskedMoE(nn.Module):
    """The plain way this layer avoids: every expert on every token, weighted by a (mostly zero) gate."""

    def __init__(self, moe: MoE):
        super().__init__()
        self.moe = moe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.moe
        probs = m.router(x).float().softmax(-1)
        gates, chosen = probs.topk(m.top_k, dim=-1)
        dense_gates = torch.zeros_like(probs).scatter(-1, chosen, gates)  # (B, T, E), zero off the top k
        return sum(dense_gates[..., e, None] * expert(x) for e, expert in enumerate(m.experts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="CPU torch threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d = args.d_model
    base = ArchConfig(d_model=d, n_heads=4, d_ff=2 * d, ffn_activation="gelu", n_layers=1)
    x = torch.randn(1, args.tokens, d, device=device)
    print(
        f"{args.tokens} tokens, d_model={d}, expert width {2 * d}, gelu, fwd+bwd on {device} "
        f"({torch.get_num_threads()} threads), min of {args.reps}"
    )

    dense_ms = timed_ms(fwd_bwd(FFN(base).to(device), x), device, args.reps)
    print(f"{'dense FFN (reference)':<28} {dense_ms:8.2f} ms   x1.00")
    largest = None
    for top_k in (1, 2, 4):
        for n_experts in (4, 16, 64):
            arch = ArchConfig(**{**base.to_dict(), "ffn_type": "moe", "n_experts": n_experts, "experts_top_k": top_k})
            moe = MoE(arch, lambda width, arch=arch: FFN(arch, d_ff=width)).to(device)
            ms = timed_ms(fwd_bwd(moe, x), device, args.reps)
            print(f"{f'moe {n_experts:>3} experts, top-{top_k}':<28} {ms:8.2f} ms   x{ms / dense_ms:5.2f}")
            if top_k == 1:
                largest = moe
    masked_ms = timed_ms(fwd_bwd(MaskedMoE(largest), x), device, max(1, args.reps // 2))
    print(
        f"{'masked 64 experts, top-1':<28} {masked_ms:8.2f} ms   x{masked_ms / dense_ms:5.2f}  (every expert computed)"
    )


if __name__ == "__main__":
    main()
