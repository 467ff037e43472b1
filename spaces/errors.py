"""User-facing errors: each names the file, the key path, the bad value and what is allowed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


class UserError(ValueError):
    """Bad input the user can fix: the `archscale` command prints the message as one `error: ...`
    line and exits 2, with no traceback. Raise it (or a subclass) for every mistake in a file, a
    flag or an argument; any other exception is a bug and is reported as one.

    A `ValueError` so that library callers that already catch `ValueError` keep working."""


class SpaceError(UserError):
    """Bad input in a space, architecture or study file: names the file, the key and what is allowed."""

    def __init__(self, path: str | Path | None, key: str, message: str):
        self.path = str(path) if path is not None else None
        self.key = key
        self.message = message
        where = self.path or "<input>"
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class BudgetError(UserError):
    """The sampled choices cannot meet the budget; the message gives the feasible range."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` and `3e5` as floats (YAML 1.1 wants a dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON file holding a mapping, with clean errors."""
    p = Path(path)
    if not p.is_file():
        raise SpaceError(p, "", "file not found")
    try:
        data = yaml.load(p.read_text(), Loader=_Loader)
    except yaml.YAMLError as e:
        raise SpaceError(p, "", f"not valid YAML/JSON: {str(e).splitlines()[0]}") from None
    except UnicodeDecodeError:
        raise SpaceError(p, "", "not a text file") from None
    if not isinstance(data, dict):
        raise SpaceError(p, "", f"expected a mapping at the top level, got {type(data).__name__}")
    return data
