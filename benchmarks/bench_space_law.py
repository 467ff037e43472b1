"""Benchmark: on the same total compute, which way of picking an architecture finds the winner at the target?

Each simulated search draws a known conditioned law over a space of 12 architectures (axes of 3, 2
and 2 values, named after real axes; ``analysis.data.synthetic_space.random_truth``: E in 1.8-3, alpha in 0.2-0.4, level
effects ~ N(0, 0.06) in log A, slope effects ~ N(0, 0.02) in alpha), noise per architecture (sd
``NOISE`` for all, or a 10x sd ratio: half the architectures at NOISE / sqrt(10), half at NOISE *
sqrt(10)), half of the noise variance shared by every run with one seed. Compute is in units of the
base size C_b = 1e12 FLOPs; the ladder's rungs are C_b, 4 C_b and 16 C_b; the target is 10x the
top rung (1.6e14). Methods, with the compute each spends (``cost`` in the output, in units of C_b):

* ``small_scale``: every architecture at the base size, as many seeds as the ladder's compute buys
  (21 each, 252 C_b); pick the lowest mean loss.
* ``ladder_top_rung``: the ladder design (every architecture at the 3 rungs, one seed each, 252 C_b);
  pick the lowest top-rung loss.
* ``ladder_predicted``: the same runs, each architecture's law fitted with E shared
  (``fit_ladders``, 200 bootstrap refits); pick the lowest predicted loss at the target.
* ``space_law_on_ladder``: the space law fitted on the ladder's runs (252 C_b).
* ``space_law_design``: the space law on a cheaper design, 124 C_b (49% of the ladder's): every
  architecture at the base size with 2 seeds, and 5 of them, chosen so every axis value is among
  them and no two axes are confounded (``_cover``: D-optimal), also at 4 C_b and 16 C_b with one
  seed. The other 7 are never trained above the base size: their predictions at the target come
  from their values' effects.
* ``random``: a uniformly random architecture (no compute).

Per method and setting: ``p_winner`` (the fraction of searches whose pick is the true winner at
the target, with its binomial standard error ``p_winner_se``), ``regret_nats`` (mean true loss of
the pick minus the true best's, and its standard error), ``coverage_picked`` (the picked
architecture's 95% interval of its loss at the target contains the truth) and ``coverage_all``
(the same over every architecture the method predicts; the law fits only), and for the space law
``p_best_calibration``: searches' architectures binned by their p_best, each bin's mean p_best
against the fraction that were the true winner (``n`` per bin), and ``p_best_brier``.

    .venv/bin/python benchmarks/bench_space_law.py [--quick] [--json] [--searches 200] [--seed 0]

``--quick``: 30 searches per setting. Run under the shared lock (``flock /tmp/archscale-heavy.lock``):
the full run fits ~5 laws per search, ~2 s per search on one core.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import os
import sys
import time
from typing import Any

os.environ.setdefault("POLARS_MAX_THREADS", "1")

import numpy as np

from archscale.analysis.compare.ladder_verdicts import ladder_p_best
from archscale.analysis.data.synthetic_space import random_truth, space_trials
from archscale.analysis.laws.ladder import fit_ladders
from archscale.analysis.laws.space_law import fit_space_law

AXES = {"ffn_activation": 3, "position": 2, "norm": 2}  # values v0, v1, ...: names only
BASE = 1e12
RUNGS = (BASE, 4 * BASE, 16 * BASE)
TARGET = 10 * RUNGS[-1]
NOISE = 0.015  # nats: the seed spread of the quickstart's runner-up (docs/training.md, bench_calibration)
SETTINGS: dict[str, dict[str, float]] = {
    "equal noise": {"sd_ratio": 1.0},
    "unequal noise (10x sd ratio)": {"sd_ratio": 10.0},
}
DESIGN_LADDERS = 5  # architectures the space law's design trains at every rung
BINS = (0.0, 0.05, 0.2, 0.5, 0.8, 1.0001)
LAW_METHODS = ("ladder_predicted", "space_law_on_ladder", "space_law_design")
METHODS = ("small_scale", "ladder_top_rung", *LAW_METHODS, "random")


def _cost(design: list[tuple[dict[str, str], tuple[float, ...]]], seeds: int) -> float:
    return float(sum(sum(sizes) for _, sizes in design) * seeds / BASE)


@functools.cache
def _cover(axes: tuple[tuple[str, int], ...], k: int) -> tuple[int, ...]:
    """The ``k`` architectures of the space (in ``SpaceTruth.architectures`` order) that identify
    its effects best: D-optimal among every k-subset (the largest det X'X of their reference-coded
    axes with an intercept), so every axis value is among them and no two axes move together."""
    archs = list(itertools.product(*[range(n) for _, n in axes]))
    cols = [(a, v) for a, (_, n) in enumerate(axes) for v in range(1, n)]
    x = np.array([[1.0] + [float(arch[a] == v) for a, v in cols] for arch in archs])
    best = max(
        itertools.combinations(range(len(archs)), k), key=lambda sub: np.linalg.slogdet(x[list(sub)].T @ x[list(sub)])
    )
    return tuple(best)


def _means(runs: Any, key: str = "arch_id") -> dict[str, float]:
    import polars as pl

    return dict(runs.group_by(key).agg(m=pl.col("eval_loss").mean()).iter_rows())


def one_search(rng: np.random.Generator, sd_ratio: float) -> dict[str, Any]:
    """One simulated search: every method's pick, its interval, the space law's p_best."""
    import polars as pl

    truth = random_truth(rng, AXES)
    archs = truth.architectures()
    names = [", ".join(f"{k}={v}" for k, v in a.items()) for a in archs]
    true = np.array([float(truth.loss(a, TARGET)) for a in archs])
    winner = int(np.argmin(true))
    sd = np.full(len(archs), NOISE)
    if sd_ratio != 1.0:
        sd = np.where(rng.permutation(len(archs)) % 2 == 0, NOISE / math.sqrt(sd_ratio), NOISE * math.sqrt(sd_ratio))
    out: dict[str, Any] = {"true": true, "winner": winner}

    ladder = [(a, RUNGS) for a in archs]
    lruns = space_trials(rng, truth, ladder, seeds=1, noise=sd)
    small = [(a, (BASE,)) for a in archs]
    seeds_small = int(round(_cost(ladder, 1) / len(archs)))
    sruns = space_trials(rng, truth, small, seeds=seeds_small, noise=sd)
    cover = _cover(tuple(AXES.items()), DESIGN_LADDERS)
    design = [(a, RUNGS if i in cover else (BASE,)) for i, a in enumerate(archs)]
    druns = space_trials(rng, truth, design, seeds=1, noise=np.asarray(sd)).with_columns(pl.col("seed"))
    extra = space_trials(rng, truth, small, seeds=1, noise=sd).with_columns(seed=pl.lit(1, pl.Int64))
    druns = pl.concat([druns, extra.with_columns(trial_id=pl.col("trial_id") + druns.height)], how="vertical_relaxed")
    costs = {"small_scale": seeds_small * len(archs), "ladder_top_rung": _cost(ladder, 1),
             "ladder_predicted": _cost(ladder, 1), "space_law_on_ladder": _cost(ladder, 1),
             "space_law_design": _cost(design, 1) + len(archs), "random": 0.0}  # fmt: skip
    out["cost"] = costs

    small_means = _means(sruns)
    out["small_scale"] = {"pick": int(np.argmin([small_means[f"d{i}"] for i in range(len(archs))]))}
    top = _means(lruns.filter(pl.col("compute") == RUNGS[-1]))
    out["ladder_top_rung"] = {"pick": int(np.argmin([top[f"d{i}"] for i in range(len(archs))]))}
    out["random"] = {"pick": int(rng.integers(len(archs)))}

    ladders = {i: (part["compute"].to_numpy(), part["eval_loss"].to_numpy())
               for i in range(len(archs)) for part in [lruns.filter(pl.col("arch_id") == f"d{i}")]}  # fmt: skip
    fit = fit_ladders(ladders, bootstrap=200, seed=int(rng.integers(1 << 30)))
    pred = [fit.predict(i, TARGET) for i in range(len(archs))]
    if all(p is not None for p in pred):
        mean = np.array([p[0] for p in pred])
        lo, hi = np.array([p[1] for p in pred]), np.array([p[2] for p in pred])
        pb = ladder_p_best(fit, {i: TARGET for i in range(len(archs))})
        p = np.array([pb.get(i, (np.nan, 0))[0] for i in range(len(archs))])
        out["ladder_predicted"] = {"pick": int(np.argmin(mean)), "lo": lo, "hi": hi, "p_best": p}
    else:  # not identified: the method falls back to the top rung, and says so in "refused"
        out["ladder_predicted"] = {"pick": out["ladder_top_rung"]["pick"], "refused": True}

    for method, runs in (("space_law_on_ladder", lruns), ("space_law_design", druns)):
        law = fit_space_law(runs.drop("label"), axes=truth.axes, seed=int(rng.integers(1 << 30)))
        mean, lo, hi = law.predict(archs, [TARGET])
        ranking = law.ranking(TARGET, top=len(archs))
        p_best = dict(zip(ranking["arch"], ranking["p_best"], strict=True))
        out[method] = {"pick": int(np.argmin(mean[:, 0])), "lo": lo[:, 0], "hi": hi[:, 0],
                       "p_best": np.array([p_best[n] for n in names])}  # fmt: skip
    return out


def summarise(searches: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method: p_winner, regret, coverage, calibration (see the module docstring)."""
    res: dict[str, Any] = {}
    for m in METHODS:
        picks = np.array([s[m]["pick"] for s in searches])
        hit = np.array([p == s["winner"] for p, s in zip(picks, searches, strict=True)], float)
        regret = np.array([s["true"][p] - s["true"][s["winner"]] for p, s in zip(picks, searches, strict=True)])
        n = len(searches)
        row: dict[str, Any] = {
            "cost_base_units": float(np.mean([s["cost"][m] for s in searches])),
            "p_winner": float(hit.mean()), "p_winner_se": float(math.sqrt(hit.mean() * (1 - hit.mean()) / n)),
            "regret_nats": float(regret.mean()), "regret_nats_se": float(regret.std(ddof=1) / math.sqrt(n)),
        }  # fmt: skip
        if m in LAW_METHODS:
            fitted = [s for s in searches if "lo" in s[m]]
            row["refused"] = n - len(fitted)
            cov_pick = [s[m]["lo"][s[m]["pick"]] <= s["true"][s[m]["pick"]] <= s[m]["hi"][s[m]["pick"]] for s in fitted]
            cov_all = [np.mean((s[m]["lo"] <= s["true"]) & (s["true"] <= s[m]["hi"])) for s in fitted]
            row["coverage_picked"] = float(np.mean(cov_pick)) if fitted else None
            row["coverage_all"] = float(np.mean(cov_all)) if fitted else None
            row["p_best_calibration"], row["p_best_brier"] = _calibration(fitted, m)
        res[m] = row
    return res


