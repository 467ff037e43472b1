"""Command-line options shared by several `archscale` commands, defined once.

Each is a typed `Annotated` alias: a command declares `as_json: JsonFlag = False` and gets the same
flag name, help text and type as every other command. Only typer and the standard library are
imported here, so `archscale --help` stays fast. Every folder's `commands.py` may import this
module (it sits in `spaces`, the one package every other folder may depend on).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, NamedTuple, Optional

import typer

from archscale.spaces.errors import UserError

#: Errors that are the user's to fix: one `error: ...` line, exit 2. FileNotFoundError and
#: FileExistsError are raised on purpose for results files that are missing or already there.
USER_ERRORS = (UserError, FileNotFoundError, FileExistsError)


def user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate every command: a user error becomes one `error: ...` line on stderr and exit
    status 2, in the `archscale` app and in any app the command is registered on (tests, `python
    -m`). Any other exception propagates: it is a bug, and `main()` reports it as one.
    ARCHSCALE_TRACEBACK=1 lets user errors propagate too, with their traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as e:
            if os.environ.get("ARCHSCALE_TRACEBACK"):
                raise
            print(f"error: {e}", file=sys.stderr, flush=True)
            raise typer.Exit(2) from None

    return run


def command_group(help: str, **kwargs) -> typer.Typer:
    """A typer app (the root or a command group) with archscale's conventions: plain help text,
    which wraps at any width and never cuts an option's name short (rich's tables do, at 80
    columns), and help shown when no command is given."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None, **kwargs)


# ---- output ---------------------------------------------------------------------------------
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.")]

# ---- budget: at most one of these overrides the space file's budget --------------------------
BudgetParams = Annotated[Optional[float], typer.Option("--budget-params", help="Total parameter budget.")]
BudgetNonEmbeddingParams = Annotated[
    Optional[float], typer.Option("--budget-non-embedding-params", help="Non-embedding parameter budget.")
]
BudgetFlopsPerToken = Annotated[
    Optional[float], typer.Option("--budget-flops-per-token", help="Training FLOPs-per-token budget.")
]

BudgetActiveParams = Annotated[
    Optional[float],
    typer.Option(
        "--budget-active-params", help="Budget of the parameters one token uses (differs under ffn_type=moe)."
    ),
]


def budget_flag(kind: str) -> str:
    """The --budget-* flag of a budget kind: `params` -> `--budget-params`."""
    return f"--budget-{kind.replace('_', '-')}"


class BudgetOverride(NamedTuple):
    """The budget one --budget-* flag gives; `space.with_budget(*override)` applies it, and errors
    about it name the flag."""

    kind: str
    value: float
    tolerance: float | None  # None: the space's own
    given_as: str  # the flag


def budget_override(
    params: float | None, non_embedding: float | None, flops: float | None, active: float | None = None
) -> BudgetOverride | None:
    """The one budget the --budget-* flags name, or None."""
    given = [
        (k, v)
        for k, v in (
            ("params", params),
            ("non_embedding_params", non_embedding),
            ("flops_per_token", flops),
            ("active_params", active),
        )
        if v is not None
    ]
    if len(given) > 1:
        raise UserError(
            "give at most one of --budget-params, --budget-non-embedding-params, --budget-flops-per-token, "
            "--budget-active-params"
        )
    return BudgetOverride(given[0][0], given[0][1], None, budget_flag(given[0][0])) if given else None


# ---- where trials run and where results go ---------------------------------------------------
Out = Annotated[
    str,
    typer.Option(
        "--out",
        help="Results directory: trials.parquet, curves.parquet, run.json, the Optuna study and the Ray folder.",
    ),
]
Data = Annotated[str, typer.Option("--data", help="Data spec: pystdlib, text:PATH, bin:DIR, copy, addition, brackets.")]
Seeds = Annotated[int, typer.Option("--seeds", min=1, help="Train each architecture with this many seeds.")]
Concurrency = Annotated[
    Optional[int], typer.Option("--concurrency", min=1, help="Trials at once (default: cluster CPUs / cpus-per-trial).")
]
CpusPerTrial = Annotated[float, typer.Option("--cpus-per-trial", help="CPUs per trial (also its torch threads).")]
GpusPerTrial = Annotated[
    str, typer.Option("--gpus-per-trial", help="GPU fraction per trial, or 'auto' (from an analytic memory estimate).")
]
Address = Annotated[
    Optional[str], typer.Option("--address", help="Ray cluster to join (default: RAY_ADDRESS, else an embedded Ray).")
]
Storage = Annotated[Optional[str], typer.Option("--storage", help="Optuna storage URL (default: DIR/optuna.journal).")]
