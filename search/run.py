"""Running a search: Ray Tune distributes trials that Optuna proposes; results land in DIR as they come.

    run_search(SearchOptions(space="tiny", out="results/x", trials=12, ...)) -> summary dict
    resume_search("results/x", trials=None)                                 -> summary dict

Everything that can be checked is checked before Ray starts: the space file, the budget, the data
spec, the objectives, and that DIR does not already hold a search (use resume for that).
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from archscale.search.results import ResultsWriter, summarize, write_json

EXPERIMENT = "search"
_WRITERS: dict[str, ResultsWriter] = {}
_WRITERS_LOCK = threading.Lock()


def writer_for(out: str | Path) -> ResultsWriter:
    """One writer per results directory per process (callbacks and searcher share it)."""
    key = str(Path(out).resolve())
    with _WRITERS_LOCK:
        if key not in _WRITERS:
            _WRITERS[key] = ResultsWriter(Path(key))
        return _WRITERS[key]


@dataclass
class SearchOptions:
    space: str
    out: str
    trials: int = 12
    budget_kind: str | None = None
    budget_value: float | None = None
    tokens: int | None = None
    tokens_per_param: float | None = None
    data: str = "pystdlib"
    sampler: str = "tpe"
    objectives: list[str] = field(default_factory=lambda: ["eval_loss"])
    scheduler: str = "asha"
    seeds: int = 1
    concurrency: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: str = "0"  # a fraction, or "auto" (from an analytic memory estimate)
    address: str | None = None
    storage: str | None = None
    seed: int = 0
    train: dict[str, Any] = field(default_factory=dict)  # fixed training settings (eval interval, ...)
    study_name: str | None = None
    group: str | None = None
    progress: bool = True


# --------------------------------------------------------------------------------------------
# validation before any cluster work


def prepare(opts: SearchOptions):
    """Validate the options and build (space, study spec, plan). Raises ValueError with what to fix."""
    from archscale.search.searcher import OBJECTIVES, SAMPLERS, StudySpec, TrialPlan
    from archscale.spaces.space import load_space, resolve_space_path

    space = load_space(resolve_space_path(opts.space))
    if opts.budget_kind is not None:
        space = space.with_budget(opts.budget_kind, opts.budget_value)
    if space.budget is None:
        raise ValueError(f"{opts.space}: no budget: add a budget block or pass --budget-params N")
    if opts.trials < 1:
        raise ValueError(f"--trials: must be >= 1, got {opts.trials}")
    if opts.seeds < 1:
        raise ValueError(f"--seeds: must be >= 1, got {opts.seeds}")
    bad = [o for o in opts.objectives if o not in OBJECTIVES]
    if bad or "eval_loss" not in opts.objectives:
        raise ValueError(f"--objectives: got {','.join(opts.objectives)}; must include eval_loss, allowed: {', '.join(OBJECTIVES)}")
    if opts.sampler not in SAMPLERS:
        raise ValueError(f"--sampler: got {opts.sampler!r}; allowed: {', '.join(SAMPLERS)}")
    if opts.scheduler not in ("asha", "none"):
        raise ValueError(f"--scheduler: got {opts.scheduler!r}; allowed: asha, none")
    if opts.tokens and opts.tokens_per_param:
        raise ValueError("give --tokens or --tokens-per-param, not both")
    tokens_in_space = next((a.value for k, a in space.spec.train.items() if k == "tokens"), None)
    tokens = opts.tokens or tokens_in_space
    if not tokens and not opts.tokens_per_param:
        raise ValueError("training length: give --tokens T or --tokens-per-param R (or train.tokens in the space file)")
    if opts.cpus_per_trial <= 0:
        raise ValueError(f"--cpus-per-trial: must be > 0, got {opts.cpus_per_trial}")
    if opts.gpus_per_trial != "auto":
        try:
            g = float(opts.gpus_per_trial)
        except ValueError:
            raise ValueError(f"--gpus-per-trial: got {opts.gpus_per_trial!r}; allowed: a number >= 0 or auto") from None
        if g < 0:
            raise ValueError(f"--gpus-per-trial: must be >= 0, got {g}")
    _check_data(opts.data, space)
    _check_feasible(space)
    out = Path(opts.out).resolve()
    storage = opts.storage or str(out / "optuna.journal")
    study = StudySpec(storage=storage, study_name=opts.study_name or f"archscale-{space.name}",
                      objectives=list(opts.objectives), sampler=opts.sampler, seed=opts.seed)
    defaults = {"eval_every_tokens": None, **opts.train}
    plan = TrialPlan(target_tokens=tokens, tokens_per_param=opts.tokens_per_param, data=opts.data,
                     train_defaults=defaults, seeds=opts.seeds, base_seed=opts.seed, group=opts.group)
    return space, study, plan


def _check_feasible(space, tries: int = 200) -> None:  # noqa: ANN001
    """Fail before any cluster work when no sampled architecture can meet the budget."""
    import random

    from archscale.spaces.errors import BudgetError

    rng, first = random.Random(0), None
    for _ in range(tries):
        try:
            space.sample_random(rng)
            return
        except BudgetError as e:
            first = first or e
    raise ValueError(f"{space.path}: budget: none of {tries} sampled architectures can meet "
                     f"{space.budget.describe()}: {first}")


def _check_data(spec: str, space) -> None:  # noqa: ANN001
    from archscale.trainers.data import open_data

    source = open_data(spec)
    vocab = space.spec.arch.get("vocab_size")
    if vocab is not None and vocab.value is not None and source.vocab_size > vocab.value:
        raise ValueError(f"{space.path}: arch.vocab_size: {vocab.value} is smaller than the {source.vocab_size} tokens of data {spec!r}")


# --------------------------------------------------------------------------------------------
# Ray Tune callbacks: results files and live progress


def _tune_callback_base():
    from ray.tune import Callback

    return Callback


class ResultsCallback(_tune_callback_base()):
    """Writes trials.parquet and curves.parquet as trials report and finish (driver side)."""

    def __init__(self, out: str):
        self.out = out

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        if result.get("status") == "running":
            writer_for(self.out).add_curve(int(trial.config["trial_id"]), result)

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        from archscale.search.searcher import final_status

        result = trial.last_result or {}
        status = final_status(result, error=False)
        self._finish(trial, status, result)

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        error = None
        try:
            error = str(trial.get_error()).strip().splitlines()[-1][:2000]
        except Exception:  # noqa: BLE001
            error = "the trial's worker failed (see the Ray experiment folder)"
        self._finish(trial, "failed", {**(trial.last_result or {}), "error": error})

    def _finish(self, trial, status: str, result: dict[str, Any]) -> None:  # noqa: ANN001
        trial_id = int(trial.config["trial_id"])
        fields: dict[str, Any] = {"error": result.get("error")}
        for key in ("tokens", "compute", "tokens_per_s", "wall_s", "eval_bpb", "eval_loss_by_length"):
            if result.get(key) is not None:
                fields[key] = result[key]
        loss = result.get("eval_loss")
        if loss is not None and math.isfinite(loss):
            fields["eval_loss"] = loss
        writer_for(self.out).finish_trial(trial_id, status, **fields)


class ProgressCallback(_tune_callback_base()):
    """Live progress: running trials, tokens/s, best so far, ETA (rich; plain lines when not a TTY)."""

    def __init__(self, total: int, out: str, enabled: bool = True):
        self.total, self.out, self.enabled = total, out, enabled
        self.start = time.monotonic()
        self.running: dict[int, dict[str, Any]] = {}
        self.done = 0
        self.best: tuple[float, str] | None = None
        self._live = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_live"] = None
        return state

    def _console(self):
        from rich.console import Console

        return Console(stderr=True)

    def setup(self, **info):  # noqa: ANN003
        if not self.enabled:
            return
        console = self._console()
        if console.is_terminal:
            from rich.live import Live

            self._live = Live(self._render(), console=console, refresh_per_second=2, transient=False)
            self._live.start()

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        if result.get("status") == "running":
            self.running[int(trial.config["trial_id"])] = {"label": _label(trial), **result}
        self._refresh()

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        self._finished(trial, None)

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        self._finished(trial, "failed")

    def _finished(self, trial, forced: str | None) -> None:  # noqa: ANN001
        from archscale.search.searcher import final_status

        trial_id = int(trial.config["trial_id"])
        self.running.pop(trial_id, None)
        self.done += 1
        result = trial.last_result or {}
        status = forced or final_status(result, error=False)
        loss = result.get("eval_loss")
        if status == "completed" and loss is not None and (self.best is None or loss < self.best[0]):
            self.best = (loss, f"#{trial_id} {_label(trial)}")
        if self.enabled and self._live is None:
            loss_text = f"{loss:.4f}" if loss is not None and math.isfinite(loss) else "-"
            err = f"  {result.get('error')}" if status == "failed" and result.get("error") else ""
            print(f"[{self.done}/{self.total}] trial {trial_id} {status:9s} eval_loss {loss_text}  "
                  f"tokens {result.get('tokens', 0):,}  {_label(trial)}{err}", file=sys.stderr, flush=True)
        self._refresh()

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def _render(self):
        from rich.table import Table

        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        best = f"best {self.best[0]:.4f} ({self.best[1]})" if self.best else "best -"
        title = (f"{self.done}/{self.total} trials done · {len(self.running)} running · {best} · "
                 f"{elapsed:.0f}s elapsed" + (f" · ETA {eta:.0f}s" if eta is not None else ""))
        table = Table(title=title, title_justify="left")
        for col in ("trial", "architecture", "tokens", "eval_loss", "tokens/s"):
            table.add_column(col)
        for tid, r in sorted(self.running.items()):
            loss = r.get("eval_loss")
            table.add_row(str(tid), r["label"], f"{r.get('tokens', 0):,}/{r.get('target_tokens', 0):,}",
                          f"{loss:.4f}" if loss is not None else "-", f"{r.get('tokens_per_s') or 0:,.0f}")
        return table

    def on_experiment_end(self, trials, **info):  # noqa: ANN001
        if self._live is not None:
            self._live.stop()
            self._live = None


def _label(trial) -> str:  # noqa: ANN001
    from archscale.spaces import ArchConfig

    arch = trial.config.get("arch")
    return ArchConfig(**arch).label if arch else "(infeasible)"


# --------------------------------------------------------------------------------------------
# run / resume


def describe_environment() -> dict[str, Any]:
    import importlib.metadata as md
    import subprocess

    versions = {}
    for pkg in ("archscale", "torch", "ray", "optuna", "polars", "altair"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    versions["python"] = platform.python_version()
    try:
        git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except Exception:  # noqa: BLE001
        git = None
    hardware = {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count(),
                "platform": platform.platform()}
    return {"versions": versions, "git_revision": git, "hardware": hardware}


def run_search(opts: SearchOptions) -> dict[str, Any]:
    """Run a search into `opts.out` and return its summary (counts by status, best trial)."""
    space, study, plan = prepare(opts)
    out = Path(opts.out).resolve()
    if (out / "run.json").exists():
        raise FileExistsError(f"{out}: already holds a search (run.json); use `archscale search resume {opts.out}` "
                              "to continue or extend it, or choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    from archscale.clusters.connect import redact

    run_info = {
        "kind": "search", "space": space.spec.model_dump(mode="json"), "space_file": space.path,
        "budget": asdict(space.budget), "args": {**asdict(opts), "storage": redact(opts.storage)},
        "objectives": [{"name": o, "direction": d} for o, d in zip(study.objectives, study.directions)],
        "storage": redact(study.storage) if opts.storage else study.storage, "study_name": study.study_name,
        "experiment": str(out / "ray" / EXPERIMENT), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **describe_environment(),
    }
    write_json(out / "run.json", run_info)
    from archscale.search.searcher import OptunaSearcher

    searcher = OptunaSearcher(space, study, plan, out=str(out))
    max_tokens = plan.target_tokens or int(plan.tokens_per_param * space.budget.value)
    return _fit(searcher, study, opts, out, total=opts.trials * opts.seeds, max_tokens=max_tokens)


def _fit(searcher, study, opts: SearchOptions, out: Path, total: int, max_tokens: int,  # noqa: ANN001
         experiment: str = EXPERIMENT) -> dict[str, Any]:
    """Run `searcher`'s trials through Ray Tune into `out`. Shared by searches and scaling studies."""
    from ray import tune

    from archscale.clusters.connect import connect
    from archscale.search.schedulers import make_scheduler
    from archscale.search.trial import run_trial

    study.open()  # create the study (fails early on a bad storage URL)
    cluster = connect(opts.address)
    writer = writer_for(out)
    scheduler = make_scheduler(opts.scheduler, study.objectives, max_tokens)
    resources = trial_resources(opts.cpus_per_trial, opts.gpus_per_trial)
    trainable = tune.with_resources(run_trial, resources)
    concurrency = opts.concurrency or max(1, int(cluster["cpus"] // opts.cpus_per_trial))
    progress = ProgressCallback(total, str(out), enabled=opts.progress)
    run_config = tune.RunConfig(
        name=experiment, storage_path=str(out / "ray"), verbose=0,
        callbacks=[ResultsCallback(str(out)), progress],
        failure_config=tune.FailureConfig(max_failures=2),  # dead workers: retried from the last checkpoint
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=total,
                                    max_concurrent_trials=concurrency, reuse_actors=True),
        run_config=run_config,
    )
    started = time.monotonic()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Ray Tune's banners must not mix with --json output
            tuner.fit()
    finally:
        writer.flush()
    return summarize(out, wall_s=time.monotonic() - started)


def trial_resources(cpus: float, gpus: str):
    """Ray resources per trial: fixed, or a GPU fraction from an analytic memory estimate."""
    if gpus == "auto":
        from archscale.search.resources import gpu_fraction_for

        return lambda config: {"cpu": cpus, "gpu": gpu_fraction_for(config)}
    g = float(gpus)
    return {"cpu": cpus, "gpu": g} if g else {"cpu": cpus}
