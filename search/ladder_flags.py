"""The ladder search's command-line flags (`search run --target-compute ...`), each defined once as an
annotated type: `search run` and `search submit` share them through `search_options`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

TargetCompute = Annotated[
    Optional[float],
    typer.Option(
        "--target-compute",
        help="Ladder search: rank architectures by the loss predicted at this training compute (FLOPs).",
    ),
]
TargetParams = Annotated[
    Optional[float],
    typer.Option(
        "--target-params", help="Ladder search: the target named by its size, trained by the search's tokens rule."
    ),
]
Rungs = Annotated[int, typer.Option("--ladder", help="Ladder search: sizes (rungs) per architecture.")]
Ratio = Annotated[float, typer.Option("--ladder-ratio", help="Ladder search: each rung's budget over the one below.")]
Risk = Annotated[
    str, typer.Option("--risk", help="Ladder search: tell Optuna the mean prediction, or its 95% upper end (ucb).")
]
PruneMargin = Annotated[
    float,
    typer.Option("--ladder-prune-margin", help="Ladder search: stop a ladder whose rung 0 is this many nats behind."),
]
ValidateTop = Annotated[
    int,
    typer.Option(
        "--validate-top", min=0, help="Ladder search: then train the top K for real at a held-out larger scale."
    ),
]
ValidateCompute = Annotated[
    Optional[float],
    typer.Option("--validate-compute", help="That scale in FLOPs (default: 4x the largest rung's compute)."),
]
ValidateSeeds = Annotated[
    int,
    typer.Option(
        "--validate-seeds",
        min=1,
        help="Seeds per validated architecture (2 or more: the winner check is judged against seed noise).",
    ),
]
StartWith = Annotated[
    Optional[str],
    typer.Option(
        "--start-with",
        help="Ladder search: a finished search's --out; its best architectures (--start-top) are the first ladders.",
    ),
]
StartTop = Annotated[
    int, typer.Option("--start-top", min=1, help="With --start-with: how many of that search's best to start with.")
]
