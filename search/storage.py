"""The Optuna study behind a search or a scaling study: storage, sampler, objectives.

Optuna is the record of every proposal and its outcome (ask/tell); the results directory mirrors
it for analysis. `StudySpec` says where the study lives and how it samples; it is plain data, so
it crosses to Ray's driver callbacks and is saved in `run.json` (with passwords redacted).
"""

from __future__ import annotations

from dataclasses import dataclass

from archscale.spaces.errors import UserError
from archscale.spaces.record import COUNT_COLUMNS

#: objective name -> Optuna direction. Cost objectives are counts of the architecture itself.
OBJECTIVES = {
    "eval_loss": "minimize",
    "predicted_loss": "minimize",  # a ladder search's loss at the target scale (search/ladder.py)
    **{name: "minimize" for name in COUNT_COLUMNS},
    "tokens_per_s": "maximize",
}
COST_OBJECTIVES: tuple[str, ...] = tuple(COUNT_COLUMNS)
SAMPLERS = ("tpe", "random", "nsga2", "gp")


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
        """The Optuna study (created on first use when `create`)."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = make_sampler(self.sampler, self.seed, len(self.objectives))
        if create:
            return optuna.create_study(
                storage=open_storage(self.storage),
                study_name=self.study_name,
                directions=self.directions,
                sampler=sampler,
                load_if_exists=True,
            )
        return optuna.load_study(study_name=self.study_name, storage=open_storage(self.storage), sampler=sampler)


def open_storage(storage: str):
    """An Optuna storage from a URL or a journal-file path (the default: safe for concurrent readers)."""
    import optuna

    if storage.endswith(".journal") and "://" not in storage:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(storage))
    return optuna.storages.RDBStorage(storage, engine_kwargs={"pool_pre_ping": True})


def make_sampler(name: str, seed: int, n_objectives: int):
    import optuna

    if name == "tpe":
        import warnings

        with warnings.catch_warnings():  # multivariate/group/constant_liar are "experimental" since Optuna 2.x
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=6, multivariate=True, group=True, constant_liar=True
            )  # constant liar: sane with concurrent trials
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=6)
    raise UserError(f"--sampler: got {name!r}; allowed: {', '.join(SAMPLERS)}")
