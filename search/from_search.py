"""What a study takes from a finished search: its best architectures, and an lr for each.

`top_architectures` lists a search's k best distinct architectures with the fields the study must
keep (the sizes its budget solved are left for the study to solve); `transferred_lr` finds, for an
architecture, the lr to use at every size: the optimum fitted to that architecture's runs, or,
when the runs do not identify one, a refusal (or, under an lr sweep, the best seed-averaged lr).
Both read trials.parquet and run.json of the search's --out directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archscale.spaces.errors import UserError
from archscale.spaces.record import ARCH_COLUMNS
from archscale.spaces.shape_rule import ShapeRule


def top_architectures(search_dir: str | Path, k: int, use_train: bool = True) -> dict[str, dict[str, Any]]:
    """The k best distinct architectures (mean eval loss over seeds) of a finished search, by label.

    Each carries every ArchConfig field the search fixed or sampled; the dimensions its budget
    solved (`budget.free`, head_dim when it followed from d_model, and what a shape rule set) are left for the study to
    solve at each size. With `use_train`, each also carries the training settings the search's
    space fixed or sampled (its `train:` block, less `tokens`) under the key `train`.
    """
    import json

    import polars as pl

    search_dir = Path(search_dir)
    trials = pl.read_parquet(search_dir / "trials.parquet").filter(pl.col("status") == "completed")
    if trials.is_empty():
        raise UserError(f"{search_dir}: from_search: the search has no completed trials yet")
    space = json.loads((search_dir / "run.json").read_text()).get("space", {})
    solved = set((space.get("budget") or {}).get("free") or ["d_model", "d_ff"])
    if "head_dim" not in (space.get("arch") or {}):
        solved.add("head_dim")
    if space.get("shape"):  # a search on a shape rule: the rule set these at its size
        solved |= set(ShapeRule.model_validate(space["shape"]).facts.sets)
        if "n_kv_heads" not in (space.get("arch") or {}):
            solved.add("n_kv_heads")  # = n_heads, which the rule set
    if "d_ff" in solved and "expert_d_ff" not in (space.get("arch") or {}):
        solved.add("expert_d_ff")  # a MoE expert's width followed the solved d_ff
    arch_fields = [f for f in ARCH_COLUMNS if f not in solved]
    train_fields = [f for f in (space.get("train") or {}) if f != "tokens"]
    best = (
        trials.group_by("arch_id")
        .agg(pl.col("eval_loss").mean().alias("mean_loss"), pl.col("label").first(), pl.col("trial_id").min())
        .sort("mean_loss", "trial_id")
        .head(k)
    )
    out = {}
    for row in best.iter_rows(named=True):
        trial = trials.filter(pl.col("trial_id") == row["trial_id"]).row(0, named=True)
        choices: dict[str, Any] = {f: trial[f] for f in arch_fields if trial.get(f) is not None}
        if use_train:
            choices["train"] = {f: trial[f] for f in train_fields if trial.get(f) is not None}
        out[row["label"]] = choices
    return out


# Fields that may differ between a search trial and the study's architecture it tunes the lr for:
# the sizes a budget solves, and the base shapes (which the transfer sets).
_SIZE_FIELDS = (
    "d_model", "d_ff", "expert_d_ff", "n_layers", "head_dim",
    "base_d_model", "base_n_layers", "base_head_dim", "base_d_ff",
)  # fmt: skip


def transferred_lr(
    search_dir: str | Path, fixed: dict[str, Any], *, swept: bool = False, level: float = 0.95
) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """The best lr of the architecture `fixed` (ArchConfig fields; sizes may be missing) in a finished
    search, as (lr, the base shapes to set, a description of where it came from).

    Among the completed trials whose every field but `_SIZE_FIELDS` equals `fixed`'s (ArchConfig's
    default where `fixed` is silent), the architecture (arch_id) is the one whose best lr has the
    lowest seed-averaged eval loss; its lr is the optimum of a parabola in log lr fitted to all of
    that architecture's runs (`analysis.fit_lr_optimum`), with its interval. When the runs do not
    identify an optimum (fewer than 3 learning rates, a curve within noise, an optimum at the edge
    of the range tried) the study is refused -- a single best trial's lr is a noisy pick, and
    carried to every size its error is multiplied -- unless the study sweeps lr at every size
    (`swept`), which checks it: then the best seed-averaged lr is used and the source says why.
    """
    import polars as pl

    from archscale.analysis.compare.lr import fit_lr_optimum
    from archscale.spaces import ArchConfig, variants

    search_dir = Path(search_dir)
    if not (search_dir / "trials.parquet").exists():
        raise UserError(f"{search_dir}: lr.from_search: no trials.parquet there (is it a finished search's --out?)")
    trials = pl.read_parquet(search_dir / "trials.parquet").filter(pl.col("status") == "completed")
    defaults = {name: f.default for name, f in ArchConfig.model_fields.items()}
    want = {name: fixed.get(name, defaults[name]) for name in ArchConfig.model_fields if name not in _SIZE_FIELDS}
    if want.get("n_kv_heads") is None:
        want["n_kv_heads"] = want["n_heads"]
    # eq_missing: a field left unset (None, e.g. the MoE fields of a dense FFN) matches a null cell
    same = trials.filter(*[pl.col(k).eq_missing(v) for k, v in want.items() if k in trials.columns])
    if same.is_empty():
        labels = sorted(set(trials["label"].to_list())) if "label" in trials.columns else []
        raise UserError(
            f"{search_dir}: lr.from_search: no completed trial of this architecture under parametrization="
            f"{want['parametrization']} (the search has: {', '.join(labels) or 'no completed trials'}); "
            "search it at the base size first, or give lr as a number"
        )
    best = (
        same.group_by("arch_id", "lr")
        .agg(pl.col("eval_loss").mean().alias("mean_loss"), pl.len().alias("seeds"), pl.col("trial_id").min())
        .sort("mean_loss", "trial_id")
        .row(0, named=True)
    )
    trial = same.filter(pl.col("trial_id") == best["trial_id"]).row(0, named=True)
    runs = same.filter(pl.col("arch_id") == best["arch_id"])
    optimum = fit_lr_optimum(runs["lr"].to_list(), runs["eval_loss"].to_list(), level=level)
    label = trial.get("label") or best["arch_id"]
    if optimum.identified:
        lr, fit = optimum.lr, {"lr_source": "fit", "lr_lo": optimum.lo, "lr_hi": optimum.hi, "lr_level": level}
    elif swept:
        lr, fit = float(best["lr"]), {"lr_source": f"best trial ({optimum.why}; checked by the study's lr_sweep)"}
    else:
        raise UserError(
            f"{search_dir}: lr.from_search: {optimum.why} for {label}, so its best lr is not identified: "
            "run `archscale study run FILE --lr-sweep 0.5,1,2` to check it at every size, or give lr as a number"
        )
    p = variants.PARAMETRIZATIONS[want["parametrization"]]
    base: dict[str, Any] = {}
    if p.width:  # the winning trial's shape is the base every size's multipliers are measured from
        base["base_d_model"] = trial.get("base_d_model") or trial["d_model"]
        base["base_head_dim"] = (
            trial.get("base_head_dim") or trial.get("head_dim") or trial["d_model"] // trial["n_heads"]
        )
        base["base_d_ff"] = trial.get("base_d_ff") or trial["d_ff"]
    if p.depth:
        base["base_n_layers"] = trial.get("base_n_layers") or trial["n_layers"]
    source = {
        "lr_from_search": str(search_dir),
        "lr_trial": int(best["trial_id"]),
        "lr_seeds": int(best["seeds"]),
        "lr_base": float(lr),
        "lr_best_trial": float(best["lr"]),
        "lr_distinct": optimum.distinct,
        "lr_runs": optimum.runs,
        **fit,
        **base,
    }
    return float(lr), base, source
