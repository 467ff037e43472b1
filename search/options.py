"""What a search is asked to do, checked before any cluster work starts.

    opts = SearchOptions(space="tiny", out="results/x", trials=12, tokens=400_000)
    space, study, plan = prepare(opts)   # raises UserError naming the flag or file and what is allowed

Everything that can be checked is checked here: the space file, the budget, the data spec, the
objectives, the sampler and scheduler, resources, and that some sampled architecture can meet
the budget.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archscale.search.proposals import TrialPlan
from archscale.search.storage import OBJECTIVES, SAMPLERS, StudySpec
from archscale.spaces.errors import BudgetError, UserError
from archscale.spaces.space import Space, load_space, resolve_space_path

SCHEDULERS = ("asha", "none")


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
    study_name: str | None = None  # several drivers may share one study (same storage and name)
    group: str | None = None
    progress: bool = True
    # a ladder search (search/ladder.py): the target scale, and how each architecture is judged
    target_compute: float | None = None
    target_params: float | None = None
    ladder: int = 3
    ladder_ratio: float = 2.0
    risk: str = "mean"
    ladder_prune_margin: float = 0.05
    validate_top: int = 0  # after a ladder search: train the top K at a held-out larger scale
    validate_compute: float | None = None  # that scale (default: 4x the largest rung's compute)

    @property
    def is_ladder(self) -> bool:
        return self.target_compute is not None or self.target_params is not None


def ladder_plan(opts: SearchOptions):
    """The ladder plan of a search with a target, checked; None for an ordinary search."""
    if not opts.is_ladder:
        return None
    from archscale.search.ladder import LadderPlan

    plan = LadderPlan(
        rungs=opts.ladder,
        ratio=opts.ladder_ratio,
        risk=opts.risk,
        target_compute=opts.target_compute,
        target_params=opts.target_params,
        prune_margin=opts.ladder_prune_margin,
    )
    plan.check()
    return plan


def prepare(opts: SearchOptions) -> tuple[Space, StudySpec, TrialPlan]:
    """Validate the options and build (space, study spec, plan). Raises UserError with what to fix."""
    space = load_space(resolve_space_path(opts.space))
    if opts.budget_kind is not None:
        space = space.with_budget(opts.budget_kind, opts.budget_value)
    if space.budget is None:
        raise UserError(f"{opts.space}: no budget: add a budget block or pass --budget-params N")
    if opts.trials < 1:
        raise UserError(f"--trials: must be >= 1, got {opts.trials}")
    if opts.seeds < 1:
        raise UserError(f"--seeds: must be >= 1, got {opts.seeds}")
    loss = "predicted_loss" if opts.is_ladder else "eval_loss"
    if opts.is_ladder and opts.objectives == ["eval_loss"]:  # the default objective, for a ladder search
        opts.objectives = ["predicted_loss"]
    bad = [o for o in opts.objectives if o not in OBJECTIVES or o in ("eval_loss", "predicted_loss") and o != loss]
    if bad or loss not in opts.objectives:
        where = "a search with --target-compute/--target-params" if opts.is_ladder else "a search without a target"
        raise UserError(
            f"--objectives: got {','.join(opts.objectives)}; {where} must include {loss}, allowed: "
            f"{', '.join(o for o in OBJECTIVES if o not in ('eval_loss', 'predicted_loss') or o == loss)}"
        )
    if opts.validate_top and not opts.is_ladder:
        raise UserError(
            "--validate-top: checks a ladder search's predictions; give --target-compute or --target-params"
        )
    if opts.validate_top < 0:
        raise UserError(f"--validate-top: must be >= 0, got {opts.validate_top}")
    if opts.is_ladder:
        ladder_plan(opts)
        if "tokens_per_s" in opts.objectives:
            raise UserError(
                "--objectives: tokens_per_s is measured at the rungs, not the target; "
                "use a cost objective (params, flops_per_token, kv_cache_bytes_per_token)"
            )
    if opts.sampler not in SAMPLERS:
        raise UserError(f"--sampler: got {opts.sampler!r}; allowed: {', '.join(SAMPLERS)}")
    check_execution(opts)
    if opts.tokens and opts.tokens_per_param:
        raise UserError("give --tokens or --tokens-per-param, not both")
    tokens_in_space = next((a.value for k, a in space.spec.train.items() if k == "tokens"), None)
    tokens = opts.tokens or tokens_in_space
    if not tokens and not opts.tokens_per_param:
        raise UserError("training length: give --tokens T or --tokens-per-param R (or train.tokens in the space file)")
    check_data(opts.data, space)
    _check_feasible(space)
    out = Path(opts.out).resolve()
    storage = opts.storage or str(out / "optuna.journal")
    study = StudySpec(  # a ladder search: this study records every rung; its ladders live in `ladder_study`
        storage=storage,
        study_name=opts.study_name or f"archscale-{space.name}",
        objectives=["eval_loss"] if opts.is_ladder else list(opts.objectives),
        sampler=opts.sampler,
        seed=opts.seed,
    )
    defaults = {"eval_every_tokens": None, **opts.train}
    plan = TrialPlan(
        target_tokens=tokens,
        tokens_per_param=opts.tokens_per_param,
        data=opts.data,
        train_defaults=defaults,
        seeds=opts.seeds,
        base_seed=opts.seed,
        group=opts.group,
    )
    return space, study, plan


def ladder_study(opts: SearchOptions, study: StudySpec) -> StudySpec:
    """The study whose trials are a ladder search's architectures, told their predicted loss."""
    return StudySpec(
        storage=study.storage,
        study_name=f"{study.study_name}-ladders",
        objectives=list(opts.objectives),
        sampler=opts.sampler,
        seed=opts.seed,
    )


def check_execution(opts: SearchOptions) -> None:
    """The options that say how trials run (shared by searches and studies)."""
    if opts.scheduler not in SCHEDULERS:
        raise UserError(f"--scheduler: got {opts.scheduler!r}; allowed: {', '.join(SCHEDULERS)}")
    if opts.cpus_per_trial <= 0:
        raise UserError(f"--cpus-per-trial: must be > 0, got {opts.cpus_per_trial}")
    if opts.concurrency is not None and opts.concurrency < 1:
        raise UserError(f"--concurrency: must be >= 1, got {opts.concurrency}")
    if opts.gpus_per_trial != "auto":
        try:
            g = float(opts.gpus_per_trial)
        except ValueError:
            raise UserError(f"--gpus-per-trial: got {opts.gpus_per_trial!r}; allowed: a number >= 0 or auto") from None
        if g < 0:
            raise UserError(f"--gpus-per-trial: must be >= 0, got {g}")


def _check_feasible(space: Space, tries: int = 200) -> None:
    """Fail before any cluster work when no sampled architecture can meet the budget."""
    rng, first = random.Random(0), None
    for _ in range(tries):
        try:
            space.sample_random(rng)
            return
        except BudgetError as e:
            first = first or e
    raise UserError(
        f"{space.path}: budget: none of {tries} sampled architectures can meet {space.budget.describe()}: {first}"
    )


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
