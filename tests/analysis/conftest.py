"""Synthetic results directories for the analysis tests (written once per session)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from archscale.analysis.data import synthetic_results as synthetic


@pytest.fixture(scope="session")
def search_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished search: 24 architectures x 3 seeds, some pruned and failed, curves, an Optuna journal study."""
    return synthetic.write_search(tmp_path_factory.mktemp("results") / "search", n_archs=24, seeds=3)


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scaling study: two families (baseline, swiglu·rope), 5 compute budgets x 7 sizes each."""
    return synthetic.write_study(tmp_path_factory.mktemp("results") / "study")


@pytest.fixture()
def running_dir(tmp_path: Path) -> Path:
    """A search caught mid-write: only trials.parquet, some trials still running (null loss),
    an older writer's file lacking several columns, no curves, no run.json."""
    d = tmp_path / "running"
    d.mkdir()
    pl.DataFrame(
        {
            "trial_id": [0, 1, 2, 3],
            "status": ["completed", "running", "running", "completed"],
            "seed": [0, 0, 1, 0],
            "arch_id": ["a", "b", "b", "c"],
            "label": ["gelu·learned", "swiglu·rope", "swiglu·rope", "relu·none"],
            "ffn_activation": ["gelu", "swiglu", "swiglu", "relu"],
            "params": [1_000_000, 2_000_000, 2_000_000, 1_500_000],
            "tokens": [10_000_000, 3_000_000, 2_000_000, 10_000_000],
            "eval_loss": [3.1, None, None, 3.3],
        }
    ).write_parquet(d / "trials.parquet")
    return d
