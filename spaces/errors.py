"""User-facing errors: each names the file, the key path, the bad value and what is allowed."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from pydantic import ValidationError


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


# pydantic's names for the members of a union, appended to an error's location (`value.bool`)
_UNION_MEMBERS = {"bool", "int", "float", "str", "none"}


def validation_problem(e: ValidationError, allowed_keys: Callable[[tuple], str] | None = None) -> tuple[str, str]:
    """The project's one-line form of a pydantic error: (key path, message), the message saying what
    is allowed and the value given. The one renderer of pydantic errors from user input: no
    documentation URL, no input dict. The first failing key is reported; the errors of one union at
    that key are merged ("a valid integer or a valid string"). `allowed_keys(loc)` lists the keys
    allowed where an unknown key `loc` was given."""
    errors = e.errors(include_url=False)
    union = len(errors) > 1

    def where(err: dict) -> tuple[str, ...]:
        loc = [str(x) for x in err["loc"] if not str(x).startswith("function-")]
        while union and loc and (loc[-1] in _UNION_MEMBERS or "[" in loc[-1]):
            loc.pop()  # a union member's tag, not a key the user wrote
        return tuple(loc)

    first = errors[0]
    loc = where(first)
    if first["type"] == "extra_forbidden":
        allowed = f"; allowed here: {allowed_keys(loc)}" if allowed_keys is not None else ""
        return ".".join(loc), f"unknown key{allowed}"
    same = [err for err in errors if where(err) == loc]
    messages = [err["msg"].removeprefix("Value error, ") for err in same]
    merged = messages[0] + "".join(
        " or " + m.removeprefix("Input should be ") for m in dict.fromkeys(messages[1:]) if m != messages[0]
    )
    given = first.get("input")
    if not isinstance(given, dict) and "got " not in merged:
        shown = repr(given)
        merged += f", got {shown if len(shown) <= 60 else shown[:57] + '...'}"
    return ".".join(loc), merged


def validation_error(
    e: ValidationError, path: str | Path | None, prefix: str = "", allowed_keys: Callable[[tuple], str] | None = None
) -> SpaceError:
    """A pydantic error from the file `path` as a `SpaceError` (keys under `prefix`), rendered by
    `validation_problem`; raise it `from None`."""
    key, message = validation_problem(e, allowed_keys)
    return SpaceError(path, ".".join(k for k in (prefix, key) if k), message)


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
