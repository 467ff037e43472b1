import pytest


@pytest.fixture(scope="module")
def ray_cluster():
    """One real local Ray per test module (num_cpus=2, token auth as Ray sets it by default)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL server for this module (see tests/search/postgres.py)."""
    from tests.search.postgres import start_postgres

    pg = start_postgres()
    yield pg
    pg.stop()
