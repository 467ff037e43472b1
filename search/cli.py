"""The `archscale` command: a thin typed layer over the library functions a notebook would call.

Each folder registers its own commands from its `commands.py` (`register(app)`); shared options
are typed aliases in `archscale.spaces.cli_options`. Module-level imports here and in every
`commands.py` are typer, the standard library and light `archscale.spaces` modules only, so
`archscale --help` starts fast and never imports torch or Ray. Bad input (`UserError`, or a
results file that is missing or already there) prints one `error: ...` line and exits 2; anything
else is a bug and says so. ARCHSCALE_TRACEBACK=1 shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, Optional

import typer

from archscale.spaces.cli_options import USER_ERRORS, command_group

app = command_group(
    "Search decoder-only transformer architectures under an exact parameter or FLOP budget, "
    "and run scaling studies on them.",
    name="archscale",
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES = (
    "archscale.spaces.commands",
    "archscale.trainers.commands",
    "archscale.search.commands",
    "archscale.analysis.commands",
    "archscale.search.gpu_check",  # `check gpu`, on the `check` group of archscale.trainers.commands
)


def _version(value: bool) -> None:
    if value:
        import importlib.metadata

        typer.echo(f"archscale {importlib.metadata.version('archscale')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print archscale's version and exit."),
    ] = None,
) -> None:
    """Search decoder-only transformer architectures under an exact parameter or FLOP budget,
    and run scaling studies on them."""


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    """Console entry point: every error is one `error: ...` line on stderr, no traceback (set
    ARCHSCALE_TRACEBACK=1 for one). Exit 2 for bad input or usage, 1 for anything unexpected."""
    from typer.exceptions import TyperException  # typer's vendored click raises these for usage errors

    try:
        code = app(standalone_mode=False)
    except USER_ERRORS as e:
        if os.environ.get("ARCHSCALE_TRACEBACK"):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except TyperException as e:  # usage errors: unknown option, missing argument, bad value
        print(f"error: {usage_line(e)}", file=sys.stderr)
        sys.exit(e.exit_code)
    except Exception as e:
        if os.environ.get("ARCHSCALE_TRACEBACK"):
            raise
        print(
            f"error: {type(e).__name__}: {e}\n(unexpected: this is a bug in archscale; set ARCHSCALE_TRACEBACK=1 "
            "to see the traceback and please report it)",
            file=sys.stderr,
        )
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)


def usage_line(e: Exception) -> str:
    """A usage error as one line, with the help to read: `Invalid value for '--tokens': 'abc' is not
    a valid integer (see archscale search run --help)`."""
    message = " ".join(line.strip() for line in e.format_message().splitlines() if line.strip())
    ctx = getattr(e, "ctx", None)
    if getattr(e, "exit_code", None) != 2:
        return message
    return f"{message} (see {ctx.command_path if ctx is not None else 'archscale COMMAND'} --help)"


if __name__ == "__main__":
    main()
