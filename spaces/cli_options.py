"""Command-line options shared by several `archscale` commands, defined once.

Each is a typed `Annotated` alias: a command declares `as_json: JsonFlag = False` and gets the same
flag name, help text and type as every other command. Only typer and the standard library are
imported here, so `archscale --help` stays fast. Every folder's `commands.py` may import this
module (it sits in `spaces`, the one package every other folder may depend on).
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archscale.spaces.errors import UserError

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


def budget_override(params: float | None, non_embedding: float | None, flops: float | None) -> tuple[str, float] | None:
    """The one budget the --budget-* flags name, as (kind, value), or None."""
    given = [(k, v) for k, v in (("params", params), ("non_embedding_params", non_embedding),
                                 ("flops_per_token", flops)) if v is not None]
    if len(given) > 1:
        raise UserError("give at most one of --budget-params, --budget-non-embedding-params, --budget-flops-per-token")
    return given[0] if given else None


# ---- where trials run and where results go ---------------------------------------------------
Out = Annotated[str, typer.Option("--out", help="Results directory: trials.parquet, curves.parquet, run.json, "
                                                "the Optuna study and the Ray folder.")]
Data = Annotated[str, typer.Option("--data", help="Data spec: pystdlib, text:PATH, bin:DIR, copy, addition, brackets.")]
Seeds = Annotated[int, typer.Option("--seeds", min=1, help="Train each architecture with this many seeds.")]
Concurrency = Annotated[
    Optional[int], typer.Option("--concurrency", help="Trials at once (default: cluster CPUs / cpus-per-trial).")
]
CpusPerTrial = Annotated[float, typer.Option("--cpus-per-trial", help="CPUs per trial (also its torch threads).")]
GpusPerTrial = Annotated[
    str, typer.Option("--gpus-per-trial", help="GPU fraction per trial, or 'auto' (from an analytic memory estimate).")
]
Address = Annotated[
    Optional[str], typer.Option("--address", help="Ray cluster to join (default: RAY_ADDRESS, else an embedded Ray).")
]
Storage = Annotated[Optional[str], typer.Option("--storage", help="Optuna storage URL (default: DIR/optuna.journal).")]
