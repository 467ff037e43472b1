"""Shared fixtures for the trainer tests: an isolated cache dir and the small CI architecture."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Corpora are cached under a fresh $XDG_CACHE_HOME for the whole session (built once, ~0.5 s)."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture
def tiny_arch():
    """A ~20K-parameter decoder for fast mechanics tests (not for learning-quality checks)."""
    from archscale.spaces import ArchConfig

    return ArchConfig(
        d_model=32, n_layers=2, n_heads=2, d_ff=64, seq_len=32, position="rope", norm="rmsnorm", ffn_activation="swiglu"
    )


@pytest.fixture(autouse=True)
def _temp_dirs_in_tmp_path(tmp_path, monkeypatch):
    """Runs with out=None put checkpoints in a temp dir: keep those inside the test's tmp_path."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
