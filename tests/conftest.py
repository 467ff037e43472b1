"""Shared test setup: the real local Ray fixture every area uses; each area keeps its own fixtures in
tests/<area>/conftest.py, and shared helpers live in tests/helpers.py."""

import os

import pytest

os.environ.setdefault("ARCHSCALE_TEST", "1")


@pytest.fixture(scope="module")
def ray_cluster():
    """One real local Ray per test module (num_cpus=2, token auth as Ray sets it by default)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()
