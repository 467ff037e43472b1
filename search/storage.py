"""The Optuna study behind a search or a scaling study: storage, sampler, objectives.

Optuna is the record of every proposal and its outcome (ask/tell); the results directory mirrors
it for analysis. `StudySpec` says where the study lives and how it samples; it is plain data, so
it crosses to Ray's driver callbacks and is saved in `run.json` (with passwords redacted).

Storages: a journal file (the default, `DIR/optuna.journal`: one machine, or shared storage with
a single writer at a time) or an RDB URL (`postgresql://user@host/db`: several drivers on several
machines adding to one study; `pip install 'archscale[postgres]'` brings the driver). A password
in a URL never reaches output, `run.json` or an error message: give it through `PGPASSWORD` or
`~/.pgpass` (libpq reads both), so the URL itself carries none.

The study names its objectives (`study.set_metric_names`), so optuna-dashboard shows `eval_loss`,
`kv_cache_bytes_per_token`, ... rather than "0", "1".
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from archscale.spaces.errors import UserError
from archscale.spaces.record import COUNT_COLUMNS

#: objective name -> Optuna direction. Cost objectives are counts of the architecture itself.
OBJECTIVES = {
    "eval_loss": "minimize",
    "predicted_loss": "minimize",  # a ladder search's loss at the target scale (search/strategies/ladder.py)
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
        storage = open_storage(self.storage)
        if not create:
            return optuna.load_study(study_name=self.study_name, storage=storage, sampler=sampler)
        for attempt in range(3):  # two drivers creating one study (or its tables) at once: one wins, retry
            try:
                study = optuna.create_study(
                    storage=storage,
                    study_name=self.study_name,
                    directions=self.directions,
                    sampler=sampler,
                    load_if_exists=True,
                )
                break
            except Exception as e:
                if attempt == 2 or type(e).__module__.split(".")[0] not in ("sqlalchemy", "optuna"):
                    raise UserError(f"study storage {_redact(self.storage)}: {_scrub(str(e), self.storage)}") from None
                time.sleep(0.5 + attempt)
        if existing := len(study.get_trials(deepcopy=False)):
            # a study opened again (resume, another driver): a sampler seeded as at the start would
            # draw the same random proposals again, so it continues from a seed derived from both
            study.sampler = make_sampler(self.sampler, continued_seed(self.seed, existing), len(self.objectives))
        if [d.name.lower() for d in study.directions] != self.directions:
            raise UserError(
                f"--study-name {self.study_name}: the study in {_redact(self.storage)} has directions "
                f"{[d.name.lower() for d in study.directions]}, this search wants {self.directions} "
                f"({', '.join(self.objectives)}); use another --study-name"
            )
        if study.metric_names != self.objectives:
            import warnings

            with warnings.catch_warnings():  # set_metric_names is "experimental" since Optuna 3.2
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(self.objectives))
        return study


def is_journal(storage: str) -> bool:
    return storage.endswith(".journal") and "://" not in storage


def open_storage(storage: str):
    """An Optuna storage from a URL or a journal-file path (the default: safe for concurrent readers).

    Raises UserError naming the storage (password hidden) when it cannot be opened."""
    import optuna

    if is_journal(storage):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(storage))
    try:
        return _rdb_storage(storage)
    except ImportError as e:  # Optuna re-raises the driver's ModuleNotFoundError as a plain ImportError
        extra = " (pip install 'archscale[postgres]')" if storage.startswith("postgres") else ""
        raise UserError(f"--storage {_redact(storage)}: its database driver is not installed{extra}: {e}") from None
    except Exception as e:  # SQLAlchemy and the driver may quote the URL: never show its password
        raise UserError(
            f"--storage {_redact(storage)}: cannot open the study storage: {type(e).__name__}: "
            f"{_scrub(str(e), storage).strip().splitlines()[0] if str(e).strip() else ''}"
        ) from None


def _rdb_storage(url: str):
    """Optuna's RDBStorage. Two drivers starting on a new database race to create its tables (one
    gets a unique-constraint error from PostgreSQL's catalog): the loser retries, and finds them made."""
    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(_with_driver(url), engine_kwargs={"pool_pre_ping": True})
        except (IntegrityError, ProgrammingError):
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))


def _with_driver(url: str) -> str:
    """`postgresql://` with the driver the `postgres` extra installs (psycopg 3): SQLAlchemy before
    2.1 would pick psycopg2 for a URL that names no driver."""
    import importlib.util

    if url.startswith(("postgresql://", "postgres://")) and importlib.util.find_spec("psycopg"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _redact(url: str) -> str:
    from archscale.clusters.connect import redact

    return redact(url)


def _scrub(text: str, url: str) -> str:
    from archscale.clusters.connect import scrub

    return scrub(text, url)


def repair_journal(path: str | Path) -> str | None:
    """Cut a torn last record off an Optuna journal file; return what was done, or None if it was whole.

    A driver killed while appending leaves a last line without its newline (or a line that is not
    JSON). Optuna skips it when reading, but the next append would glue a new record onto it and
    corrupt the file for every later reader. Every complete record is kept; the torn bytes are
    saved beside the journal as `<name>.torn-<time>`. Run only when no driver is writing (resume).
    """
    from optuna.storages.journal import JournalFileSymlinkLock

    path = Path(path)
    if not path.exists():
        return None
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1  # up to the last newline
        while keep > 0:  # the last newline-terminated line must be a JSON record too
            start = data.rfind(b"\n", 0, keep - 1) + 1
            try:
                json.loads(data[start:keep])
                break
            except ValueError:
                keep = start
        if keep == len(data):
            return None
        torn = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
        torn.write_bytes(data[keep:])
        with open(path, "r+b") as f:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    finally:
        lock.release()
    records = data[:keep].count(b"\n")
    return (
        f"{path}: its last record was torn (a writer stopped mid-write): removed {len(data) - keep} bytes, "
        f"kept all {records} complete records; the torn bytes are in {torn.name}"
    )


def continued_seed(seed: int, trials: int) -> int:
    """The sampler seed for a study that already holds `trials` trials (deterministic, and distinct
    from `seed` and from every other count)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, trials]).generate_state(1)[0])


def make_sampler(name: str, seed: int, n_objectives: int):
    import optuna

    if name == "tpe":
        import warnings

        # Optuna 5's defaults (multivariate TPE with constant liar, TPE for several objectives too, which
        # its benchmarks favour over NSGA-II at small budgets); `group` is still "experimental" in 5.1
        with warnings.catch_warnings():
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
