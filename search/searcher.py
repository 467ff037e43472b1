"""Optuna drives Ray Tune: a Ray `Searcher` on Optuna's ask/tell.

Why not stock `OptunaSearch`: it tells Optuna COMPLETE with the last reported value even when ASHA
stopped the trial early, so the sampler learns from partial-budget losses as if they were final;
it cannot sample with our define-by-run space program, and it does not give us the trial number
that ties results files to the study. Here:

- `suggest` asks Optuna for a trial, samples the space define-by-run (conditional and narrowed
  axes work with any sampler), solves it to the budget, and hands Ray a config. Seed replicas are
  enqueued Optuna trials with the same parameters and a `seed` user attribute.
- `on_trial_result` reports every evaluation as an Optuna intermediate value (single objective).
- `on_trial_complete` tells Optuna COMPLETE (full budget reached), PRUNED (stopped early: the
  tokens reached go to the `tokens` user attribute) or FAIL (error, divergence, infeasible budget).
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from typing import Any

from ray.tune.search import Searcher

from archscale.spaces.errors import BudgetError
from archscale.spaces.space import Space

# objective name -> (optuna direction, where its value comes from)
OBJECTIVES = {
    "eval_loss": "minimize",
    "params": "minimize",
    "non_embedding_params": "minimize",
    "flops_per_token": "minimize",
    "kv_cache_bytes_per_token": "minimize",
    "tokens_per_s": "maximize",
}
COST_OBJECTIVES = ("params", "non_embedding_params", "flops_per_token", "kv_cache_bytes_per_token")


@dataclass
class StudySpec:
    storage: str  # an Optuna RDB URL, or a path ending in .journal
    study_name: str
    objectives: list[str]
    sampler: str = "tpe"
    seed: int = 0

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o] for o in self.objectives]

    def open(self, create: bool = True):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study(
            storage=open_storage(self.storage), study_name=self.study_name, directions=self.directions,
            sampler=make_sampler(self.sampler, self.seed, len(self.objectives)), load_if_exists=True,
        ) if create else optuna.load_study(study_name=self.study_name, storage=open_storage(self.storage),
                                           sampler=make_sampler(self.sampler, self.seed, len(self.objectives)))


def open_storage(storage: str):
    """An Optuna storage from a URL or a journal-file path (the default: safe for concurrent readers)."""
    import optuna

    if storage.endswith(".journal") and "://" not in storage:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(storage))
    return optuna.storages.RDBStorage(storage, engine_kwargs={"pool_pre_ping": True})


SAMPLERS = ("tpe", "random", "nsga2", "gp")


def make_sampler(name: str, seed: int, n_objectives: int):
    import optuna

    if name == "tpe":
        import warnings

        with warnings.catch_warnings():  # multivariate/group/constant_liar are "experimental" since Optuna 2.x
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=6, multivariate=True, group=True,
                                              constant_liar=True)  # constant liar: sane with concurrent trials
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=6)
    raise ValueError(f"--sampler: got {name!r}; allowed: {', '.join(SAMPLERS)}")


@dataclass
class TrialPlan:
    """Everything the trainable needs, fixed before the trial starts."""

    target_tokens: int | None = None  # fixed tokens per trial, or
    tokens_per_param: float | None = None  # tokens = ratio x params
    data: str = "pystdlib"
    train_defaults: dict[str, Any] = field(default_factory=dict)
    seeds: int = 1
    base_seed: int = 0
    group: str | None = None

    def tokens_for(self, params: int) -> int:
        if self.target_tokens:
            return int(self.target_tokens)
        return int(round(self.tokens_per_param * params))


def final_status(result: dict | None, error: bool) -> str:
    """completed | pruned | failed, from the last result Ray saw for a trial."""
    if error or not result:
        return "failed"
    if result.get("status") == "failed":
        return "failed"
    if result.get("status") == "completed":
        return "completed"
    return "pruned"  # stopped by the scheduler before the budget


class OptunaSearcher(Searcher):
    def __init__(self, space: Space | None, study: StudySpec, plan: TrialPlan, out: str):
        super().__init__(metric="eval_loss", mode="min")
        self.space = space
        self.study_spec = study
        self.plan = plan
        self.out = out  # results directory: each new trial gets its trials.parquet row at once
        self.ray_to_optuna: dict[str, int] = {}
        self._study = None

    # the study holds open storage handles: reconnect lazily after pickling
    @property
    def study(self):
        if self._study is None:
            self._study = self.study_spec.open()
        return self._study

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_study"] = None
        return state

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"ray_to_optuna": self.ray_to_optuna}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.ray_to_optuna.update(pickle.load(f)["ray_to_optuna"])

    # ---- Ray Searcher interface ------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        trial = self.study.ask()
        seed = int(trial.user_attrs.get("seed", self.plan.base_seed))
        error, arch, train, counts = None, None, {}, None
        try:
            sample = self.space.sample(trial)
            arch, train, counts = sample.arch.to_dict(), dict(sample.train), sample.counts.to_dict()
            trial.set_user_attr("arch", arch)
            trial.set_user_attr("counts", counts)
            trial.set_user_attr("budget_deviation", sample.deviation)
        except (BudgetError, ValueError) as e:
            error = f"infeasible: {e}"
        trial.set_user_attr("seed", seed)
        if "replica_of" not in trial.user_attrs and arch is not None:
            for s in range(1, self.plan.seeds):  # seed replicas: same parameters, another seed
                self.study.enqueue_trial(trial.params, user_attrs={"seed": self.plan.base_seed + s,
                                                                   "replica_of": trial.number})
        tokens = self.plan.tokens_for(counts["params"]) if counts else 0
        trial.set_user_attr("target_tokens", tokens)
        self.ray_to_optuna[trial_id] = trial.number
        config = {
            "trial_id": trial.number, "seed": seed, "arch": arch, "counts": counts, "error": error,
            "train": {**self.plan.train_defaults, **train, "tokens": tokens, "seed": seed},
            "data": self.plan.data, "group": self.plan.group, "target_tokens": tokens,
        }
        self._record_new(config)
        return config

    def _record_new(self, config: dict[str, Any]) -> None:
        from archscale.search.results import trial_row
        from archscale.search.run import writer_for

        writer_for(self.out).add_trial(trial_row(
            config["trial_id"], config["seed"], config["arch"], config["train"], config["counts"],
            group=config.get("group"), target_tokens=config["target_tokens"],
            status="failed" if config.get("error") else "running", error=config.get("error")))

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        number = self.ray_to_optuna.get(trial_id)
        loss = result.get("eval_loss")
        if number is None or len(self.study_spec.objectives) != 1 or loss is None or not math.isfinite(loss):
            return
        storage = self.study._storage
        optuna_id = storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
        storage.set_trial_intermediate_value(optuna_id, int(result["tokens"]), float(loss))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        import optuna

        number = self.ray_to_optuna.get(trial_id)
        if number is None:
            return
        status = final_status(result, error)
        storage = self.study._storage
        optuna_id = storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
        if storage.get_trial(optuna_id).state.is_finished():
            return  # already told (e.g. a restored driver replaying a completion)
        if result:
            if status == "pruned":  # Ray skips on_trial_result for the result that stopped the trial
                self.on_trial_result(trial_id, result)
            storage.set_trial_user_attr(optuna_id, "tokens", int(result.get("tokens") or 0))
            if result.get("error"):
                storage.set_trial_user_attr(optuna_id, "error", str(result["error"])[:2000])
        if status == "completed":
            values = [objective_value(o, result) for o in self.study_spec.objectives]
            if all(v is not None and math.isfinite(v) for v in values):
                self.study.tell(number, values)
                return
            status = "failed"
        state = optuna.trial.TrialState.PRUNED if status == "pruned" else optuna.trial.TrialState.FAIL
        self.study.tell(number, state=state)


def result_counts(result: dict[str, Any]) -> dict[str, Any]:
    """The trial's counts from a result, nested or as Ray's flattened `counts/<name>` keys."""
    nested = result.get("counts")
    if isinstance(nested, dict):
        return nested
    return {k.split("/", 1)[1]: v for k, v in result.items() if k.startswith("counts/")}


def objective_value(name: str, result: dict[str, Any]) -> float | None:
    if name in COST_OBJECTIVES:
        return float(result_counts(result).get(name) or math.nan)
    value = result.get(name)
    return None if value is None else float(value)
