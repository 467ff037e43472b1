"""Hyperparameter transfer, measured: does the best learning rate stay put as the model grows?

    .venv/bin/python benchmarks/bench_transfer.py [--json] [--tokens 120000] [--jobs 2]

For width, two models 4x apart in d_model (head_dim fixed, so n_heads grows; FFN ratio fixed);
for depth, two models 4x apart in n_layers. Each is trained on `pystdlib` at every learning rate
of a log-spaced grid with 2 seeds, under `standard` and under the parametrisation made for that
axis (`mup` for width, `completep` for depth; base shapes = the small model's). The optimal lr of
a size is the minimum of a parabola through the seed-averaged final eval loss against log lr at
the best grid point and its two neighbours (the grid point itself at an edge). Printed: the
optimum at each size and the ratio large / small. Goal: the optimum moves by at most 1.5x under
mup / completep and by more under standard.

Sized for a shared 2-core CPU (~15-25 minutes): tiny models, 120K tokens. The plain reference is
the standard parametrisation, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

LRS = [1.25e-3, 2.5e-3, 5e-3, 1e-2, 2e-2, 4e-2]  # log-spaced, factor 2
SEEDS = (0, 1)
BASE = dict(
    vocab_size=256,
    seq_len=64,
    d_model=32,
    n_layers=2,
    n_heads=2,
    head_dim=16,
    d_ff=128,
    position="rope",
    norm="rmsnorm",
    ffn_activation="gelu",
)
AXES = {  # axis -> (parametrisation made for it, small size, large size)
    "width": ("mup", dict(d_model=32, n_heads=2, d_ff=128), dict(d_model=128, n_heads=8, d_ff=512)),
    "depth": (
        "completep",
        dict(d_model=64, n_heads=4, d_ff=256, n_layers=2),
        dict(d_model=64, n_heads=4, d_ff=256, n_layers=8),
    ),
}


def arch_for(axis: str, parametrization: str, size: dict) -> dict:
    small = AXES[axis][1]
    fields = {**BASE, **size, "parametrization": parametrization}
    if parametrization != "standard":
        fields["base_d_model"] = small["d_model"]
    if parametrization == "completep":
        fields["base_n_layers"] = small.get("n_layers", BASE["n_layers"])
    return fields


def run_one(job: tuple) -> dict:
    axis, parametrization, which, lr, seed, tokens = job
    import torch

    from archscale.trainers import TrainConfig, train

    torch.set_num_threads(1)
    size = AXES[axis][1 if which == "small" else 2]
    arch = arch_for(axis, parametrization, size)
    cfg = TrainConfig(lr=lr, tokens=tokens, batch_size=16, seed=seed, eval_tokens=16_384, threads=1)
    t0 = time.perf_counter()
    s = train(arch, cfg, "pystdlib")
    loss = s["eval_loss"] if s["status"] == "completed" else None
    return dict(
        axis=axis,
        parametrization=parametrization,
        size=which,
        d_model=arch["d_model"],
        n_layers=arch["n_layers"],
        lr=lr,
        seed=seed,
        eval_loss=loss,
        status=s["status"],
        wall_s=time.perf_counter() - t0,
    )


def optimal_lr(points: dict[float, float | None]) -> float:
    """argmin over lr of the seed-averaged loss, refined by a parabola in log lr through its neighbours."""
    lrs = sorted(points)
    losses = [points[lr] if points[lr] is not None else math.inf for lr in lrs]
    i = min(range(len(lrs)), key=lambda k: losses[k])
    if i in (0, len(lrs) - 1) or not all(math.isfinite(losses[k]) for k in (i - 1, i, i + 1)):
        return lrs[i]
    x = [math.log(lrs[k]) for k in (i - 1, i, i + 1)]
    y = [losses[k] for k in (i - 1, i, i + 1)]
    # vertex of the parabola through three equally spaced points
    h = x[1] - x[0]
    denom = y[0] - 2 * y[1] + y[2]
    shift = 0.5 * h * (y[0] - y[2]) / denom if denom > 0 else 0.0
    return math.exp(x[1] + max(-h, min(h, shift)))


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for axis, (made_for, _, _) in AXES.items():
        for parametrization in ("standard", made_for):
            optimum = {}
            for which in ("small", "large"):
                mine = [
                    r for r in rows if (r["axis"], r["parametrization"], r["size"]) == (axis, parametrization, which)
                ]
                by_lr = {}
                for lr in LRS:
                    losses = [r["eval_loss"] for r in mine if r["lr"] == lr]
                    by_lr[lr] = None if None in losses or not losses else sum(losses) / len(losses)
                optimum[which] = optimal_lr(by_lr)
                optimum[f"{which}_losses"] = by_lr
                best = min((lr for lr in LRS if by_lr[lr] is not None), key=lambda lr: by_lr[lr], default=None)
                optimum[f"{which}_at_edge"] = best in (LRS[0], LRS[-1])  # the true optimum may lie beyond
            ratio = optimum["small"] / optimum["large"]
            out.append(
                dict(
                    axis=axis,
                    parametrization=parametrization,
                    lr_opt_small=optimum["small"],
                    lr_opt_large=optimum["large"],
                    shift=max(ratio, 1 / ratio),  # how far the optimum moved, as a factor >= 1
                    at_edge=optimum["small_at_edge"] or optimum["large_at_edge"],  # then shift is a lower bound
                    ratio_small_over_large=ratio,
                    losses_small=optimum["small_losses"],
                    losses_large=optimum["large_losses"],
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--tokens", type=int, default=120_000)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--from-json", help="re-print the tables of a saved --json output instead of training")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        return report(saved["runs"], saved["tokens"], saved["wall_s"], args.json)
    jobs = [
        (axis, parametrization, which, lr, seed, args.tokens)
        for axis, (made_for, _, _) in AXES.items()
        for parametrization in ("standard", made_for)
        for which in ("small", "large")
        for lr in LRS
        for seed in SEEDS
    ]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run_one, jobs))
    report(rows, args.tokens, time.perf_counter() - t0, args.json)


def report(rows: list[dict], tokens: int, wall: float, as_json: bool) -> None:
    summary = summarise(rows)
    if as_json:
        print(
            json.dumps(
                {
                    "tokens": tokens,
                    "lrs": LRS,
                    "seeds": len(SEEDS),
                    "wall_s": wall,
                    "summary": summary,
                    "runs": rows,
                }
            )
        )
        return
    print(f"{len(rows)} runs of {tokens:,} tokens in {wall:.0f}s; lrs {LRS}, {len(SEEDS)} seeds")
    print(f"{'axis':<6} {'parametrization':<16} {'sizes':<16} {'lr* small':>10} {'lr* large':>10} {'moved':>7}")
    for s in summary:
        small, large = AXES[s["axis"]][1], AXES[s["axis"]][2]
        key = "d_model" if s["axis"] == "width" else "n_layers"
        sizes = f"{key} {small[key]}->{large[key]}"
        print(
            f"{s['axis']:<6} {s['parametrization']:<16} {sizes:<16} {s['lr_opt_small']:>10.2e} "
            f"{s['lr_opt_large']:>10.2e} {s['shift']:>6.2f}x"
            + ("  (an optimum at the grid's edge: at least this)" if s["at_edge"] else "")
        )
    for s in summary:
        cells = "  ".join(
            f"{lr:.2g}: {s['losses_small'][lr] or float('nan'):.3f}/{s['losses_large'][lr] or float('nan'):.3f}"
            for lr in LRS
        )
        print(f"  {s['axis']} {s['parametrization']} loss small/large by lr: {cells}")


if __name__ == "__main__":
    main()
