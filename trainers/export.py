"""Export one trial of a results directory: its architecture and training settings as JSON, or its
trained weights as a Hugging Face `transformers` model.

    export_trial("results/a", trial=3, format="json")                 # the document; nothing written
    export_trial("results/a", trial=3, format="json", out="exp/a-3")  # exp/a-3/archscale.json
    export_trial("results/a", trial=3, format="hf", out="hf/a-3")     # + config.json, model.safetensors

`json` works for every trial, even one that failed or has no checkpoint: it reads the trial's row
in `trials.parquet`. `archscale.json` holds `arch` (ArchConfig fields: `archscale train --arch`
reads the file as it is) and `train` (TrainConfig fields, `tokens` and `seed` included).

`hf` writes a `LlamaForCausalLM` when the architecture is one (`llama_problem`): RMSNorm pre-norm,
RoPE, a gated FFN, sequential blocks, no QK-norm, standard parametrisation. Everything else in
Llama's config maps one to one (`llama_config`); the weights come from the trial's latest
checkpoint (`find_trial_checkpoint`) under Llama's parameter names (`llama_state_dict`). Both
codebases rotate half-dimension pairs (GPT-NeoX layout, HF's `rotate_half`) with the same inverse
frequencies, scale attention by 1/sqrt(head_dim) and add RMSNorm's eps inside the root, so the
weights need no permutation and the logits agree to float32 rounding (tests/trainers/test_export.py).
The tokenizer is not exported: token ids are the trial's data source's ids (bytes for `pystdlib`).

The output directory must be new or empty (results are never overwritten); it is written as a
temporary sibling and renamed into place, so it is complete or absent. transformers and safetensors
(the `hf` extra) are imported only when an `hf` export runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from archscale.spaces import ArchConfig
from archscale.spaces.errors import UserError
from archscale.spaces.training import RECORDED_TRAIN_FIELDS

FORMATS = ("json", "hf")
DOCUMENT = "archscale.json"  # architecture, training settings and provenance, in every export

# --------------------------------------------------------------------------------------------
# The Llama mapping: which ArchConfig values transformers' LlamaConfig can express, and how.

#: Gated archscale activation -> Llama's `hidden_act`: Llama's MLP is down(act(gate(x)) * up(x)).
LLAMA_ACTIVATIONS = {"swiglu": "silu", "geglu": "gelu", "reglu": "relu", "glu": "sigmoid", "bilinear": "linear"}

#: Fields whose value Llama fixes: the values it can express.
LLAMA_REQUIRES: dict[str, tuple[Any, ...]] = {
    "ffn_activation": tuple(LLAMA_ACTIVATIONS),
    "norm": ("rmsnorm",),
    "norm_position": ("pre",),
    "qk_norm": (False,),
    "position": ("rope",),
    "block": ("sequential",),
    "ffn_per_block": (1,),
}

#: Fields that map to LlamaConfig keys (see `llama_config`), any value.
LLAMA_MAPPED = (
    "vocab_size",
    "seq_len",
    "d_model",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "d_ff",
    "rope_theta",
    "tie_embeddings",
    "bias",
)

#: Fields that do not change the forward pass of a model that meets LLAMA_REQUIRES: the
#: initialisation, and the fields only another position coding reads.
LLAMA_INERT = ("init", "zero_init", "t5_num_buckets", "t5_max_distance")  # initialisation only, or unused by rope

#: Fields being added beside these (parametrisations, an explicit embedding scale), with their
#: default, so the check names them whether or not this ArchConfig has them yet. Llama has none of
#: their forward multipliers: only the default is exportable. Any other field not listed above is
#: held to its ArchConfig default too: so are the tunable output_mult, input_mult and attn_mult (Llama
#: has no logit or embedding multiplier), while base_head_dim and base_d_ff are only read under mup.
DEFAULT_ONLY: dict[str, Any] = {"parametrization": "standard", "embedding_scale": None}


def _fields() -> list[str]:
    """Every field the check looks at, in ArchConfig order (so "the first field" is well defined)."""
    return list(ArchConfig.model_fields) + [name for name in DEFAULT_ONLY if name not in ArchConfig.model_fields]


def _default(name: str) -> Any:
    field = ArchConfig.model_fields.get(name)
    return field.default if field is not None else DEFAULT_ONLY[name]


def llama_problem(arch: Any) -> str | None:
    """Why transformers' Llama cannot express `arch`, naming the first field that has no
    equivalent; None when it can. `arch` is an ArchConfig (or any object with its attributes)."""
    for name in _fields():
        value = getattr(arch, name, _default(name))
        if name in LLAMA_REQUIRES:
            allowed = LLAMA_REQUIRES[name]
            if value not in allowed:
                shown = ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in allowed)
                value = str(value).lower() if isinstance(value, bool) else value
                return f"{name}: {value} has no transformers Llama equivalent (exportable: {shown})"
        elif name == "head_dim":
            if arch.d_model % arch.n_heads:  # LlamaConfig insists, even with head_dim given
                return (
                    f"head_dim: {value} with d_model={arch.d_model} not a multiple of n_heads={arch.n_heads} has "
                    "no transformers Llama equivalent (LlamaConfig requires hidden_size % num_attention_heads == 0)"
                )
        elif name in LLAMA_MAPPED or name in LLAMA_INERT:
            continue
        elif value != _default(name):
            return f"{name}: {value} has no transformers Llama equivalent (exportable: {_default(name)})"
    return None


def llama_config(arch: ArchConfig, rms_norm_eps: float) -> dict[str, Any]:
    """LlamaConfig keyword arguments for `arch` (which must pass `llama_problem`). `rms_norm_eps`
    is read from the built model's norms, where archscale defines it."""
    return {
        "vocab_size": arch.vocab_size,
        "max_position_embeddings": arch.seq_len,  # the trained context; RoPE itself runs longer
        "hidden_size": arch.d_model,
        "num_hidden_layers": arch.n_layers,
        "num_attention_heads": arch.n_heads,
        "num_key_value_heads": arch.n_kv_heads,
        "head_dim": arch.head_dim,
        "hidden_act": LLAMA_ACTIVATIONS[arch.ffn_activation],
        "intermediate_size": arch.d_ff,
        "rms_norm_eps": rms_norm_eps,
        "rope_theta": arch.rope_theta,  # transformers 5 files it under rope_parameters
        "tie_word_embeddings": arch.tie_embeddings,
        "attention_bias": arch.bias,  # q, k, v and o
        "mlp_bias": arch.bias,  # gate, up and down; archscale's RMSNorm and LM head have none
        "attention_dropout": 0.0,
        # byte-level and BPE data sources reserve no special tokens
        "bos_token_id": None,
        "eos_token_id": None,
        "pad_token_id": None,
        "architectures": ["LlamaForCausalLM"],
    }