def _calibration(fitted: list[dict[str, Any]], m: str) -> tuple[list[dict[str, Any]], float | None]:
    if not fitted:
        return [], None
    p = np.concatenate([s[m]["p_best"] for s in fitted])
    won = np.concatenate([np.arange(len(s["true"])) == s["winner"] for s in fitted]).astype(float)
    ok = np.isfinite(p)
    p, won = p[ok], won[ok]
    bins = []
    for lo, hi in zip(BINS[:-1], BINS[1:], strict=True):
        inside = (p >= lo) & (p < hi)
        if inside.any():
            bins.append({"p_best_from": lo, "p_best_to": min(hi, 1.0), "n": int(inside.sum()),
                         "mean_p_best": float(p[inside].mean()),
                         "fraction_true_winner": float(won[inside].mean())})  # fmt: skip
    return bins, float(np.mean((p - won) ** 2))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30 searches per setting")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--searches", type=int, default=None, help="searches per setting (default 200; --quick 30)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n = args.searches or (30 if args.quick else 200)
    started = time.perf_counter()
    result: dict[str, Any] = {"searches_per_setting": n, "target_compute": TARGET, "rungs": list(RUNGS),
                              "noise_sd": NOISE, "space": AXES, "settings": {}}  # fmt: skip
    for i, (name, setting) in enumerate(SETTINGS.items()):
        rng = np.random.default_rng([args.seed, i])
        searches = [one_search(rng, setting["sd_ratio"]) for _ in range(n)]
        result["settings"][name] = summarise(searches)
    result["wall_s"] = time.perf_counter() - started
    if args.json:
        print(json.dumps(result))
    else:
        print(_text(result))
    return result


