"""Training throughput: `archscale.trainers.train` against a minimal plain-PyTorch loop.

    .venv/bin/python benchmarks/bench_train.py [--steps 40] [--repeats 3] [--sizes 100k,1m,3m]

Same architecture, batch (32 x 128 tokens), optimizer (AdamW), clipping and thread count for both;
the plain loop reads random crops from the corpus held in one in-memory tensor and does nothing
else. For `train()` two numbers are printed: its own tokens_per_s (optimizer steps only, which is
what it reports) and end-to-end tokens / wall time of the whole call (setup, one final evaluation
of 4K tokens, and the final length-generalisation evals included). Each side runs `--repeats`
times, interleaved, and the best run counts (the machine may be shared). Goal: ratio >= 1.0.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from archscale.spaces import ArchConfig, count
from archscale.trainers import TrainConfig, build_model, train
from archscale.trainers.data import open_data

SIZES = {
    "100k": dict(d_model=48, n_layers=2, n_heads=4, d_ff=192),
    "1m": dict(d_model=128, n_layers=4, n_heads=4, d_ff=512),
    "3m": dict(d_model=192, n_layers=5, n_heads=6, d_ff=768),
}
COMMON = dict(seq_len=128, position="rope", norm="rmsnorm", ffn_activation="swiglu")
BATCH = 32


def plain_loop(arch: ArchConfig, corpus: torch.Tensor, steps: int, warmup: int, threads: int) -> float:
    """Tokens/s of the simplest correct loop: crops, forward, loss, backward, clip, AdamW step."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(arch)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    T = arch.seq_len
    offsets = torch.arange(T + 1)
    g = torch.Generator().manual_seed(0)
    t0 = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            t0 = time.perf_counter()
        starts = torch.randint(0, len(corpus) - T - 1, (BATCH,), generator=g)
        rows = corpus[starts[:, None] + offsets].long()
        x, y = rows[:, :-1], rows[:, 1:]
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
    return steps * BATCH * T / (time.perf_counter() - t0)


def archscale_train(arch: ArchConfig, steps: int, threads: int) -> tuple[float, float]:
    tokens = steps * BATCH * arch.seq_len
    cfg = TrainConfig(
        tokens=tokens,
        batch_size=BATCH,
        lr=3e-3,
        eval_every_tokens=tokens,
        eval_tokens=4096,
        checkpoint_every_tokens=0,
        threads=threads,
    )
    t0 = time.perf_counter()
    s = train(arch, cfg, "pystdlib")
    return s["tokens_per_s"], tokens / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="100k,1m,3m")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()

    src = open_data("pystdlib")
    corpus = torch.from_numpy(np.array(src._train))  # the plain loop holds the corpus in memory
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {BATCH} x 128 tokens, {args.steps} steps, "
        f"best of {args.repeats}; load average {os.getloadavg()[0]:.1f} at start"
    )
    print(
        f"{'size':>5} {'params':>9} {'plain tok/s':>12} {'train() tok/s':>14} {'ratio':>6} "
        f"{'end-to-end tok/s':>17} {'ratio':>6}"
    )
    for size in args.sizes.split(","):
        arch = ArchConfig(**SIZES[size], **COMMON)
        plain, ours, e2e = [], [], []
        for _ in range(args.repeats):
            plain.append(plain_loop(arch, corpus, args.steps, warmup=3, threads=args.threads))
            a, b = archscale_train(arch, args.steps, args.threads)
            ours.append(a)
            e2e.append(b)
        p, o, e = max(plain), max(ours), max(e2e)
        print(
            f"{size:>5} {count(arch).params:>9,} {p:>12,.0f} {o:>14,.0f} {o / p:>6.2f} {e:>17,.0f} {e / p:>6.2f}",
            flush=True,
        )
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
