"""Fixtures of the search tests: a real PostgreSQL server (tests/search/postgres.py)."""

import pytest


@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL server for this module (see tests/search/postgres.py)."""
    from tests.search.postgres import start_postgres

    pg = start_postgres()
    yield pg
    pg.stop()
