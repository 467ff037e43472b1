"""Scaling studies: grids run through the same machinery as searches, into the same results format.

A study file (YAML; see docs/guide.md):

    name: scaling
    base: {vocab_size: 256, seq_len: 128, n_layers: 2, n_heads: 4, norm: rmsnorm}   # shared fields
    architectures:                      # listed: name -> ArchConfig fields over `base` (+ optional `train`)
      baseline: {ffn_activation: relu, position: sinusoidal, norm: layernorm, norm_position: post}
      swiglu-rope: {ffn_activation: swiglu, position: rope}
    from_search: {dir: results/search, top_k: 2}    # and/or the top-k architectures of a finished search
    sizes: {kind: params, values: [50000, 100000, 200000, 400000]}  # each solved like a search budget
    tokens: [200000]                    # token budgets (a grid), or tokens_per_param: 2,
    isoflop: [3.0e+11, 1.0e+12]         # or: for each compute C, every size with tokens = C / flops_per_token
    train: {lr: 3.0e-3, batch_size: 16}   # or lr: {from_search: results/search}, transferred (below)
    seeds: 1
    seed_blocks: true                   # every architecture of a grid point on the same seeds (search/seed_blocks.py)
    lr_sweep: {factors: [0.5, 1, 2]}    # optional: every grid point also at these multiples of its lr

Each grid point is one Optuna trial (no sampled parameters; the architecture and `group` are its
user attributes), so trial ids match between trials.parquet and the study, as for searches.

Learning-rate transfer: `train: {lr: {from_search: DIR}}` (in the study's `train`, or one
architecture's) takes, from the finished search in DIR, the runs of the same architecture (every
field but the sizes: d_model, d_ff, n_layers, head_dim and the base shapes) and parametrisation,
and uses the optimum of a parabola in log lr fitted to them (`from_search.transferred_lr`) at every
size, with the base shapes set to the best trial's (`base_d_model`, `base_head_dim`, `base_d_ff`,
and `base_n_layers` under completep). Where the runs do not identify an optimum the study is
refused, unless it sweeps lr (`lr_sweep: {factors: [0.5, 1, 2]}`: every grid point also at those
multiples of its lr, `lr_factor` recorded per trial). Under mup / completep the optimizer scales
each group's lr from the base shapes (`archscale.spaces.transfer.PARAMETER_ROLES`). Under standard
there is no rule and the lr is used unchanged at every size (the shared-rate problem; docs/transfer.md).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

from archscale.search.from_search import top_architectures, transferred_lr
from archscale.search.proposals import TrialPlan
from archscale.search.storage import StudySpec
from archscale.search.strategies.grid import GridPoint, GridProposals
from archscale.spaces.errors import BudgetError, SpaceError, UserError, load_mapping, validation_error
from archscale.spaces.shape_rule import ShapeRule
from archscale.spaces.solver import BUDGET_KINDS
from archscale.spaces.space import space_from_dict
from archscale.spaces.training import TrainConfig
from archscale.spaces.training import value_problem as train_value_problem

TRAIN_FIELDS = tuple(TrainConfig.__dataclass_fields__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sizes(_Strict):
    kind: Literal[BUDGET_KINDS] = "params"  # type: ignore[valid-type]  # the solver's kinds
    values: list[PositiveFloat] = Field(min_length=1)
    tolerance: float = Field(0.02, gt=0, lt=1)
    free: list[Literal["d_model", "d_ff", "n_layers"]] = ["d_model", "d_ff"]
    ffn_ratio: float = Field(4.0, gt=0)
    aspect_ratio: PositiveFloat | None = None


class FromSearch(_Strict):
    dir: str
    top_k: int = Field(2, ge=1)
    use_train: bool = True  # also reuse each architecture's searched lr / batch size / warmup / weight decay


class LrSweep(_Strict):
    """Every size at several multiples of its lr (`lr_sweep: {factors: [0.5, 1, 2]}`): a check, at every
    size, that the transferred (or given) lr is still the best one (docs/transfer.md)."""

    factors: list[PositiveFloat] = Field(min_length=2)

    @model_validator(mode="after")
    def _check(self) -> LrSweep:
        if len(set(self.factors)) != len(self.factors):
            raise ValueError(f"lr_sweep.factors: each factor once, got {self.factors}")
        if 1 not in self.factors:
            raise ValueError(f"lr_sweep.factors: include 1 (the lr itself), got {self.factors}")
        return self


class StudyFile(_Strict):
    name: str = "study"
    description: str = ""
    base: dict[str, Any] = {}
    architectures: dict[str, dict[str, Any]] = {}
    from_search: FromSearch | None = None
    sizes: Sizes
    tokens: list[PositiveInt] | None = Field(None, min_length=1)
    tokens_per_param: PositiveFloat | None = None
    isoflop: list[PositiveFloat] | None = Field(None, min_length=1)
    shape: ShapeRule | None = None  # every size on one shape rule (spaces/shape_rule.py); None: solved afresh
    train: dict[str, Any] = {}
    seeds: int = Field(1, ge=1)
    first_seed: int = Field(0, ge=0)  # seeds run are first_seed .. first_seed + seeds - 1
    seed_blocks: bool = True  # every architecture of a grid point on the same seeds (search/seed_blocks.py)
    lr_sweep: LrSweep | None = None  # every size also at these multiples of its lr (None: at its lr only)
    data: str = "pystdlib"

    @model_validator(mode="after")
    def _check(self) -> StudyFile:
        given = [x is not None for x in (self.tokens, self.tokens_per_param, self.isoflop)]
        if sum(given) != 1:
            raise ValueError(
                "give exactly one of tokens (a list), tokens_per_param, or isoflop (a list of compute budgets)"
            )
        if not self.architectures and self.from_search is None:
            raise ValueError("give architectures, from_search, or both")
        if self.shape is not None:
            given = {k for k in self.sizes.model_fields_set if k in ("free", "ffn_ratio", "aspect_ratio")}
            if given:
                raise ValueError(f"sizes.{min(given)}: the shape rule {self.shape.rule} decides this; remove it")
        return self


def load_study_file(path: str | Path | dict[str, Any]) -> StudyFile:
    """A study from a YAML file (or an already-loaded mapping), with clean errors."""
    data = path if isinstance(path, dict) else load_mapping(path)
    path = "<study>" if isinstance(path, dict) else path
    try:
        spec = StudyFile.model_validate(data)
    except ValidationError as e:
        raise validation_error(e, path, allowed_keys=_allowed_keys) from None
    for where, train in [("train", spec.train)] + [
        (f"architectures.{group}.train", a.get("train") or {}) for group, a in spec.architectures.items()
    ]:
        _check_train(train, path, where)
    return spec


def _allowed_keys(loc: tuple) -> str:
    models = {"sizes": Sizes, "from_search": FromSearch, "shape": ShapeRule, "lr_sweep": LrSweep}
    model = models.get(loc[0]) if len(loc) == 2 else StudyFile if len(loc) == 1 else None
    return ", ".join(model.model_fields) if model is not None else "(see docs/guide.md)"


def _check_train(train: Any, path: str | Path, where: str) -> None:
    """A study's (or one architecture's) fixed training settings: known fields with values that can be valid."""
    if not isinstance(train, dict):
        raise SpaceError(path, where, f"expected a mapping of training settings, got {train!r}")
    for name, value in train.items():
        if name not in TRAIN_FIELDS:
            raise SpaceError(path, f"{where}.{name}", f"not a training setting; allowed: {', '.join(TRAIN_FIELDS)}")
        problem = None if name == "lr" and isinstance(value, dict) else train_value_problem(name, value)
        if problem is not None:  # lr may be {from_search: DIR}: `_lr_from_search` checks that form
            raise SpaceError(path, f"{where}.{name}", problem)


def _lr_from_search(train: dict[str, Any], path: str | Path | None, where: str) -> str | None:
    lr = train.get("lr")
    if not isinstance(lr, dict):
        return None
    if set(lr) != {"from_search"} or not isinstance(lr["from_search"], str):
        raise SpaceError(path, f"{where}.lr", f"give a number or {{from_search: DIR}}, got {lr!r}")
    return lr["from_search"]


def plan_grid(spec: StudyFile, path: str | Path | None = None) -> list[GridPoint]:
    """Every grid point (group, arch, counts, tokens, seed, planned size), solved and checked before anything runs."""
    architectures = dict(spec.architectures)
    if spec.from_search is not None:
        for label, choices in top_architectures(
            spec.from_search.dir, spec.from_search.top_k, spec.from_search.use_train
        ).items():
            if spec.shape is not None:  # the rule sets these at every size (and MHA's n_kv_heads = n_heads)
                mha = choices.get("n_kv_heads") is not None and choices.get("n_kv_heads") == choices.get("n_heads")
                sets = (*spec.shape.facts.sets, "n_kv_heads") if mha else spec.shape.facts.sets
                choices = {k: v for k, v in choices.items() if k not in sets}
            architectures.setdefault(label, choices)
    points = []
    for group, choices in architectures.items():
        choices = dict(choices)
        own_train = choices.pop("train", {})
        train = {**spec.train, **own_train}  # per-architecture training settings win
        fixed = {**spec.base, **choices}
        for f in spec.sizes.free if spec.shape is None else ():
            fixed.pop(f, None)
        transfer = None
        search_dir = _lr_from_search(train, path, f"architectures.{group}.train" if "lr" in own_train else "train")
        if search_dir is not None:
            lr, base_shapes, transfer = transferred_lr(search_dir, fixed, swept=spec.lr_sweep is not None)
            train = {**train, "lr": lr}
            fixed.update(base_shapes)
        for size in spec.sizes.values:
            budget = {
                "kind": spec.sizes.kind,
                "value": size,
                "tolerance": spec.sizes.tolerance,
                "free": list(spec.sizes.free),
                "ffn_ratio": spec.sizes.ffn_ratio,
            }
            if spec.sizes.aspect_ratio:
                budget["aspect_ratio"] = spec.sizes.aspect_ratio
            shape = {}
            if spec.shape is not None:  # the rule decides the free dimensions and ratios
                budget = {k: budget[k] for k in ("kind", "value", "tolerance")}
                shape = {"shape": spec.shape.model_dump(exclude_none=True)}
            try:
                space = space_from_dict({"name": group, "arch": fixed, "budget": budget, **shape}, path)
                space.budget_from = "sizes.values"
                sample = space.sample_random(0)
            except SpaceError as e:  # a field of base or of this architecture
                key = f"architectures.{group}" + (f".{e.key.removeprefix('arch.')}" if e.key else "")
                raise SpaceError(path, key, f"at size {size:,.0f}: {e.message}") from None
            except BudgetError as e:
                reason = str(e).removeprefix("sizes.values: ")
                where = f"architectures.{group}"
                raise SpaceError(path, where, f"sizes.values: at size {size:,.0f}: {reason}") from None
            counts = sample.counts.to_dict()
            if spec.isoflop:
                budgets = [int(c / counts["flops_per_token"]) for c in spec.isoflop]
            elif spec.tokens:
                budgets = list(spec.tokens)
            else:
                budgets = [TrialPlan(tokens_per_param=spec.tokens_per_param).tokens_for(counts)]  # the one rule
            factors = spec.lr_sweep.factors if spec.lr_sweep is not None else [None]
            for tokens in budgets:
                for factor in factors:
                    point_train = train if factor is None else {**train, "lr": _swept_lr(train, factor, path)}
                    for seed in range(spec.first_seed, spec.first_seed + spec.seeds):
                        points.append(
                            GridPoint(
                                group=group,
                                arch=sample.arch.to_dict(),
                                counts=counts,
                                tokens=tokens,
                                seed=seed,
                                size_kind=spec.sizes.kind,
                                size=size,
                                train=point_train,
                                transfer=transfer,
                                lr_factor=factor,
                            )
                        )
    return points


def _swept_lr(train: dict[str, Any], factor: float, path: str | Path | None) -> float:
    """One lr of a sweep: the point's lr (given, transferred, or TrainConfig's default) times `factor`."""
    lr = train.get("lr", TrainConfig.__dataclass_fields__["lr"].default)
    if not isinstance(lr, int | float):
        raise SpaceError(path, "lr_sweep", f"sweeps a numeric lr; got lr {lr!r}")
    return float(lr) * factor


def run_study(
    path: str | Path,
    out: str | Path,
    opts,
    seed_blocks: bool | None = None,
    lr_sweep: list[float] | None = None,
) -> dict[str, Any]:
    """Run a study file into `out` with the execution options of `opts` (a SearchOptions: its
    execution, scheduler, sampler seed, data and fixed training settings); `seed_blocks` (None:
    the file's) decides whether architectures share seeds (`search/seed_blocks.py`); `lr_sweep`
    (None: the file's) runs every size at these multiples of its lr (`--lr-sweep 0.5,1,2`)."""
    from archscale.clusters.connect import redact
    from archscale.search.options import check_data, check_execution, check_scheduler, check_storage
    from archscale.search.results import describe_environment, write_json
    from archscale.search.runner import run_trials
    from archscale.search.searcher import ProposalSearcher
    from archscale.search.seed_blocks import assign_seeds, seeds_by_group

    spec = load_study_file(path)
    path = "<study>" if isinstance(path, dict) else path
    if lr_sweep is not None:
        try:
            spec = spec.model_copy(update={"lr_sweep": LrSweep(factors=lr_sweep)})
        except ValidationError as e:
            why = e.errors()[0]["msg"].removeprefix("Value error, ").removeprefix("lr_sweep.factors: ")
            raise UserError(f"--lr-sweep: {why} (distinct positive factors including 1, e.g. 0.5,1,2)") from None
    blocks = spec.seed_blocks if seed_blocks is None else seed_blocks
    points = assign_seeds(plan_grid(spec, path), seed_blocks=blocks, first_seed=spec.first_seed, seeds=spec.seeds)
    data = opts.budget.data if opts.budget.data != "pystdlib" else spec.data
    check_scheduler(opts.strategy.scheduler)
    check_execution(opts.execution)
    try:
        check_data(data)  # a bad data spec fails before Ray starts
    except UserError as e:  # named as the flag when given as one, else as the study file's key
        if data == opts.budget.data:
            raise
        raise SpaceError(path, "data", str(e).removeprefix("--data: ")) from None
    check_storage(opts.execution.storage)
    out = Path(out).resolve()
    if (out / "run.json").exists():
        raise FileExistsError(f"{out}: already holds results (run.json); choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    storage = opts.execution.storage or str(out / "optuna.journal")
    study = StudySpec(
        storage=storage,
        study_name=f"archscale-study-{spec.name}",
        objectives=["eval_loss"],
        sampler="random",
        seed=opts.strategy.seed,
    )
    plan = TrialPlan(target_tokens=None, data=data, train_defaults=dict(opts.budget.train), seeds=1)
    write_json(
        out / "run.json",
        {
            "kind": "study",
            "study": spec.model_dump(mode="json"),
            "study_file": str(path),
            "grid": len(points),
            "seed_blocks": blocks,
            "seeds_by_architecture": seeds_by_group(points),
            "lr_sweep": spec.lr_sweep.factors if spec.lr_sweep is not None else None,
            "lr_transfers": {p.group: p.transfer for p in points if p.transfer is not None},
            "budget": spec.sizes.model_dump(mode="json"),
            "args": {**opts.to_args(), "storage": redact(opts.execution.storage)},
            "objectives": [{"name": "eval_loss", "direction": "minimize"}],
            "storage": redact(storage),
            "study_name": study.study_name,
            "experiment": str(out / "ray" / "study"),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **describe_environment(),
        },
    )
    searcher = ProposalSearcher(GridProposals(points, plan), study, out)
    return run_trials(searcher, study, opts.execution, out, opts.strategy.scheduler, experiment="study")
