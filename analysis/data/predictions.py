"""Reading a ladder search's predictions (DIR/predictions.parquet, written by the search)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl


def load_predictions(dirs: Sequence[Any]) -> Any:
    """predictions.parquet of every ladder search among `dirs`, with a `run` column (polars)."""
    frames = [
        pl.read_parquet(Path(d) / "predictions.parquet").with_columns(run=pl.lit(Path(d).resolve().name))
        for d in dirs
        if (Path(d) / "predictions.parquet").exists()
    ]
    return pl.concat(frames, how="diagonal_relaxed") if frames else None
