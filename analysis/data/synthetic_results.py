"""Synthetic results directories (for tests, benchmarks, docs and trying the report).

``write_search`` fakes an architecture search: random choices per axis, seed replicas, losses
from known per-choice effects plus noise, some pruned/failed/running trials, curves, ``run.json``
and (optionally) an Optuna journal study holding the same trials. ``write_study`` fakes a scaling
study: families (``group``) trained at several compute budgets and sizes, losses drawn from a
known Chinchilla law per family. Everything is generated with vectorised numpy, so a 10,000-trial,
1,000,000-curve-row store takes a second or two.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

#: Effect of each choice on the final loss (nats/token) in ``write_search``.
SEARCH_EFFECTS: dict[str, dict[str, float]] = {
    "ffn_activation": {"gelu": 0.0, "relu": 0.03, "swiglu": -0.04, "geglu": -0.035, "relu2": -0.01},
    "position": {"learned": 0.0, "rope": -0.03, "alibi": -0.02, "none": 0.05},
    "norm": {"layernorm": 0.0, "rmsnorm": -0.002},
    "block": {"sequential": 0.0, "parallel": 0.015},
}
#: ``write_search(size_effect=True)``: loss += A·params^-alpha (relative to a 1M-parameter model).
SIZE_LAW: dict[str, float] = {"A": 60.0, "alpha": 0.3}
#: Chinchilla parameters per family in ``write_study`` (Hoffmann et al.'s fit for the baseline).
STUDY_LAWS: dict[str, dict[str, float]] = {
    "baseline": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
    "swiglu·rope": {"E": 1.65, "A": 380.0, "B": 400.0, "alpha": 0.34, "beta": 0.28},
}


def _write(dir: Path, trials: pl.DataFrame, curves: pl.DataFrame | None, run: dict[str, Any]) -> None:
    dir.mkdir(parents=True, exist_ok=True)
    for name, frame in (("trials", trials), ("curves", curves)):
        if frame is not None:  # temp file + rename, as the real writer does
            tmp = dir / f".{name}.parquet.tmp"
            frame.write_parquet(tmp)
            tmp.replace(dir / f"{name}.parquet")
    (dir / "run.json").write_text(json.dumps(run, indent=1))


def _arch_columns(rng: np.random.Generator, n: int) -> dict[str, Any]:
    d_model = rng.choice([128, 192, 256, 384], n)
    n_layers = rng.choice([2, 4, 6, 8], n)
    n_heads = rng.choice([2, 4, 8], n)
    return {
        "vocab_size": np.full(n, 256),
        "seq_len": np.full(n, 256),
        "d_model": d_model,
        "n_layers": n_layers,
        "n_heads": n_heads,
        "n_kv_heads": n_heads // rng.choice([1, 2], n),
        "head_dim": d_model // n_heads,
        "d_ff": d_model * 4,
        "norm_position": np.full(n, "pre"),
        "qk_norm": rng.random(n) < 0.5,
        "rope_theta": np.full(n, 10000.0),
        "t5_num_buckets": np.full(n, 32),
        "t5_max_distance": np.full(n, 128),
        "ffn_per_block": np.ones(n, int),
        "tie_embeddings": rng.random(n) < 0.5,
        "bias": np.zeros(n, bool),
        "init": np.full(n, "normal"),
    }


def _curves(rng: np.random.Generator, trials: pl.DataFrame, evals_per_trial: int, final: np.ndarray) -> pl.DataFrame:
    """``evals_per_trial`` evaluations on each trial's planned token budget (``target_tokens``), the
    loss decaying to ``final`` (what the trial reaches at its full budget): so trials evaluated at
    the same token count are comparable, as in a real run. Pruned trials stop at their ``tokens``,
    running ones at half the budget, failed ones at a fifth."""
    n = trials.height
    frac = np.tile(np.arange(1, evals_per_trial + 1) / evals_per_trial, n)
    idx = np.repeat(np.arange(n), evals_per_trial)
    planned = trials["target_tokens"].fill_null(trials["tokens"]).to_numpy()[idx]
    tokens = planned * frac
    eval_loss = final[idx] + 3.0 * (1.0 - frac) ** 2 + rng.normal(0, 0.01, idx.size)
    status = trials["status"].to_numpy()[idx]
    reached = trials["tokens"].to_numpy()[idx]
    keep = (
        (status == "completed")
        | (status == "pruned") & (tokens <= reached)
        | (status == "running") & (frac <= 0.5)
        | (frac <= 0.2)
    )
    fpt = trials["flops_per_token"].to_numpy()[idx]
    return pl.DataFrame(
        {
            "trial_id": trials["trial_id"].to_numpy()[idx],
            "tokens": np.maximum(tokens, 1).astype(np.int64),
            "compute": fpt * tokens,
            "step": (frac * 1000).astype(np.int64),
            "train_loss": eval_loss - 0.02,
            "eval_loss": eval_loss,
            "lr": 1e-3 * (1 - frac),
            "grad_norm": 1.0 / (1 + 5 * frac),
            "tokens_per_s": np.full(idx.size, 5e4),
            "wall_s": tokens / 5e4,
            "ffn_zero_frac": np.clip(0.5 - 0.2 * frac, 0, 1),
            "ffn_dead_frac": np.clip(0.05 * frac, 0, 1),
            "grad_norm_by_layer": [[1.0, 0.5]] * idx.size,
        }
    ).filter(pl.Series(keep))


def write_search(
    dir: str | Path,
    *,
    n_archs: int = 24,
    seeds: int = 3,
    evals_per_trial: int = 10,
    n_failed: int = 2,
    n_running: int = 0,
    with_study: bool = True,
    size_effect: bool = False,
    seed: int = 0,
) -> Path:
    """Write a fake search results directory and return its path (see module docstring).

    ``size_effect`` adds ``SIZE_LAW`` (loss falling with params) to every trial's loss.
    """
    rng = np.random.default_rng(seed)
    dir = Path(dir)
    choices = {axis: rng.choice(list(vals), n_archs) for axis, vals in SEARCH_EFFECTS.items()}
    arch = _arch_columns(rng, n_archs)
    arch_loss = 3.0 + sum(np.vectorize(SEARCH_EFFECTS[a].get)(choices[a]) for a in SEARCH_EFFECTS)
    n = n_archs * seeds
    rep = np.repeat(np.arange(n_archs), seeds)
    params = (12 * arch["n_layers"] * arch["d_model"] ** 2 + 256 * arch["d_model"]).astype(np.int64)[rep]
    flops = 6.0 * params + 12.0 * arch["n_layers"][rep] * arch["d_model"][rep] * 256
    planned = 2_000_000
    tokens = np.full(n, planned, np.int64)
    status = np.full(n, "completed", dtype=object)
    status[rng.permutation(n)[: n // 8]] = "pruned"
    status[n - n_running - n_failed : n - n_running] = "failed"
    status[n - n_running :] = "running"
    # pruned at the last evaluation within the first quarter of the budget (an ASHA rung)
    stop_frac = max(1, evals_per_trial // 4) / evals_per_trial
    tokens = np.where(status == "pruned", int(planned * stop_frac), tokens)
    size_term = SIZE_LAW["A"] * params.astype(float) ** -SIZE_LAW["alpha"] - SIZE_LAW["A"] * 1e6 ** -SIZE_LAW["alpha"]
    final = arch_loss[rep] + (size_term if size_effect else 0.0) + rng.normal(0, 0.01, n)  # at the full budget
    loss = final + np.where(status == "pruned", 3.0 * (1.0 - stop_frac) ** 2, 0.0)  # where the curve stopped
    lengths = np.array([128, 256, 512])
    by_length = [
        json.dumps(
            {
                str(c): (
                    None if c > 256 and p == "learned" else round(float(v + 0.1 * np.log2(c / 128) * (p == "none")), 4)
                )
                for c in lengths
            }
        )
        for v, p in zip(loss, choices["position"][rep], strict=True)
    ]  # one small JSON string per trial: building the fixture, not analysing it
    trials = pl.DataFrame(
        {
            "trial_id": np.arange(n, dtype=np.int64),
            "status": status.astype(str),
            "seed": np.tile(np.arange(seeds), n_archs).astype(np.int64),
            "arch_id": np.char.add("a", rep.astype(str)),
            "label": np.char.add(
                np.char.add(choices["ffn_activation"][rep].astype(str), "·"), choices["position"][rep].astype(str)
            ),
            **{k: v[rep] for k, v in arch.items()},
            **{k: v[rep] for k, v in choices.items()},
            "lr": (10 ** rng.uniform(-4, -2, n)).reshape(n_archs, seeds)[:, 0][rep],  # replicas share it
            "warmup_tokens": np.full(n, 10_000, np.int64),
            "weight_decay": np.full(n, 0.1),
            "batch_size": np.full(n, 32, np.int64),
            "params": params,
            "non_embedding_params": params - 256 * arch["d_model"][rep],
            "flops_per_token": flops,
            "kv_cache_bytes_per_token": (4 * arch["n_layers"] * arch["n_kv_heads"] * arch["head_dim"]).astype(np.int64)[
                rep
            ],
            "tokens": tokens,
            "compute": flops * tokens,
            "eval_loss": np.where(np.isin(status, ["failed", "running"]), np.nan, loss),
            "tokens_per_s": 1e10 / flops * rng.uniform(0.9, 1.1, n),
            "wall_s": tokens / (1e10 / flops),
            "eval_loss_by_length": by_length,
            "group": [None] * n,
            "target_tokens": np.full(n, 2_000_000, np.int64),
        }
    ).with_columns(
        pl.col("eval_loss").fill_nan(None),
        pl.col("group").cast(pl.String),
        error=pl.when(pl.col("status") == "failed").then(pl.lit("RuntimeError: out of memory")),
    )
    storage = (dir.resolve() / "study.journal") if with_study else None
    run = {
        "kind": "search",
        "space": {axis: sorted(vals) for axis, vals in SEARCH_EFFECTS.items()},
        "budget": {"non_embedding_params": 1_000_000, "tokens": 2_000_000},
        "args": {"n_trials": n, "seeds": seeds},
        "versions": {"archscale": "0.1.0"},
        "git_revision": "0000000",
        "hardware": {"cpu": "synthetic"},
        "storage": str(storage) if storage else None,
        "study_name": "synthetic-search",
        "objectives": [{"name": "eval_loss", "direction": "minimize"}],
    }
    _write(dir, trials, _curves(rng, trials, evals_per_trial, final), run)
    if with_study:
        _write_study(storage, trials)
    return dir


def _write_study(path: Path, trials: pl.DataFrame) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    study = optuna.create_study(study_name="synthetic-search", storage=storage, load_if_exists=True)
    dists = {axis: optuna.distributions.CategoricalDistribution(sorted(vals)) for axis, vals in SEARCH_EFFECTS.items()}
    dists["lr"] = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    done = trials.filter(pl.col("status") == "completed")
    study.add_trials(
        [
            optuna.trial.create_trial(params={k: row[k] for k in dists}, distributions=dists, value=row["eval_loss"])
            for row in done.select(*dists, "eval_loss").iter_rows(named=True)
        ]
    )


def write_study(
    dir: str | Path,
    *,
    budgets: tuple[float, ...] = (1e17, 3e17, 1e18, 3e18, 1e19),
    sizes_per_budget: int = 7,
    laws: dict[str, dict[str, float]] | None = None,
    noise: float = 0.005,
    evals_per_trial: int = 5,
    seeds: int = 1,
    seed_noise: float = 0.0,
    seed: int = 0,
) -> Path:
    """Write a fake scaling study: per family and budget, ``sizes_per_budget`` model sizes spread
    over ±1 decade around ``sqrt(C/120)`` (≈ 20 tokens per parameter), ``C = 6ND`` exactly (so
    ``flops_per_token = 6N``), loss = the family's Chinchilla law × lognormal noise. The planned
    grid point (``planned_kind = "params"``, ``planned_size``) is recorded as a real study does.

    ``seeds`` trains every grid point with seeds 0..seeds-1; ``seed_noise`` adds to each loss a
    normal term (that standard deviation, nats) shared by every family at the same grid point and
    seed, as the shared data order does in real runs (so pairing by seed cancels it)."""
    rng = np.random.default_rng(seed)
    dir = Path(dir)
    laws = laws or STUDY_LAWS
    fams = list(laws)
    grid = len(fams) * len(budgets) * sizes_per_budget
    c = np.repeat(np.repeat(np.tile(np.asarray(budgets, float), len(fams)), sizes_per_budget), seeds)
    fam = np.repeat(np.arange(len(fams)), len(budgets) * sizes_per_budget * seeds)
    spread = np.repeat(np.tile(np.linspace(-1.0, 1.0, sizes_per_budget), len(fams) * len(budgets)), seeds)
    seed_of = np.tile(np.arange(seeds), grid)
    planned_size = np.sqrt(c / 120.0) * 10**spread
    n_params = np.round(planned_size).astype(np.int64)
    tokens = np.round(c / (6.0 * n_params)).astype(np.int64)
    p = {k: np.array([laws[f][k] for f in fams])[fam] for k in ("E", "A", "B", "alpha", "beta")}
    loss = (p["E"] + p["A"] * n_params ** -p["alpha"] + p["B"] * tokens ** -p["beta"]) * np.exp(
        rng.normal(0, noise, c.size)
    )
    n = c.size
    arch = {k: np.repeat(v, seeds) for k, v in _arch_columns(rng, grid).items()}  # seed replicas share it
    if seed_noise > 0:  # one draw per (budget, size, seed), shared by the families
        point = np.arange(n) % (len(budgets) * sizes_per_budget * seeds)
        loss = loss + rng.normal(0, seed_noise, len(budgets) * sizes_per_budget * seeds)[point]
    trials = pl.DataFrame(
        {
            "trial_id": np.arange(n, dtype=np.int64),
            "status": np.full(n, "completed"),
            "seed": seed_of.astype(np.int64),
            "arch_id": np.char.add("s", (np.arange(n) // seeds).astype(str)),
            "label": np.array(fams)[fam],
            **arch,
            "ffn_activation": np.where(fam == 0, "gelu", "swiglu"),
            "norm": np.full(n, "layernorm"),
            "position": np.where(fam == 0, "learned", "rope"),
            "block": np.full(n, "sequential"),
            "lr": np.full(n, 1e-3),
            "params": n_params,
            "non_embedding_params": n_params - 256 * arch["d_model"],
            "flops_per_token": 6.0 * n_params,
            "kv_cache_bytes_per_token": np.full(n, 1024, np.int64),
            "tokens": tokens,
            "compute": 6.0 * n_params * tokens,
            "eval_loss": loss,
            "tokens_per_s": 1e12 / n_params,
            "wall_s": tokens * n_params / 1e12,
            "error": [None] * n,
            "eval_loss_by_length": [None] * n,
            "group": np.array(fams)[fam],
            "planned_kind": np.full(n, "params"),
            "planned_size": planned_size,
            "target_tokens": tokens,
        }
    ).with_columns(pl.col("error", "eval_loss_by_length").cast(pl.String))
    run = {
        "kind": "study",
        "space": {"families": fams},
        "budget": {"compute": list(budgets)},
        "args": {"sizes_per_budget": sizes_per_budget, "seeds": seeds},
        "versions": {"archscale": "0.1.0"},
        "git_revision": "0000000",
        "hardware": {"cpu": "synthetic"},
        "storage": None,
        "study_name": "synthetic-study",
        "objectives": [{"name": "eval_loss", "direction": "minimize"}],
    }
    _write(dir, trials, _curves(rng, trials, evals_per_trial, loss), run)
    return dir
