"""What a search is asked to do, grouped by concern and checked before any cluster work starts.

    opts = SearchOptions(space="tiny", out="results/x", trials=12, budget=BudgetOptions(tokens=400_000))
    space, study, plan = prepare(opts)   # raises UserError naming the flag or file and what is allowed

Three groups: `BudgetOptions` (what each trial is given: budget, tokens, data, fixed training
settings, seeds), `StrategyOptions` (how trials are proposed and judged: objectives, sampler,
scheduler, sampler seed, study name, and a ladder search's `LadderPlan`) and `ExecutionOptions`
(where and how trials run: Ray address, study storage, resources, concurrency, progress).
run.json keeps them as one flat `args` mapping (`to_args` / `from_args`), the record every reader
of a results directory already knows.

Everything that can be checked is checked here: the space file, the budget, the data spec, the
objectives, the sampler and scheduler, resources, and that some sampled architecture can meet
the budget.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archscale.search.proposals import TrialPlan
from archscale.search.storage import OBJECTIVES, SAMPLERS, StudySpec, is_journal
from archscale.search.strategies.ladder_plan import LadderPlan
from archscale.spaces.cli_options import budget_flag
from archscale.spaces.errors import BudgetError, UserError
from archscale.spaces.shape_rule import BelowRuleMinimum
from archscale.spaces.space import Space, load_space, resolve_space_path

SCHEDULERS = ("asha", "none")


@dataclass(frozen=True)
class BudgetOptions:
    """What each trial is given."""

    budget_kind: str | None = None  # overrides the space file's budget (--budget-params N, ...)
    budget_value: float | None = None
    tokens: int | None = None  # fixed tokens per trial, or
    tokens_per_param: float | None = None  # tokens = R x active_params
    data: str = "pystdlib"
    train: dict[str, Any] = field(default_factory=dict)  # fixed training settings (eval interval, ...)
    seeds: int = 1  # training seeds per architecture


@dataclass(frozen=True)
class StrategyOptions:
    """How trials are proposed and judged."""

    objectives: list[str] = field(default_factory=lambda: ["eval_loss"])
    sampler: str = "tpe"
    scheduler: str = "asha"
    seed: int = 0  # sampler seed and first training seed
    study_name: str | None = None  # several drivers may share one study (same storage and name)
    group: str | None = None
    ladder: LadderPlan | None = None  # a ladder search (search/strategies/ladder.py); None otherwise


@dataclass(frozen=True)
class ExecutionOptions:
    """Where and how trials run (shared by searches and studies)."""

    address: str | None = None
    storage: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: str = "0"  # a fraction, or "auto" (from an analytic memory estimate)
    concurrency: int | None = None
    progress: bool = True
    workers_per_trial: int = 1  # >1: each trial trains data-parallel on a Ray Train run of this many workers
    shard: str = "ddp"  # with several workers: ddp (replicated model) or fsdp (FSDP2, parameters sharded)


@dataclass(frozen=True)
class SearchOptions:
    space: str
    out: str
    trials: int = 12  # architectures to try (a ladder search: ladders)
    budget: BudgetOptions = field(default_factory=BudgetOptions)
    strategy: StrategyOptions = field(default_factory=StrategyOptions)
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)

    @property
    def is_ladder(self) -> bool:
        return self.strategy.ladder is not None

    @property
    def objectives(self) -> list[str]:
        """The objectives as given, or a ladder search's default (predicted_loss)."""
        given = self.strategy.objectives
        return ["predicted_loss"] if self.is_ladder and given == ["eval_loss"] else list(given)

    def to_args(self) -> dict[str, Any]:
        """The flat `args` of run.json (the ladder plan's fields under their flag names)."""
        args: dict[str, Any] = {"space": self.space, "out": self.out, "trials": self.trials}
        for group in (self.budget, self.strategy, self.execution):
            args.update({f.name: getattr(group, f.name) for f in dataclasses.fields(group) if f.name != "ladder"})
        args["objectives"] = self.objectives  # as searched (a ladder search's default: predicted_loss)
        ladder = self.strategy.ladder or LadderPlan()
        args.update({flag: getattr(ladder, name) for flag, name in LADDER_ARGS.items()})
        if self.strategy.ladder is None:
            args.update(target_compute=None, target_params=None)
        return args

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> SearchOptions:
        """From flat `args` (run.json's, or keyword arguments by flag name); unknown keys are ignored."""
        groups = {}
        for name, group in (("budget", BudgetOptions), ("strategy", StrategyOptions), ("execution", ExecutionOptions)):
            given = {f.name: args[f.name] for f in dataclasses.fields(group) if f.name in args and f.name != "ladder"}
            groups[name] = group(**given)  # args["ladder"] is --ladder (rungs), not the plan
        if (plan := ladder_from_args(args)) is not None:
            groups["strategy"] = dataclasses.replace(groups["strategy"], ladder=plan)
        top = {k: args[k] for k in ("space", "out", "trials") if k in args}
        return cls(**top, **groups)