def _text(r: dict[str, Any]) -> str:
    lines = [f"{r['searches_per_setting']} simulated searches per setting; target {r['target_compute']:.3g} FLOPs; "
             f"{r['wall_s']:.0f} s"]  # fmt: skip
    for name, res in r["settings"].items():
        lines.append(f"\n{name}")
        lines.append(
            f"  {'method':<22} {'cost':>6} {'p_winner':>14} {'regret (nats)':>18} {'cov picked':>10} {'cov all':>8}"
        )
        for m, row in res.items():
            cov = (f"{row['coverage_picked']:>10.2f} {row['coverage_all']:>8.2f}" if row.get("coverage_all") is not None
                   else f"{'-':>10} {'-':>8}")  # fmt: skip
            lines.append(f"  {m:<22} {row['cost_base_units']:>6.0f} {row['p_winner']:>7.2f} ± {row['p_winner_se']:.2f}"
                         f" {row['regret_nats']:>10.4f} ± {row['regret_nats_se']:.4f} {cov}")  # fmt: skip
        for m in LAW_METHODS:
            cal = ", ".join(f"[{b['p_best_from']:.2f},{b['p_best_to']:.2f}): {b['mean_p_best']:.2f} vs "
                            f"{b['fraction_true_winner']:.2f} (n={b['n']})"
                            for b in res[m]["p_best_calibration"])  # fmt: skip
            lines.append(f"  p_best calibration, {m}: {cal}; Brier {res[m]['p_best_brier']:.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
