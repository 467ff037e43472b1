"""Benchmark: how often does archscale call a difference "resolved" when every true loss is equal?

Simulates searches whose architectures all have the same true loss (``archscale.analysis.data.
synthetic_searches``) and counts the searches in which ``compare_to_best`` (what ``verdicts`` and the
report print) calls at least one difference ``resolved``: the rate at which a search prints a false
difference. Cells:

* ``equal noise``: 10 architectures x 3 seeds at 0.045 nats.
* ``unequal noise``: issue 19's TPE shape, 6 architectures x 3 seeds at 0.015 nats (learning rates
  1e-3 to 3e-3) and 4 one-seed architectures at 0.14 nats (6e-3 to 1e-2).
* ``unequal noise, shared``: the same with half of every run's noise variance shared by the runs
  with its seed (a seed block).
* ``ladder search`` / ``ladder search, shared``: 4 ladders of 3 rungs (``fit_ladders``, 200 refits)
  all following one law at 0.045 nats, the verdict ``ladder_differences`` gives at each ladder's
  target (10x its top rung), with 0 or half of the noise shared by the rungs of a search.

* ``effects, two-level`` / ``effects, seed noise only``: ``axis_effects`` on searches of 5
  architectures x 3 seeds at 0.015 nats whose axes have no effect while the architectures differ
  at random by ``tau`` = 0.05 nats within each value (``synthetic_searches.axis_null_search``:
  ``norm = rmsnorm`` rests on one architecture): the two-level estimate, and beside it Welch's
  test on the runs as if seed noise were the only noise (what an architecture's seeds alone say).

Goal: ``false_resolved`` at most 0.05 + 2 Monte Carlo standard errors (``goal``; the seed-noise-only
row is the reference, not held to it). Beside it, for the search cells, how often the reported
best's interval covers its true loss: the plain t-interval and the selection-corrected one
(``best_interval``), the mean optimism of the best's mean, and the shared seed correlation the
two-way layout estimates (``seed_corr``, and how often its 95% interval covers the truth).
Power: the rate at which a true 0.05-nat difference is resolved at 3 seeds, between 2 architectures
and inside a 10-architecture search (one of them 0.05 better), at 0.015 and 0.045 nats.

    .venv/bin/python benchmarks/bench_verdicts.py [--quick] [--json] [--sets N] [--cells SUBSTRING ...]

``--quick``: 100 searches and 60 ladder searches per cell (a few minutes on 2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

os.environ.setdefault("POLARS_MAX_THREADS", "1")

import numpy as np
import polars as pl

from archscale.analysis.compare.effects import axis_effects
from archscale.analysis.compare.ladder_verdicts import ladder_differences
from archscale.analysis.compare.rankings import best_interval, compare_to_best, rank_configurations
from archscale.analysis.data import synthetic_searches as ss
from archscale.analysis.laws.ladder import fit_ladders

SEARCH_CELLS = {
    "equal noise": (ss.EQUAL_NOISE, 0.0),
    "unequal noise": (ss.UNEQUAL_NOISE, 0.0),
    "unequal noise, shared": (ss.UNEQUAL_NOISE, 0.5),
}
LADDER_CELLS = {"ladder search": 0.0, "ladder search, shared": 0.5}
NULL_RATE = 0.05


def _goal(rate: float, n: int) -> dict[str, Any]:
    mc_se = math.sqrt(NULL_RATE * (1 - NULL_RATE) / n)
    return {"mc_se": mc_se, "goal": rate <= NULL_RATE + 2 * mc_se}


def search_cell(s: ss.SearchShape, shared: float, sets: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    resolved, plain, corrected, optimism, one_run_best, rho, rho_cover = [], [], [], [], [], [], []
    truth = s.truths[0]
    for i in range(sets):
        trials = ss.search_trials(rng, s, shared=shared)
        resolved.append(bool((compare_to_best(trials)["verdict"] == "resolved").any()))
        ranking = rank_configurations(trials, seed=i)
        judged = ranking.filter(pl.col("var").is_not_null()).sort("mean")
        one_run_best.append(ranking.sort("mean")["var"][0] is None)
        if judged.height:
            top = judged.row(0, named=True)
            plain.append(top["lo"] <= truth <= top["hi"])
            sel = best_interval(ranking, seed=i).row(0, named=True)
            corrected.append(sel["best_lo"] <= truth <= sel["best_hi"])
            optimism.append(truth - top["mean"])
            rho.append(top["seed_corr"])
            if top["seed_corr_lo"] is not None:
                rho_cover.append(top["seed_corr_lo"] <= shared <= top["seed_corr_hi"])
    rate = float(np.mean(resolved))
    return {
        "false_resolved": rate, "searches": sets, **_goal(rate, sets),
        "lowest_mean_is_one_run_without_noise_estimate": float(np.mean(one_run_best)),
        "best_plain_coverage": float(np.mean(plain)), "best_selected_coverage": float(np.mean(corrected)),
        "best_coverage_mc_se": math.sqrt(0.95 * 0.05 / max(len(plain), 1)),
        "best_optimism_nats": float(np.mean(optimism)), "seed_corr_true": shared,
        "seed_corr_mean": float(np.mean(rho)), "seed_corr_interval_coverage": float(np.mean(rho_cover)),
    }  # fmt: skip


def effects_cell(sets: int, seed: int, tau: float = 0.05) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two-level null (see the module docstring): ``axis_effects``' false-resolved rate, and
    Welch's test on the runs (seed noise only, Holm over the same comparisons)."""
    from scipy import stats

    rng = np.random.default_rng(seed)
    two, seed_only = [], []
    for _ in range(sets):
        trials = ss.axis_null_search(rng, tau=tau)
        eff = axis_effects(trials, axes=list(ss.AXIS_LAYOUT)).filter(pl.col("method") != "baseline")
        two.append(bool((eff["verdict"] == "resolved").any()))
        p = []
        for row in eff.iter_rows(named=True):
            a = trials.filter(pl.col(row["axis"]) == row["value"])["eval_loss"].to_numpy()
            b = trials.filter(pl.col(row["axis"]) == row["baseline"])["eval_loss"].to_numpy()
            p.append(stats.ttest_ind(a, b, equal_var=False).pvalue)
        seed_only.append(bool(min(p) * len(p) < 0.05))  # Holm's smallest p
    rates = (float(np.mean(two)), float(np.mean(seed_only)))
    common = {"searches": sets, "tau_nats": tau, "noise_nats": 0.015}
    return (
        {"false_resolved": rates[0], **common, **_goal(rates[0], sets)},
        {"false_resolved": rates[1], **common, **_goal(rates[1], sets), "reference": True},
    )


