"""The quickstart's closing analysis: the best architecture, its exponent, and whether it holds when scaled up."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from archscale.analysis.laws.groups import fit_groups


def quickstart_findings(search_dirs: Sequence[Path], scaling_dir: Path, *, bootstrap: int = 200) -> dict[str, Any]:
    """What the quickstart reports after its runs: architectures of ``search_dirs`` ranked by seed
    mean (``ranking``, ``best``, ``seed_std``), each scaling-study family's power-law exponent in
    compute where the runs identify and bound it, else why (``exponents``), and whether the best
    architecture is still best at the largest size of ``scaling_dir`` (``largest_size``,
    ``winner_holds_at_largest``, ``winner_gap_at_largest``: 0 when it holds)."""
    search = pl.concat([pl.read_parquet(Path(d) / "trials.parquet") for d in search_dirs], how="diagonal_relaxed")
    by_arch = (
        search.filter(pl.col("status") == "completed")
        .group_by("label")
        .agg(pl.col("eval_loss").mean().alias("mean"), pl.col("eval_loss").std().alias("std"), pl.len().alias("seeds"))
        .sort("mean")
    )
    scaling = pl.read_parquet(Path(scaling_dir) / "trials.parquet").filter(pl.col("status") == "completed")
    fits = fit_groups(scaling, by="group", law="power", x="compute", bootstrap=bootstrap)
    exponents = {  # alpha only where the runs identify and bound it; else why (LawFit)
        name: {
            "alpha": None if "alpha" in fit.undetermined() or not fit.identified else fit.params["alpha"],
            "ci": fit.ci().get("alpha"),
            "n_runs": fit.n_runs,
            "interval": fit.interval_note,
            "why_not": fit.not_identified or fit.undetermined().get("alpha", ""),
        }
        for name, fit in fits.items()
    }
    largest = scaling.filter(pl.col("params") == pl.col("params").max().over("group")).sort("eval_loss")
    winner = by_arch.row(0, named=True) if by_arch.height else None
    holds, gap = None, None
    if winner is not None and largest.height:
        holds = largest.row(0, named=True)["group"] == winner["label"]
        mine = largest.filter(pl.col("group") == winner["label"])
        if mine.height:
            gap = float(mine["eval_loss"][0] - largest["eval_loss"][0])  # 0 when the winner holds
    return {
        "best": winner,
        "ranking": by_arch.to_dicts(),
        "exponents": exponents,
        "largest_size": largest.select("group", "params", "eval_loss").to_dicts(),
        "winner_holds_at_largest": holds,
        "winner_gap_at_largest": gap,
        "seed_std": winner.get("std") if winner else None,
    }
