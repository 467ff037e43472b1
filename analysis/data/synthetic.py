"""Synthetic runs from known laws: the designs archscale runs, simulated for calibration and tests.

``ladder_runs`` and ``isoflop_runs`` simulate the designs archscale itself runs (a size ladder at a
fixed tokens-per-parameter ratio, with or without seeds; an isoFLOP grid) from a known law, as a
trials-like frame that ``fit_results`` accepts; ``ladder_search_runs`` the complete ladders of a
ladder search, as ``fit_ladders`` takes them: the calibration benchmark and its test use them.
Fake results directories are ``data.synthetic_results``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

#: Laws at archscale's own (CPU, quickstart) scale, for ``ladder_runs`` / ``isoflop_runs``.
#: Chinchilla form: 2.21 nats at 147,776 params and 400K tokens, as the CI-sized model reaches
#: (2.18-2.28 over seeds 0-3, docs/training.md); compute-optimal at ~2 tokens per parameter.
TINY_CHINCHILLA: dict[str, float] = {"E": 1.4, "A": 25.0, "B": 20.0, "alpha": 0.35, "beta": 0.3}
#: Power law in compute through the same losses along the quickstart's ladder (2.61 nats at 40K
#: params, 2.02 at 320K, 3 tokens per parameter); alpha = 0.3 as the quickstart's fits found (0.32).
TINY_POWER: dict[str, float] = {"E": 1.78, "A": 1137.0, "alpha": 0.3}
#: Training FLOPs per token ``c * N**gamma`` of the tiny decoders (attention makes gamma < 1).
TINY_FLOPS: dict[str, float] = {"c": 7.2, "gamma": 0.98}


def _runs_frame(n: np.ndarray, d: np.ndarray, seed: np.ndarray, loss: np.ndarray, planned: np.ndarray) -> pl.DataFrame:
    fpt = TINY_FLOPS["c"] * n ** TINY_FLOPS["gamma"]
    return pl.DataFrame(
        {
            "params": n,
            "tokens": d,
            "flops_per_token": fpt,
            "compute": fpt * d,
            "seed": seed.astype(np.int64),
            "planned_size": planned,
            "target_tokens": d,
            "loss": loss,
        }
    )


def _power_loss(n: np.ndarray, d: np.ndarray, fpt: np.ndarray) -> np.ndarray:
    p = TINY_POWER
    return p["E"] + p["A"] * (fpt * d) ** -p["alpha"]


def _chinchilla_loss(n: np.ndarray, d: np.ndarray, fpt: np.ndarray) -> np.ndarray:
    p = TINY_CHINCHILLA
    return p["E"] + p["A"] * n ** -p["alpha"] + p["B"] * d ** -p["beta"]


#: The true mean loss of a run of N params, D tokens and FLOPs per token, by ``ladder_runs``'s ``law``.
TRUE_LOSS = {"power": _power_loss, "chinchilla": _chinchilla_loss}


def ladder_runs(
    rng: np.random.Generator,
    *,
    sizes: tuple[float, ...] = (40_000, 80_000, 160_000, 320_000),
    tokens_per_param: float = 3.0,
    seeds: int = 1,
    noise: float = 0.045,
    law: str = "power",
) -> pl.DataFrame:
    """A size ladder at a fixed tokens-per-parameter ratio (the quickstart's scaling study by
    default), ``seeds`` runs per size, loss = the ``law`` (``"power"``: ``TINY_POWER`` in compute;
    ``"chinchilla"``: ``TINY_CHINCHILLA``) + Gaussian noise of ``noise`` nats (seed spread)."""
    planned = np.repeat(np.asarray(sizes, float), seeds)
    n = np.round(planned * np.repeat(rng.uniform(0.97, 1.03, len(sizes)), seeds))  # solved sizes land near the plan
    d = np.round(planned * tokens_per_param)
    fpt = TINY_FLOPS["c"] * n ** TINY_FLOPS["gamma"]
    mean = TRUE_LOSS[law](n, d, fpt)
    seed = np.tile(np.arange(seeds), len(sizes))
    return _runs_frame(n, d, seed, mean + rng.normal(0.0, noise, n.size), planned)


def isoflop_runs(
    rng: np.random.Generator,
    *,
    budgets: tuple[float, ...] = (1e11, 3e11, 1e12, 3e12),
    sizes_per_budget: int = 5,
    spread_decades: float = 0.6,
    tokens_per_param_guess: float = 3.0,
    seeds: int = 1,
    noise: float = 0.045,
) -> pl.DataFrame:
    """An isoFLOP grid: per budget, ``sizes_per_budget`` sizes over +-``spread_decades`` around
    the size a user would guess (``tokens_per_param_guess`` tokens per parameter; the true optimum
    of ``TINY_CHINCHILLA`` is at ~2), tokens from the budget and the FLOP model, loss =
    ``TINY_CHINCHILLA`` + Gaussian noise of ``noise`` nats."""
    c, gamma = TINY_FLOPS["c"], TINY_FLOPS["gamma"]
    budget = np.repeat(np.asarray(budgets, float), sizes_per_budget * seeds)
    guess = (budget / (c * tokens_per_param_guess)) ** (1.0 / (1.0 + gamma))
    offsets = np.repeat(np.tile(np.linspace(-spread_decades, spread_decades, sizes_per_budget), len(budgets)), seeds)
    n = np.round(guess * 10**offsets)
    d = np.round(budget / (c * n**gamma))
    p = TINY_CHINCHILLA
    mean = p["E"] + p["A"] * n ** -p["alpha"] + p["B"] * d ** -p["beta"]
    seed = np.tile(np.arange(seeds), len(budgets) * sizes_per_budget)
    return _runs_frame(n, d, seed, mean + rng.normal(0.0, noise, n.size), n)


#: The ladder search's rungs (``benchmarks/bench_predicted.py``: budget 20K parameters, ratio 4,
#: 8 tokens per parameter): the design of ``ladder_search_runs``.
LADDER_SEARCH_RUNGS: tuple[float, ...] = (20_000, 80_000, 320_000)


def ladder_search_runs(
    rng: np.random.Generator,
    *,
    ladders: int = 4,
    rungs: tuple[float, ...] = LADDER_SEARCH_RUNGS,
    tokens_per_param: float = 8.0,
    noise: float = 0.045,
) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], dict[int, tuple[float, float, float]]]:
    """A ladder search's complete ladders, one run per rung: ``({ladder: (compute, loss)},
    {ladder: (E, A, alpha)})``, the first what ``fit_ladders`` takes, the second the truth. Each
    architecture's loss is ``E + A * C**-alpha`` with ``TINY_POWER``'s ``E`` (shared: it belongs to
    the data), exponents spread over 0.25-0.35 and every law through ``TINY_POWER`` at the middle
    rung (so the laws cross there, as architectures that trade places with scale do), plus Gaussian
    noise of ``noise`` nats per run."""
    n = np.round(np.asarray(rungs, float)[None, :] * rng.uniform(0.97, 1.03, (ladders, len(rungs))))
    d = np.round(np.asarray(rungs, float) * tokens_per_param)[None, :]
    compute = TINY_FLOPS["c"] * n ** TINY_FLOPS["gamma"] * d  # (ladders, rungs)
    p = TINY_POWER
    c_mid = float(np.exp(np.log(compute).mean()))
    alphas = np.linspace(0.25, 0.35, ladders) if ladders > 1 else np.array([p["alpha"]])
    coefs = p["A"] * c_mid ** (alphas - p["alpha"])
    loss = p["E"] + coefs[:, None] * compute ** -alphas[:, None] + rng.normal(0.0, noise, compute.shape)
    runs = {i: (compute[i], loss[i]) for i in range(ladders)}
    return runs, {i: (p["E"], float(coefs[i]), float(alphas[i])) for i in range(ladders)}
