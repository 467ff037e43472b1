"""`archscale search resume DIR [--trials K2]`: not available yet.

Planned (see the search issue): `ray.tune.Tuner.restore(DIR/ray/search, ...)` to finish unfinished
trials from their checkpoints (the searcher already saves its Ray-to-Optuna trial map and
reconnects the study from storage), reconciliation of Optuna trials left RUNNING by a killed
driver, and a new experiment on the same study to extend a finished search to K2 trials.
"""

from __future__ import annotations

from pathlib import Path


def resume_search(out: str | Path, trials: int | None = None, address: str | None = None,
                  progress: bool = True) -> None:
    if not (Path(out) / "run.json").exists():
        raise FileNotFoundError(f"{out}: not a results directory (no run.json)")
    raise ValueError(
        f"{out}: resuming or extending a search is not available in this version yet; the results already "
        "written are intact (trials.parquet, curves.parquet, the Optuna study). To add trials now, run a new "
        "search with --storage pointing at the same study storage and a new --out."
    )