#: archscale parameter name -> Llama parameter name (full matches, in order).
LLAMA_NAMES: list[tuple[str, str]] = [
    (r"tok_emb\.weight", "model.embed_tokens.weight"),
    (r"blocks\.(\d+)\.norms\.0\.weight", r"model.layers.\1.input_layernorm.weight"),
    (r"blocks\.(\d+)\.norms\.1\.weight", r"model.layers.\1.post_attention_layernorm.weight"),
    (r"blocks\.(\d+)\.attn\.([qkvo])\.(weight|bias)", r"model.layers.\1.self_attn.\2_proj.\3"),
    (r"blocks\.(\d+)\.ffns\.0\.(gate|up|down)\.(weight|bias)", r"model.layers.\1.mlp.\2_proj.\3"),
    (r"final_norm\.weight", "model.norm.weight"),
    (r"head\.weight", "lm_head.weight"),
]


def llama_state_dict(state: dict[str, Any]) -> dict[str, Any]:
    """archscale's decoder state dict under Llama's names (tensors shared, not copied)."""
    renamed = {}
    for name, tensor in state.items():
        for pattern, replacement in LLAMA_NAMES:
            if re.fullmatch(pattern, name):
                renamed[re.sub(pattern, replacement, name)] = tensor
                break
        else:
            raise RuntimeError(f"no Llama name for archscale parameter {name!r} (a bug in LLAMA_NAMES)")
    return renamed


