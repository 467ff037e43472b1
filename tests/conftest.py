"""Shared test setup. Each area keeps its own fixtures in tests/<area>/conftest.py."""

import os

os.environ.setdefault("ARCHSCALE_TEST", "1")
