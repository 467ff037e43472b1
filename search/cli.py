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
    """Console entry point: every error is one `error: ...` line on stderr, no traceback (set
    ARCHSCALE_TRACEBACK=1 for one). Exit 2 for bad input or usage, 1 for anything unexpected."""
    try:
        code = app(standalone_mode=False)
    except Exception as e:  # noqa: BLE001
        if os.environ.get("ARCHSCALE_TRACEBACK"):
            raise
        if isinstance(e, (ValueError, FileNotFoundError, FileExistsError, KeyError)):
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):  # click's exceptions (typer vendors click)
            print(f"error: {e.format_message()}", file=sys.stderr)
            if type(e).__name__ in ("UsageError", "NoSuchOption", "MissingParameter", "BadOptionUsage"):
                print("(see `archscale COMMAND --help`)", file=sys.stderr)
            sys.exit(e.exit_code)
        if type(e).__name__ == "Abort":
            print("aborted", file=sys.stderr)
            sys.exit(130)
        print(f"error: {e}\n(unexpected; set ARCHSCALE_TRACEBACK=1 to see the traceback)", file=sys.stderr)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