#: run.json / CLI flag name -> LadderPlan field
LADDER_ARGS = {
    "target_compute": "target_compute",
    "target_params": "target_params",
    "ladder": "rungs",
    "ladder_ratio": "ratio",
    "risk": "risk",
    "ladder_prune_margin": "prune_margin",
    "validate_top": "validate_top",
    "validate_compute": "validate_compute",
    "validate_seeds": "validate_seeds",
    "start_with": "start_with",
    "start_top": "start_top",
}


def ladder_from_args(args: dict[str, Any]) -> LadderPlan | None:
    """The ladder plan the flags (or run.json's args) ask for: None without a target (a plain search)."""
    given = {name: args[flag] for flag, name in LADDER_ARGS.items() if args.get(flag) is not None}
    if args.get("target_compute") is None and args.get("target_params") is None:
        if given.get("start_with"):
            raise UserError("--start-with: starts a ladder search; give --target-compute or --target-params")
        if given.get("validate_top"):
            raise UserError(
                "--validate-top: checks a ladder search's predictions; give --target-compute or --target-params"
            )
        return None
    return LadderPlan(**given)


def prepare(opts: SearchOptions) -> tuple[Space, StudySpec, TrialPlan]:
    """Validate the options and build (space, study spec, plan). Raises UserError with what to fix."""
    budget, strategy = opts.budget, opts.strategy
    space = load_space(resolve_space_path(opts.space))
    if budget.budget_kind is not None:
        space = space.with_budget(budget.budget_kind, budget.budget_value, given_as=budget_flag(budget.budget_kind))
    if space.budget is None:
        raise UserError(f"{opts.space}: no budget: add a budget block or pass --budget-params N")
    if opts.trials < 1:
        raise UserError(f"--trials: must be >= 1, got {opts.trials}")
    if budget.seeds < 1:
        raise UserError(f"--seeds: must be >= 1, got {budget.seeds}")
    _check_objectives(opts)
    if opts.is_ladder:
        strategy.ladder.check()
        if budget.seeds != 1:
            raise UserError(
                "--seeds: a ladder search trains each rung once (the joint fit pools noise across ladders); "
                "give --seeds 1"
            )
    if strategy.sampler not in SAMPLERS:
        raise UserError(f"--sampler: got {strategy.sampler!r}; allowed: {', '.join(SAMPLERS)}")
    check_scheduler(strategy.scheduler)
    check_execution(opts.execution)
    _check_batch_splits(space, opts.execution)
    check_storage(opts.execution.storage)
    if budget.tokens is not None and budget.tokens < 1:
        raise UserError(f"--tokens: must be >= 1, got {budget.tokens}")
    if budget.tokens_per_param is not None and not budget.tokens_per_param > 0:
        raise UserError(f"--tokens-per-param: must be > 0, got {budget.tokens_per_param:g}")
    if budget.tokens and budget.tokens_per_param:
        raise UserError("give --tokens or --tokens-per-param, not both")
    tokens_in_space = next((a.value for k, a in space.spec.train.items() if k == "tokens"), None)
    tokens = budget.tokens or tokens_in_space
    if not tokens and not budget.tokens_per_param:
        raise UserError("training length: give --tokens T or --tokens-per-param R (or train.tokens in the space file)")
    check_data(budget.data, space)
    _check_shape_minimum(space)
    _check_feasible(space)
    out = Path(opts.out).resolve()
    storage = opts.execution.storage or str(out / "optuna.journal")
    study = StudySpec(  # a ladder search: this study records every rung; its ladders live in `ladder_study`
        storage=storage,
        study_name=strategy.study_name or f"archscale-{space.name}",
        objectives=["eval_loss"] if opts.is_ladder else opts.objectives,
        sampler=strategy.sampler,
        seed=strategy.seed,
    )
    plan = TrialPlan(
        target_tokens=tokens,
        tokens_per_param=budget.tokens_per_param,
        data=budget.data,
        train_defaults={"eval_every_tokens": None, **budget.train},
        seeds=budget.seeds,
        base_seed=strategy.seed,
        group=strategy.group,
    )
    return space, study, plan


def _check_objectives(opts: SearchOptions) -> None:
    """A search ranks by eval_loss, a ladder search by predicted_loss; costs may come with either."""
    objectives = opts.objectives
    loss = "predicted_loss" if opts.is_ladder else "eval_loss"
    bad = [o for o in objectives if o not in OBJECTIVES or o in ("eval_loss", "predicted_loss") and o != loss]
    if bad or loss not in objectives:
        where = "a search with --target-compute/--target-params" if opts.is_ladder else "a search without a target"
        raise UserError(
            f"--objectives: got {','.join(objectives)}; {where} must include {loss}, allowed: "
            f"{', '.join(o for o in OBJECTIVES if o not in ('eval_loss', 'predicted_loss') or o == loss)}"
        )
    if opts.is_ladder and "tokens_per_s" in objectives:
        raise UserError(
            "--objectives: tokens_per_s is measured at the rungs, not the target; "
            "use a cost objective (params, flops_per_token, kv_cache_bytes_per_token)"
        )


