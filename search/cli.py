"""The `archscale` command: a thin typed layer over the library functions a notebook would call.

Each concern registers its own commands (`archscale.<folder>.cli.register`). Module-level imports
here and in every `cli.py` are typer and the standard library only, so `archscale --help` starts
fast and never imports torch or Ray. Bad input prints one `error: ...` line and exits 2; set
ARCHSCALE_TRACEBACK=1 to see the traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer

app = typer.Typer(
    name="archscale",
    help="Search decoder-only transformer architectures under an exact parameter or FLOP budget, "
    "and run scaling studies on them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    from archscale.spaces import cli as spaces_cli

    spaces_cli.register(app)
    for module in ("archscale.trainers.cli", "archscale.search.commands", "archscale.analysis.cli"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as e:  # a part not installed yet must not break the others
            if e.name != module:
                raise
            continue
        mod.register(app)


_register_all()


def main() -> None:
    """Console entry point. Typer (standalone) handles usage errors, exit codes and Ctrl-C; anything
    else that escapes a command becomes one `error: ...` line: exit 2 for bad input, 1 otherwise."""
    try:
        app()
    except Exception as e:  # noqa: BLE001
        if os.environ.get("ARCHSCALE_TRACEBACK"):
            raise
        user_error = isinstance(e, (ValueError, FileNotFoundError, FileExistsError, KeyError))
        print(f"error: {e}", file=sys.stderr)
        if not user_error:
            print("(unexpected; set ARCHSCALE_TRACEBACK=1 to see the traceback)", file=sys.stderr)
        sys.exit(2 if user_error else 1)


if __name__ == "__main__":
    main()
