"""Solve and count 1,000 sampled architectures from every shipped space; goal: under 2 s each.

The reference is the plain approach: counting each candidate by building the real model on the
meta device and summing parameters, for a handful of samples, extrapolated per architecture.
"""

import random
import time

from archscale.spaces.space import load_space, shipped_spaces


def main() -> None:
    for name, path in shipped_spaces().items():
        space = load_space(path)
        rng = random.Random(0)
        start = time.perf_counter()
        for _ in range(1000):
            space.sample_random(rng)
        solve_s = time.perf_counter() - start

        import torch

        from archscale.trainers import build_model

        start = time.perf_counter()
        for i in range(5):
            with torch.device("meta"):
                sum(p.numel() for p in build_model(space.sample_random(i).arch).parameters())
        torch_count_s = (time.perf_counter() - start) / 5
        print(
            f"{name:12s} 1000 solved+counted in {solve_s:.3f} s ({solve_s / 1000:.2e} s/arch) | "
            f"one torch meta-build count: {torch_count_s:.3e} s | ratio {torch_count_s / (solve_s / 1000):.0f}x "
            f"| {'ok' if solve_s < 2 else 'SLOWER THAN GOAL'}"
        )


if __name__ == "__main__":
    main()
