"""Hyperparameter transfer, measured: with multipliers tuned at the base, does μP's best lr stay put
across 8x width (CompleteP's across 8x depth), is wider better at the base's best lr, and does μP
at its transferred lr match standard at standard's own best lr?

    .venv/bin/python benchmarks/bench_transfer.py [--quick] [--json] [--jobs 2] [--from-json FILE]

Every point trains for real on `pystdlib` (`trainers.transfer_check.train_point`: `--steps`
optimizer steps of 16 x 64 tokens, cosine with 5% warmup, one evaluation at the end), seed-averaged.

1. Tuning at the base (mup, d_model 64, 4 heads of 16, 2 layers): an lr sweep at multipliers 1
   gives lr0; then a coordinate search at lr0, one multiplier at a time in the order output_mult,
   input_mult, attn_mult, over MULT_VALUES, each keeping the best found so far (one pass, so
   3 x len(MULT_VALUES) trainings, not a grid). The tuned multipliers are held at every size.
2. Width: mup (tuned multipliers) and standard (multipliers 1, its own lr sweep at each size) at
   every width of WIDTHS and every lr; depth: completep (tuned) and standard at every depth.
3. Reported, per axis and parametrisation (`transfer_check.summarise`, the rules of
   `archscale check transfer`): the optimum lr per size and its drift (goal <= 1.5x under mup across
   width, completep across depth); wider-is-better at the base's best grid lr and at every lr within
   2x of the base's optimum; and, per width, mup's loss at the transferred lr (the base's best grid
   lr) minus standard's best loss over the grid at that width (goal <= 0.02 nats at every width).

The full run (4 widths, 4 depths, 6 lrs, 2 seeds, 2,000 steps) is CPU-heavy; `--quick` (2 sizes,
4 lrs, 1 seed, 150 steps) runs in minutes and prints the full run's estimated time from its own
measured throughput (FLOPs per second at 1 thread per job). The plain reference is the standard
parametrisation, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

BASE = dict(
    vocab_size=256,
    seq_len=64,
    d_model=64,
    n_layers=2,
    n_heads=4,
    head_dim=16,
    d_ff=256,
    position="rope",
    norm="rmsnorm",
    ffn_activation="gelu",
)
BATCH = 16
MULTIPLIERS = ("output_mult", "input_mult", "attn_mult")
FULL = dict(
    widths=[64, 128, 256, 512],
    depths=[2, 4, 8, 16],
    lrs=[1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2],
    seeds=2,
    steps=2000,
    mult_values=[0.25, 0.5, 2.0, 4.0],
)
QUICK = dict(
    widths=[64, 128], depths=[2, 4], lrs=[2e-3, 4e-3, 8e-3, 1.6e-2], seeds=1, steps=150, mult_values=[0.5, 2.0]
)


def arch_for(parametrization: str, mults: dict[str, float], width: int | None = None, depth: int | None = None):
    from archscale.spaces import ArchConfig
    from archscale.trainers.coord import resized, with_parametrization

    base = with_parametrization(ArchConfig(**{**BASE, **mults}), parametrization)
    return resized(base, width, depth)


def run_point(job: tuple) -> dict:
    """One training: (arch fields, lr, seed, steps) -> its loss, wall time and FLOPs."""
    fields, lr, seed, steps = job
    import torch

    from archscale.spaces import ArchConfig, count
    from archscale.trainers.transfer_check import train_point

    torch.set_num_threads(1)
    arch = ArchConfig(**fields)
    t0 = time.perf_counter()
    loss = train_point(arch, lr, seed, steps, BATCH, "pystdlib", threads=1)
    flops = count(arch).flops_per_token * steps * BATCH * arch.seq_len
    return dict(lr=lr, seed=seed, eval_loss=loss, wall_s=time.perf_counter() - t0, flops=flops)


class Runner:
    """Runs batches of points on a process pool and keeps every run's row."""

    def __init__(self, jobs: int, settings: dict):
        self.pool = ProcessPoolExecutor(jobs)
        self.settings = settings
        self.rows: list[dict] = []

    def table(self, label: str, archs: dict[int, object], lrs: list[float]) -> dict[int, dict[float, float | None]]:
        """{size: {lr: seed-mean loss or None}} for every arch x lr x seed, run in parallel."""
        keys = [(size, lr, seed) for size in archs for lr in lrs for seed in range(self.settings["seeds"])]
        jobs = [(archs[size].to_dict(), lr, seed, self.settings["steps"]) for size, lr, seed in keys]
        out: dict[int, dict[float, list]] = {}
        t0 = time.perf_counter()
        for (size, lr, _), row in zip(keys, self.pool.map(run_point, jobs), strict=True):
            self.rows.append({**row, "label": label, "size": size, "d_model": archs[size].d_model})
            out.setdefault(size, {}).setdefault(lr, []).append(row["eval_loss"])
        print(f"{label}: {len(jobs)} runs in {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
        return {s: {lr: None if None in v else sum(v) / len(v) for lr, v in by.items()} for s, by in out.items()}


def tune_at_base(runner: Runner, s: dict) -> dict:
    """lr0 from a sweep at multipliers 1, then one pass of coordinate search over the multipliers at lr0."""
    from archscale.trainers.transfer_check import optimal_lr

    base = BASE["d_model"]
    sweep = runner.table("tune:lr", {base: arch_for("mup", {})}, s["lrs"])[base]
    lr0 = min((lr for lr in s["lrs"] if sweep[lr] is not None), key=lambda lr: sweep[lr])
    best, best_loss, trace = {}, sweep[lr0], []
    for name in MULTIPLIERS:
        archs = {i: arch_for("mup", {**best, name: v}) for i, v in enumerate(s["mult_values"])}
        losses = runner.table(f"tune:{name}", archs, [lr0])
        for i, v in enumerate(s["mult_values"]):
            loss = losses[i][lr0]
            trace.append({"multiplier": name, "value": v, "loss": loss})
            if loss is not None and loss < best_loss:
                best, best_loss = {**{k: x for k, x in best.items() if k != name}, name: v}, loss
    return dict(
        lr0=lr0,
        lr0_refined=optimal_lr(sweep)[0],
        untuned_loss=sweep[lr0],
        tuned=best,
        tuned_loss=best_loss,
        trace=trace,
    )


def measure(jobs: int, s: dict) -> dict:
    from archscale.trainers.transfer_check import summarise

    runner = Runner(jobs, s)
    t0 = time.perf_counter()
    tuning = tune_at_base(runner, s)
    mults = tuning["tuned"]
    tables = {
        ("width", "mup"): runner.table(
            "width:mup", {w: arch_for("mup", mults, width=w) for w in s["widths"]}, s["lrs"]
        ),
        ("width", "standard"): runner.table(
            "width:standard", {w: arch_for("standard", {}, width=w) for w in s["widths"]}, s["lrs"]
        ),
        ("depth", "completep"): runner.table(
            "depth:completep", {d: arch_for("completep", mults, depth=d) for d in s["depths"]}, s["lrs"]
        ),
        ("depth", "standard"): runner.table(
            "depth:standard", {d: arch_for("standard", {}, depth=d) for d in s["depths"]}, s["lrs"]
        ),
    }
    runner.pool.shutdown()
    checks = {f"{over}:{p}": summarise(over, p, t, s["steps"], s["seeds"]).to_dict() for (over, p), t in tables.items()}
    return dict(settings=s, tuning=tuning, checks=checks, wall_s=time.perf_counter() - t0, runs=runner.rows)


def headline(result: dict) -> dict:
    """The three goals, from the checks."""
    out = {}
    for key, check in result["checks"].items():
        sizes = [str(x) for x in check["sizes"]]
        base_losses = check["losses"][sizes[0]]
        base_best = min((lr for lr in base_losses if base_losses[lr] is not None), key=lambda lr: base_losses[lr])
        at_base_best = [check["losses"][x][base_best] for x in sizes]
        monotone = None not in at_base_best and all(b < a for a, b in zip(at_base_best, at_base_best[1:], strict=False))
        out[key] = dict(
            drift=check["drift"],
            at_edge=any(check["optimum_at_edge"].values()),
            base_best_lr=float(base_best),
            loss_at_base_best_lr=dict(zip(sizes, at_base_best, strict=True)),
            wider_is_better_at_base_best_lr=monotone,
            wider_is_better_near=check["wider_is_better"],
        )
    mup, standard = result["checks"]["width:mup"], result["checks"]["width:standard"]
    lr_t = repr(out["width:mup"]["base_best_lr"])
    gaps = {}
    for x in (str(w) for w in mup["sizes"]):
        own = [v for v in standard["losses"][x].values() if v is not None]
        mine = mup["losses"][x][lr_t]
        gaps[x] = None if mine is None or not own else mine - min(own)
    out["mup_at_transferred_lr_minus_standard_best"] = gaps
    return out


def estimate_full_s(rows: list[dict], jobs: int) -> float:
    """The full run's wall time from this run's throughput (FLOPs/s per job at 1 thread, wide models)."""
    from archscale.spaces import count

    widest = [r for r in rows if r["d_model"] == max(x["d_model"] for x in rows)]  # closest to the full run's
    rate = sum(r["flops"] for r in widest) / sum(r["wall_s"] for r in widest)
    s = FULL
    per_seed = len(s["lrs"]) + len(MULTIPLIERS) * len(s["mult_values"])  # tuning at the base
    flops = per_seed * count(arch_for("mup", {})).flops_per_token
    for p, mults in (("mup", {}), ("standard", {})):
        flops += sum(count(arch_for(p, mults, width=w)).flops_per_token for w in s["widths"]) * len(s["lrs"])
    for p in ("completep", "standard"):
        flops += sum(count(arch_for(p, {}, depth=d)).flops_per_token for d in s["depths"]) * len(s["lrs"])
    flops *= s["seeds"] * s["steps"] * BATCH * BASE["seq_len"]
    return flops / rate / jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 sizes, 4 lrs, 1 seed, 150 steps (minutes)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--from-json", help="re-print the tables of a saved --json output instead of training")
    args = parser.parse_args()
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
    else:
        result = measure(args.jobs, QUICK if args.quick else FULL)
        result["headline"] = headline(result)
        result["estimated_full_run_s"] = estimate_full_s(result["runs"], args.jobs)
    if args.json:
        print(json.dumps(result))
        return
    report(result)


def report(result: dict) -> None:
    s, t = result["settings"], result["tuning"]
    print(
        f"{len(result['runs'])} runs of {s['steps']} steps x {BATCH} x {BASE['seq_len']} tokens in "
        f"{result['wall_s']:.0f}s; lrs {s['lrs']}, {s['seeds']} seed(s)"
    )
    print(
        f"tuned at the base (mup, d_model {BASE['d_model']}): lr0 {t['lr0']:g}, multipliers {t['tuned'] or 'all 1'} "
        f"({t['untuned_loss']:.4f} -> {t['tuned_loss']:.4f})"
    )
    for key, check in result["checks"].items():
        print(f"\n{key}: final eval loss by size (columns) and lr (rows)")
        sizes = [str(x) for x in check["sizes"]]
        print(f"{'lr':<10}" + "".join(f"{x:>10}" for x in sizes))
        for lr in check["lrs"]:
            cells = [check["losses"][x][repr(lr)] for x in sizes]
            print(f"{lr:<10.3g}" + "".join(f"{'-' if c is None else f'{c:.4f}':>10}" for c in cells))
        print(f"{'best lr':<10}" + "".join(f"{check['optimum_lr'][x]:>10.3g}" for x in sizes))
    h = result["headline"]
    print("\nheadline")
    for key in result["checks"]:
        k = h[key]
        edge = " (an optimum at the grid's edge: at least this)" if k["at_edge"] else ""
        print(
            f"  {key:<16} drift {k['drift']:.2f}x{edge}; larger better at the base's best lr "
            f"{k['base_best_lr']:g}: {k['wider_is_better_at_base_best_lr']}; "
            f"at every lr near it: {k['wider_is_better_near']}"
        )
    gaps = h["mup_at_transferred_lr_minus_standard_best"]
    cells = ", ".join(f"{w}: {'-' if g is None else f'{g:+.3f}'}" for w, g in gaps.items())
    print(f"  mup at the transferred lr minus standard at its own best, nats (goal <= 0.02): {cells}")
    if "estimated_full_run_s" in result:
        print(f"estimated full run: {result['estimated_full_run_s'] / 3600:.1f} h with these jobs on this machine")


if __name__ == "__main__":
    main()