# --------------------------------------------------------------------------------------------
# Reading a results directory


def trial_row(results_dir: str | Path, trial: int) -> dict[str, Any]:
    """Trial `trial`'s row of `results_dir/trials.parquet`."""
    import polars as pl

    path = Path(results_dir) / "trials.parquet"
    if not path.is_file():
        raise UserError(f"{results_dir}: no trials.parquet; give a results directory written by `archscale search`")
    trials = pl.read_parquet(path)
    rows = trials.filter(pl.col("trial_id") == trial).to_dicts()
    if not rows:
        ids = sorted(trials["trial_id"].to_list())
        shown = ", ".join(map(str, ids[:20])) + (", ..." if len(ids) > 20 else "")
        raise UserError(f"{results_dir}: no trial {trial}; its trials are {shown}")
    return rows[-1]


def trial_arch(row: dict[str, Any]) -> ArchConfig | None:
    """The trial's architecture, or None when it had none (an infeasible proposal)."""
    if row.get("arch_id") is None:
        return None
    return ArchConfig(**{k: row[k] for k in ArchConfig.model_fields if row.get(k) is not None})


def trial_document(results_dir: str | Path, row: dict[str, Any]) -> dict[str, Any]:
    """The trial's architecture and training settings, with where they came from and how it ended."""
    arch = trial_arch(row)
    train = {name: row.get(name) for name in RECORDED_TRAIN_FIELDS}
    train.update(tokens=row.get("target_tokens"), seed=row.get("seed"))
    run = _run_json(results_dir)
    return {
        "trial_id": row["trial_id"],
        "status": row.get("status"),
        "error": row.get("error"),
        "label": row.get("label"),
        "arch_id": row.get("arch_id"),
        "arch": arch.to_dict() if arch is not None else None,
        "train": train,
        "data": (run.get("args") or {}).get("data"),
        "tokens": row.get("tokens"),
        "eval_loss": row.get("eval_loss"),
        "params": row.get("params"),
        "results_dir": str(Path(results_dir).resolve()),
        "study_name": run.get("study_name"),
    }


def _run_json(results_dir: str | Path) -> dict[str, Any]:
    path = Path(results_dir) / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def find_trial_checkpoint(results_dir: str | Path, trial: int) -> Path | None:
    """The latest complete checkpoint of trial `trial` (most tokens), or None.

    Ray Tune keeps each trial in a folder `results_dir/ray/<experiment>/<trial>/` whose
    `params.json` is the trial's proposal (`number` = the Optuna number = `trial_id`); the
    checkpoints are the directories below it holding `state.pt` and `meta.json` (Ray's
    `checkpoint_NNNNNN/` copies and the trainer's own `run/checkpoint/`). Every experiment under
    `ray/` is searched, so a resumed search's second experiment counts too.
    """
    from archscale.trainers.checkpoint import META, STATE

    best, best_tokens = None, -1
    for params in sorted(Path(results_dir).glob("ray/*/*/params.json")):
        try:
            number = json.loads(params.read_text()).get("number")
        except (OSError, ValueError):
            continue
        if number != trial:
            continue
        for meta_path in sorted(params.parent.rglob(META)):
            ckpt = meta_path.parent
            if ".tmp-" in ckpt.name or not (ckpt / STATE).is_file():
                continue  # a save still being written
            try:
                tokens = int(json.loads(meta_path.read_text()).get("tokens", 0))
            except (OSError, ValueError):
                continue
            if tokens > best_tokens:
                best, best_tokens = ckpt, tokens
    return best


# --------------------------------------------------------------------------------------------
# Writing


def _check_new(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f"{out}: already exists and is not empty; exports are never overwritten, choose a new --out"
        )