def ladder_study(opts: SearchOptions, study: StudySpec) -> StudySpec:
    """The study whose trials are a ladder search's architectures, told their predicted loss."""
    return StudySpec(
        storage=study.storage,
        study_name=f"{study.study_name}-ladders",
        objectives=opts.objectives,
        sampler=opts.strategy.sampler,
        seed=opts.strategy.seed,
    )


def check_scheduler(name: str) -> None:
    if name not in SCHEDULERS:
        raise UserError(f"--scheduler: got {name!r}; allowed: {', '.join(SCHEDULERS)}")


def check_execution(execution: ExecutionOptions) -> None:
    """The options that say how trials run (shared by searches and studies)."""
    if execution.cpus_per_trial <= 0:
        raise UserError(f"--cpus-per-trial: must be > 0, got {execution.cpus_per_trial}")
    if execution.concurrency is not None and execution.concurrency < 1:
        raise UserError(f"--concurrency: must be >= 1, got {execution.concurrency}")
    if execution.gpus_per_trial != "auto":
        try:
            g = float(execution.gpus_per_trial)
        except ValueError:
            raise UserError(
                f"--gpus-per-trial: got {execution.gpus_per_trial!r}; allowed: a number >= 0 or auto"
            ) from None
        if g < 0:
            raise UserError(f"--gpus-per-trial: must be >= 0, got {g}")
    if execution.workers_per_trial < 1:
        raise UserError(f"--workers-per-trial: must be >= 1, got {execution.workers_per_trial}")


def _check_batch_splits(space: Space, execution: ExecutionOptions) -> None:
    """Several workers split each batch by rows: every batch size the space can train must divide."""
    w = execution.workers_per_trial
    axis = space.spec.train.get("batch_size")
    if w == 1 or axis is None or axis.choices is None and axis.value is None:
        return  # a range of batch sizes (rare) is checked when each trial starts
    for b in [axis.value] if axis.value is not None else axis.choices:
        if isinstance(b, int) and b % w:
            raise UserError(
                f"--workers-per-trial: {w} workers split each batch by rows, but {space.path or 'the space'}: "
                f"train.batch_size {b} is not a multiple of {w}"
            )


def _check_feasible(space: Space, tries: int = 200) -> None:
    """Fail before any cluster work when no sampled architecture can meet the budget (the space
    solves each distinct choice once, so an impossible budget is refused in a few solves)."""
    rng, first = random.Random(0), None
    for _ in range(tries):
        try:
            space.sample_random(rng)
            return
        except BudgetError as e:
            first = first or e
    where = space.budget_where
    raise UserError(
        f"{where}: none of {tries} sampled architectures can meet {space.budget.describe()}: "
        f"{str(first).removeprefix(f'{where}: ')}"
    )


def _check_shape_minimum(space: Space, tries: int = 50) -> None:
    """Under a shape rule, refuse a budget below the smallest size the rule honours for any sampled
    architecture (the smallest size of a search, and a ladder's rung 0), rather than fail those trials."""
    if space.spec.shape is None:
        return
    rng = random.Random(0)
    for _ in range(tries):
        try:
            space.sample_random(rng)
        except BelowRuleMinimum as e:
            raise UserError(str(e)) from None
        except BudgetError:
            continue


def check_storage(storage: str | None) -> None:
    """--storage: a journal file path (ending in .journal) or a database URL SQLAlchemy has a dialect
    for; checked without connecting, before any results directory is made."""
    if storage is None or is_journal(storage):
        return
    from archscale.clusters.connect import redact

    try:
        from sqlalchemy.engine import make_url

        url = "postgresql://" + storage.split("://", 1)[1] if storage.startswith("postgres://") else storage
        make_url(url).get_dialect()  # postgres:// is PostgreSQL too (search/storage.py gives it a driver)
    except Exception as e:  # an unparsable URL, or a dialect SQLAlchemy does not know
        raise UserError(
            f"--storage: {redact(storage)} is neither a journal file (a path ending in .journal) nor a database "
            f"URL SQLAlchemy knows (sqlite:///PATH, postgresql://USER@HOST/DB, mysql://...): {type(e).__name__}"
        ) from None


def check_data(spec: str, space: Space | None = None) -> None:
    """Open the data spec (a bad one fails here) and check the space's vocabulary can hold it."""
    from archscale.trainers.data import open_data

    try:
        source = open_data(spec)
    except ValueError as e:
        raise UserError(f"--data: {e}") from None
    vocab = space.spec.arch.get("vocab_size") if space is not None else None
    if vocab is not None and vocab.value is not None and source.vocab_size > vocab.value:
        raise UserError(
            f"{space.path}: arch.vocab_size: {vocab.value} is smaller than the "
            f"{source.vocab_size} tokens of data {spec!r}"
        )
