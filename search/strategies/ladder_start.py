"""`--start-with DIR [--start-top K]`: a ladder search whose first ladders are a finished search's best.

A search at one small budget finds which architectures look best there; a ladder search then asks
which is best at the target. Starting the ladder search with the small search's top K (each with
the learning rate and every other value its Optuna trial chose) puts those architectures on the
ladder first, so the two answers are about the same candidates; Optuna proposes the rest as
usual. The K are ranked as ASHA ranks them: architectures that trained to the end first, by their
mean eval loss over seeds, then those early stopping ended, furthest-trained first (their losses
at fewer tokens are not comparable with finished ones, so they only fill places the finished ones
leave), from the small search's trials.parquet and its Optuna study (the trial's parameters,
exactly as sampled).
Each set of parameters is checked against this search's space before any training: a value this
space cannot take is refused with the trial and the value named.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from archscale.spaces.errors import BudgetError, UserError
from archscale.spaces.space import Space


def start_params(search_dir: str | Path, space: Space, k: int) -> list[dict[str, Any]]:
    """The parameters of the `k` best architectures of the finished search in `search_dir`, best
    first, each {"params": ..., "label": ..., "arch_id": ..., "eval_loss": mean, "trial": number}.
    Raises UserError naming the directory when it holds no usable search."""
    import polars as pl

    from archscale.search.storage import StudySpec

    where = f"--start-with {search_dir}"
    run_json = Path(search_dir) / "run.json"
    trials = Path(search_dir) / "trials.parquet"
    if not run_json.is_file() or not trials.is_file():
        raise UserError(f"{where}: no run.json and trials.parquet there (give a finished search's --out)")
    run = json.loads(run_json.read_text())
    if run.get("kind") != "search" or "ladder_study" in run:
        raise UserError(f"{where}: not a plain search (a ladder search or a study); give a search at one budget")
    if "***" in str(run.get("storage", "")):
        raise UserError(f"{where}: its study storage is recorded with the password hidden; start from a journal search")
    frame = pl.read_parquet(trials).filter(
        pl.col("status").is_in(["completed", "pruned"]), pl.col("eval_loss").is_not_null()
    )
    if "run_id" in frame.columns and run.get("run_id"):
        frame = frame.filter(pl.col("run_id") == run["run_id"])
    if not frame.height:
        raise UserError(f"{where}: the search has no completed or early-stopped trials with a loss")
    # ASHA's own order: an architecture that trained further ranks above one stopped earlier, then by
    # its mean loss over the seeds at the tokens it reached (early-stopped losses are not comparable
    # with finished ones, so they only fill the places the finished ones leave)
    reached = frame.with_columns(pl.col("tokens").max().over("arch_id").alias("reached"))
    best = (
        reached.filter(pl.col("tokens") == pl.col("reached"))
        .sort("eval_loss")
        .group_by("arch_id", maintain_order=True)
        .agg(
            pl.col("trial_id").first(),
            pl.col("label").first(),
            pl.col("eval_loss").mean(),
            pl.col("reached").first().alias("tokens"),
            (pl.col("status") == "completed").all().alias("completed"),
        )
        .sort(["tokens", "eval_loss"], descending=[True, False])
        .head(k)
    )
    study = StudySpec(storage=run["storage"], study_name=run["study_name"], objectives=["eval_loss"]).open(create=False)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    chosen = []
    for row in best.iter_rows(named=True):
        trial = by_number.get(int(row["trial_id"]))
        if trial is None:
            raise UserError(f"{where}: trial {row['trial_id']} is in trials.parquet but not in the search's study")
        params = dict(trial.params)
        _check_fits(space, params, f"{where}: trial {trial.number} ({row['label']})")
        chosen.append(
            {"params": params, "label": row["label"], "arch_id": row["arch_id"], "eval_loss": row["eval_loss"]}
            | {"trial": trial.number, "tokens": row["tokens"], "completed": row["completed"]}
        )
    return chosen


def _check_fits(space: Space, params: dict[str, Any], where: str) -> None:
    """Refuse parameters this space would not sample as given (a value out of its range or choices,
    a parameter it does not have): a throwaway in-memory trial samples them as the ladder will."""
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(params)
    trial = study.ask()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna warns of out-of-range fixed values; we compare below
        try:
            space.sample(trial)
        except BudgetError:
            pass  # the choices are made before the solve; an infeasible ladder is the ladder search's to report
        except (ValueError, KeyError) as e:
            raise UserError(f"{where}: this space cannot take its parameters ({e})") from None
    differ = sorted(n for n in set(params) | set(trial.params) if params.get(n) != trial.params.get(n))
    if differ:
        name = differ[0]
        raise UserError(
            f"{where}: {name}={params.get(name)!r} is not what this space samples "
            f"(it gave {trial.params.get(name)!r}); start from a search of the same space"
        )


def enqueue_start(study: Any, chosen: list[dict[str, Any]], source: str) -> None:
    """Put the chosen parameters first in the ladder study's queue (`study`: an Optuna study)."""
    for rank, one in enumerate(chosen):
        study.enqueue_trial(
            one["params"],
            user_attrs={"started_from": source, "source_trial": one["trial"], "start_rank": rank},
            skip_if_exists=True,
        )