def _write_new_dir(out: Path, write) -> None:
    """Call `write(tmp)` on a fresh sibling of `out`, then rename it to `out` (new or empty)."""
    _check_new(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        write(tmp)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n")


def write_hf(model: Any, out: Path) -> dict[str, Any]:
    """Write `model` (an archscale Decoder whose arch passes `llama_problem`) into directory `out`
    as transformers' `config.json` and `model.safetensors`; return the LlamaConfig as a dict."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from archscale.trainers.model import RMSNorm

    arch = model.arch
    problem = llama_problem(arch)
    if problem is None and float(getattr(model, "emb_scale", 1.0)) != 1.0:
        problem = f"embedding_scale: {model.emb_scale:g} has no transformers Llama equivalent (exportable: 1)"
    if problem is not None:
        raise UserError(problem)
    eps = {m.eps for m in model.modules() if isinstance(m, RMSNorm)}
    if len(eps) != 1:
        raise RuntimeError(f"expected one RMSNorm eps in the model, found {sorted(eps)}")
    config = LlamaConfig(**llama_config(arch, eps.pop()))
    tensors = llama_state_dict(model.state_dict())

    # The names and shapes Llama expects, from a weightless instance: a mismatch is a mapping bug.
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in LlamaForCausalLM(config).state_dict().items()}
    if arch.tie_embeddings:
        expected.pop("lm_head.weight", None)  # tied to the embedding; safetensors stores it once
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if got != expected:
        diff = sorted(set(got.items()) ^ set(expected.items()))[:6]
        raise RuntimeError(f"archscale -> Llama weights do not match LlamaForCausalLM's: {diff}")

    config.save_pretrained(out)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, out / "model.safetensors", {"format": "pt"}
    )
    return config.to_dict()


def export_trial(
    results_dir: str | Path, trial: int, format: str = "hf", out: str | Path | None = None
) -> dict[str, Any]:
    """Export trial `trial` of `results_dir` (see the module docstring); return the archscale document.

    `format="json"`: the trial's architecture and training settings, written to `out/archscale.json`
    when `out` is given. `format="hf"`: also `out/config.json` and `out/model.safetensors` from its
    latest checkpoint; `out` is required. Raises UserError (naming the first field without an
    equivalent, the missing trial or checkpoint) and FileExistsError when `out` is not new or empty.
    """
    if format not in FORMATS:
        raise UserError(f"format: allowed values are {list(FORMATS)}, got {format!r}")
    results_dir = Path(results_dir)
    row = trial_row(results_dir, trial)
    document = trial_document(results_dir, row)
    out_dir = Path(out) if out is not None else None
    if format == "json":
        if out_dir is not None:
            _write_new_dir(out_dir, lambda tmp: _write_json(tmp / DOCUMENT, document))
        return document

    if out_dir is None:
        raise UserError("--format hf writes a directory: give --out OUT_DIR")
    missing = [name for name in ("transformers", "safetensors") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"--format hf needs {' and '.join(missing)}: pip install 'archscale[hf]'")
    arch = trial_arch(row)
    if arch is None:
        raise UserError(f"trial {trial} has no architecture ({row.get('error')}); nothing to export")
    problem = llama_problem(arch)
    if problem is not None:
        raise UserError(f"trial {trial}: {problem}; `--format json` exports its architecture without weights")
    _check_new(out_dir)  # before loading anything
    ckpt = find_trial_checkpoint(results_dir, trial)
    if ckpt is None:
        raise UserError(
            f"trial {trial} ({row.get('status')}): no checkpoint under {results_dir / 'ray'}; "
            "`--format json` exports its architecture without weights"
        )

    from archscale.trainers.checkpoint import load_checkpoint
    from archscale.trainers.model import build_model

    state, meta = load_checkpoint(ckpt)
    if ArchConfig(**meta["arch"]) != arch:
        raise UserError(
            f"{ckpt}: checkpoint is of architecture {meta.get('arch_id')}, not trial {trial}'s {arch.arch_id}"
        )
    model = build_model(arch, fused_kernels=False)
    model.load_state_dict(state["model"])
    document["checkpoint"] = {"path": str(ckpt.resolve()), "tokens": meta.get("tokens"), "step": meta.get("step")}
    document["data"] = (meta.get("data") or {}).get("name", document["data"])

    def write(tmp: Path) -> None:
        document["hf_architecture"] = write_hf(model, tmp)["architectures"][0]
        _write_json(tmp / DOCUMENT, document)

    _write_new_dir(out_dir, write)
    return document