def ladder_cell(shared: float, sets: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    resolved, identified = [], 0
    for i in range(sets):
        ladders = ss.null_ladders(rng, noise=0.045, shared=shared)
        fit = fit_ladders(ladders, bootstrap=200, seed=i)
        targets = {k: 10 * float(c.max()) for k, (c, _) in ladders.items()}
        diffs = ladder_differences(fit, targets)
        identified += diffs.height > 0
        resolved.append(bool((diffs["verdict"] == "resolved").any()))
    rate = float(np.mean(resolved))
    return {"false_resolved": rate, "searches": sets, "identified": identified, **_goal(rate, sets)}


def power_cell(noise: float, archs: int, sets: int, seed: int) -> dict[str, Any]:
    """A true 0.05-nat difference at 3 seeds: how often it is resolved (the better one as the best)."""
    rng = np.random.default_rng(seed)
    s = ss.shape([(archs, 3, noise, (1e-3, 3e-3))])
    s = ss.SearchShape((s.truths[0] - 0.05, *s.truths[1:]), s.seeds, s.noise, s.lr_range)
    hits = []
    for _ in range(sets):
        diffs = compare_to_best(ss.search_trials(rng, s))
        ok = diffs.filter((pl.col("verdict") == "resolved") & (pl.col("best").str.starts_with("arch0 ")))
        hits.append(ok.height > 0)
    rate = float(np.mean(hits))
    return {"power": rate, "searches": sets, "mc_se": math.sqrt(max(rate * (1 - rate), 1e-4) / sets)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 searches and 60 ladder searches per cell")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--sets", type=int, default=None, help="searches per cell (default 400; ladders half)")
    ap.add_argument("--cells", nargs="*", default=None, help="run only the cells whose names contain one of these")
    args = ap.parse_args(argv)

    def wanted(name: str) -> bool:
        return args.cells is None or any(c in name for c in args.cells)

    sets = args.sets or (100 if args.quick else 400)
    ladder_sets = 60 if args.quick and args.sets is None else max(sets // 2, 1)
    start = time.perf_counter()
    out: dict[str, Any] = {"null": {}, "power_0.05_nats_3_seeds": {}}
    for i, (name, (s, shared)) in enumerate(SEARCH_CELLS.items()):
        if wanted(name):
            out["null"][name] = search_cell(s, shared, sets, 1000 + i)
    for i, (name, shared) in enumerate(LADDER_CELLS.items()):
        if wanted(name):
            out["null"][name] = ladder_cell(shared, ladder_sets, 2000 + i)
    if wanted("effects"):
        out["null"]["effects, two-level"], out["null"]["effects, seed noise only"] = effects_cell(sets, 4000)
    for i, (noise, archs) in enumerate(((0.015, 2), (0.045, 2), (0.015, 10), (0.045, 10))):
        if wanted("power"):
            out["power_0.05_nats_3_seeds"][f"{archs} architectures, {noise} nats"] = power_cell(
                noise, archs, sets, 3000 + i
            )
    out["seconds"] = time.perf_counter() - start
    out["goal_met"] = all(cell["goal"] for cell in out["null"].values() if not cell.get("reference"))
    if args.json:
        print(json.dumps(out))
    else:
        for name, cell in out["null"].items():
            extra = (
                f"; best covered {cell['best_plain_coverage']:.3f} plain, {cell['best_selected_coverage']:.3f} "
                f"selection-corrected; optimism {cell['best_optimism_nats']:.3f} nats; seed_corr "
                f"{cell['seed_corr_mean']:.2f} (true {cell['seed_corr_true']}, interval covers "
                f"{cell['seed_corr_interval_coverage']:.2f})"
                if "best_plain_coverage" in cell
                else ""
            )
            print(f"{name}: false_resolved {cell['false_resolved']:.3f} (mc_se {cell['mc_se']:.3f}, "
                  f"{cell['searches']} searches) goal {'met' if cell['goal'] else 'MISSED'}"
                  f"{' (reference)' if cell.get('reference') else ''}{extra}")  # fmt: skip
        for name, cell in out["power_0.05_nats_3_seeds"].items():
            print(f"power, {name}: {cell['power']:.3f} (mc_se {cell['mc_se']:.3f})")
        print(f"{out['seconds']:.0f} s")
    return out


if __name__ == "__main__":
    sys.exit(0 if main()["goal_met"] else 1)
