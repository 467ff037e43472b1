"""`archscale export`: the Llama mapping checked against transformers itself (parameter count and
logits), refusals that name the field, and the command on results directories: one shaped by hand
from real training runs here, one written by a real search on Ray in the slow test."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import polars as pl
import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM
from typer.testing import CliRunner

from archscale.search.cli import app
from archscale.spaces import ArchConfig, count
from archscale.spaces.record import TrialStatus, new_trial_row, trial_schema
from archscale.spaces.training import TrainConfig
from archscale.trainers import export
from archscale.trainers.checkpoint import load_checkpoint
from archscale.trainers.export import export_trial, llama_problem, write_hf
from archscale.trainers.loop import train
from archscale.trainers.model import build_model

TOLERANCE = 1e-4  # max |logit difference| between archscale and transformers, float32 on CPU
BASE = dict(
    vocab_size=97,  # odd, and not d_model: a transposed embedding or head cannot load
    seq_len=16,
    d_model=32,
    n_layers=2,
    n_heads=4,
    d_ff=48,
    norm="rmsnorm",
    norm_position="pre",
    position="rope",
    ffn_activation="swiglu",
)
LLAMA_ARCHS = {
    "mha-tied": {},
    "gqa-untied": dict(n_kv_heads=2, tie_embeddings=False),
    "mqa-bias-theta": dict(n_kv_heads=1, bias=True, rope_theta=500000.0),
    "head_dim-geglu": dict(n_heads=2, n_kv_heads=1, head_dim=24, ffn_activation="geglu"),
    "reglu": dict(ffn_activation="reglu", tie_embeddings=False),
    "glu": dict(ffn_activation="glu"),
    "bilinear": dict(ffn_activation="bilinear"),
}


def max_logit_difference(model, hf, tokens) -> float:
    with torch.no_grad():
        ours, theirs = model(tokens), hf(tokens).logits
    assert theirs.dtype == torch.float32 and theirs.shape == ours.shape
    return (ours - theirs).abs().max().item()


def perturbed_model(arch: ArchConfig):
    """A decoder whose every parameter (norm scales and biases too) is away from its init value."""
    torch.manual_seed(0)
    model = build_model(arch, fused_kernels=False).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.mark.parametrize("name", LLAMA_ARCHS)
def test_hf_export_has_archscale_params_and_logits(tmp_path, name):
    arch = ArchConfig(**{**BASE, **LLAMA_ARCHS[name]})
    assert llama_problem(arch) is None
    model = perturbed_model(arch)
    write_hf(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    hf = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(hf, LlamaForCausalLM)
    assert hf.config.tie_word_embeddings == arch.tie_embeddings
    assert sum(p.numel() for p in hf.parameters()) == count(arch).params == sum(p.numel() for p in model.parameters())
    tokens = torch.randint(0, arch.vocab_size, (3, arch.seq_len), generator=torch.Generator().manual_seed(1))
    assert max_logit_difference(model, hf, tokens) < TOLERANCE
    eager = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()  # explicit scaling
    assert max_logit_difference(model, eager, tokens) < TOLERANCE

    # the comparison can fail: positions matter on this input (RoPE at half its frequencies differs)
    hf.model.rotary_emb.inv_freq.mul_(0.5)
    assert max_logit_difference(model, hf, tokens) > 100 * TOLERANCE


@pytest.mark.parametrize(
    "fields, named",
    [
        (dict(position="alibi"), "position: alibi"),
        (dict(position="learned"), "position: learned"),
        (dict(norm="layernorm"), "norm: layernorm"),
        (dict(ffn_activation="gelu"), "ffn_activation: gelu"),
        (dict(norm_position="sandwich"), "norm_position: sandwich"),
        (dict(qk_norm=True), "qk_norm: true"),
        (dict(block="parallel"), "block: parallel"),
        (dict(ffn_per_block=2), "ffn_per_block: 2"),
        (dict(attention_window=8), "attention_window: 8"),  # Llama has no sliding window
        (dict(attention_window=8, global_every=2), "attention_window: 8"),
        (dict(qkv_conv=3), "qkv_conv: 3"),  # nor Primer's convolution
        (dict(ffn_type="moe", n_experts=4), "ffn_type: moe"),  # a mixture of experts: one line, the field named
        (dict(n_heads=3, head_dim=16), "head_dim: 16"),  # d_model=32 is not a multiple of 3 heads
        (dict(ffn_activation="relu", position="alibi"), "ffn_activation: relu"),  # the first field, in ArchConfig order
    ],
)
def test_no_llama_equivalent_names_the_field(fields, named):
    problem = llama_problem(ArchConfig(**{**BASE, **fields}))
    assert problem is not None and problem.startswith(named), problem
    assert "has no transformers Llama equivalent" in problem


@pytest.mark.parametrize(
    "name, value", [("parametrization", "mup"), ("parametrization", "completep"), ("embedding_scale", 8.0)]
)
def test_non_default_parametrization_or_embedding_scale_is_refused(name, value):
    """These fields are being added to ArchConfig alongside; the check reads them whether or not they exist yet."""
    fields = ArchConfig(**BASE).to_dict()
    problem = llama_problem(types.SimpleNamespace(**{**fields, name: value}))
    assert problem is not None and problem.startswith(f"{name}: {value} has no transformers Llama equivalent")
    assert llama_problem(types.SimpleNamespace(**{**fields, name: export._default(name)})) is None


def test_a_scaled_embedding_is_refused_at_write_time(tmp_path):
    model = perturbed_model(ArchConfig(**BASE))
    model.emb_scale = 2.0  # what a non-default embedding scale does to the forward pass
    with pytest.raises(export.UserError, match="^embedding_scale: 2 has no transformers Llama equivalent"):
        write_hf(model, tmp_path / "x")
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------------------------
# A results directory shaped like a search's, from real (short) training runs


TRAIN = TrainConfig(tokens=512, batch_size=4, eval_tokens=256, eval_every_tokens=256, threads=1)
TRIALS = {  # trial_id -> the architecture; 2 has no architecture (infeasible), 3 never checkpointed
    0: ArchConfig(**{**BASE, "vocab_size": 256, "n_kv_heads": 2, "tie_embeddings": False}),
    1: ArchConfig(**{**BASE, "vocab_size": 256, "position": "alibi"}),
    2: None,
    3: ArchConfig(**{**BASE, "vocab_size": 256}),
}


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """trials.parquet and Ray-style trial folders (`params.json` holds the Optuna `number`), each
    holding the trainer's run directory with its checkpoint, as `search/trial.py` leaves them."""
    out = tmp_path_factory.mktemp("results")
    rows = []
    for trial_id, arch in TRIALS.items():
        row = new_trial_row(
            trial_id=trial_id,
            seed=0,
            arch=arch,
            train=TRAIN.to_dict(),
            counts=count(arch) if arch is not None else None,
            target_tokens=TRAIN.tokens,
            status=TrialStatus.FAILED if arch is None else TrialStatus.RUNNING,
            error="infeasible: the budget cannot be met" if arch is None else None,
        )
        if trial_id in (0, 1):
            folder = out / "ray" / "search" / f"run_trial_{trial_id + 7}_x"  # Ray's own counter differs
            folder.mkdir(parents=True)
            (folder / "params.json").write_text(json.dumps({"number": trial_id, "seed": 0, "arch": arch.to_dict()}))
            summary = train(arch, TRAIN, "pystdlib", out=folder / "run")
            row.update(status="completed", tokens=summary["tokens"], eval_loss=summary["eval_loss"])
        rows.append(row)
    pl.DataFrame(rows, schema=trial_schema(), strict=False).write_parquet(out / "trials.parquet")
    (out / "run.json").write_text(json.dumps({"kind": "search", "args": {"data": "pystdlib"}, "study_name": "s"}))
    return out


def invoke(*args: str):
    return CliRunner().invoke(app, ["export", *map(str, args)])


def test_cli_hf_export_of_a_trained_trial(results_dir, tmp_path):
    out = tmp_path / "hf"
    r = invoke(results_dir, "--trial", 0, "--format", "hf", "--out", out)
    assert r.exit_code == 0, r.output
    assert "LlamaForCausalLM" in r.stdout and f"{count(TRIALS[0]).params:,} parameters" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["archscale.json", "config.json", "model.safetensors"]
    document = json.loads((out / "archscale.json").read_text())
    assert ArchConfig.from_file(str(out / "archscale.json")) == TRIALS[0]  # `archscale train --arch` reads it
    assert document["checkpoint"]["tokens"] == TRAIN.tokens and document["data"] == "pystdlib"

    state, _ = load_checkpoint(document["checkpoint"]["path"])
    model = build_model(TRIALS[0], fused_kernels=False).eval()
    model.load_state_dict(state["model"])
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    assert sum(p.numel() for p in hf.parameters()) == count(TRIALS[0]).params
    tokens = torch.randint(0, 256, (2, TRIALS[0].seq_len), generator=torch.Generator().manual_seed(2))
    assert max_logit_difference(model, hf, tokens) < TOLERANCE


def test_cli_refuses_what_llama_cannot_express(results_dir, tmp_path):
    r = invoke(results_dir, "--trial", 1, "--format", "hf", "--out", tmp_path / "hf")
    assert r.exit_code == 2
    assert "error: trial 1: position: alibi has no transformers Llama equivalent" in r.stderr
    assert not (tmp_path / "hf").exists()


def test_cli_json_export_of_every_trial(results_dir, tmp_path):
    for trial_id, arch in TRIALS.items():
        r = invoke(results_dir, "--trial", trial_id, "--format", "json")
        assert r.exit_code == 0, r.output
        document = json.loads(r.stdout)
        assert document == json.loads(json.dumps(export_trial(results_dir, trial_id, "json")))  # the library call
        assert document["trial_id"] == trial_id
        assert document["arch"] == (arch.to_dict() if arch is not None else None)
        assert TrainConfig.from_dict(document["train"]).lr == TRAIN.lr  # training settings, loadable as they are
        assert document["train"]["tokens"] == TRAIN.tokens and document["train"]["seed"] == 0
    assert document["status"] == "running"
    r = invoke(results_dir, "--trial", 2, "--format", "json", "--out", tmp_path / "j")
    assert r.exit_code == 0, r.output
    written = json.loads((tmp_path / "j" / "archscale.json").read_text())
    assert written["arch"] is None and "infeasible" in written["error"]


@pytest.mark.parametrize(
    "trial, fmt, message",
    [
        (2, "hf", "trial 2 has no architecture (infeasible"),
        (3, "hf", "trial 3 (running): no checkpoint under"),
        (9, "hf", "no trial 9; its trials are 0, 1, 2, 3"),
        (0, "xml", "format: allowed values are ['json', 'hf']"),
    ],
)
def test_cli_bad_requests_exit_2_and_say_why(results_dir, tmp_path, trial, fmt, message):
    r = invoke(results_dir, "--trial", trial, "--format", fmt, "--out", tmp_path / "hf")
    assert r.exit_code == 2 and message in r.stderr, r.output
    assert not (tmp_path / "hf").exists()


def test_cli_never_overwrites(results_dir, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    for fmt in ("hf", "json"):
        r = invoke(results_dir, "--trial", 0, "--format", fmt, "--out", out)
        assert r.exit_code == 2 and "never overwritten" in r.stderr, r.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    r = invoke(results_dir, "--trial", 0, "--format", "hf")
    assert r.exit_code == 2 and "give --out" in r.stderr


def test_help_does_not_import_torch_or_transformers():
    code = "import sys; from archscale.search.cli import app; print(' '.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    assert "archscale.trainers.commands" in loaded
    assert not {"torch", "transformers", "safetensors"} & set(loaded)


# --------------------------------------------------------------------------------------------
# End to end: a real search on Ray, then the command a user would run


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_export_the_best_trial_of_a_real_search(tmp_path):
    import yaml

    from archscale.search.options import BudgetOptions, ExecutionOptions, SearchOptions, StrategyOptions
    from archscale.search.run import run_search

    space = {
        "name": "llama-like",
        "arch": {
            "vocab_size": 256,
            "seq_len": 32,
            "n_layers": 2,
            "n_heads": 2,
            "n_kv_heads": {"choices": [1, 2]},
            "ffn_activation": "swiglu",
            "position": "rope",
            "norm": "rmsnorm",
            "tie_embeddings": {"choices": [True, False]},
        },
        "budget": {"kind": "params", "value": 30000, "tolerance": 0.05},
    }
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    results = tmp_path / "results"
    options = SearchOptions(
        space=str(tmp_path / "space.yaml"),
        out=str(results),
        trials=2,
        budget=BudgetOptions(tokens=4096, train={"eval_every_tokens": 2048, "batch_size": 8}),
        strategy=StrategyOptions(scheduler="none"),
        execution=ExecutionOptions(progress=False),
    )
    run_search(options)
    trials = pl.read_parquet(results / "trials.parquet")
    best = trials.filter(pl.col("status") == "completed").sort("eval_loss").row(0, named=True)

    out = tmp_path / "hf"
    r = invoke(results, "--trial", best["trial_id"], "--format", "hf", "--out", out)
    assert r.exit_code == 0, r.output
    document = json.loads((out / "archscale.json").read_text())
    arch = ArchConfig.from_file(str(out / "archscale.json"))
    assert arch.arch_id == best["arch_id"] and document["checkpoint"]["tokens"] == best["tokens"] == 4096
    assert "/ray/" in document["checkpoint"]["path"]

    state, _ = load_checkpoint(document["checkpoint"]["path"])
    model = build_model(arch, fused_kernels=False).eval()
    model.load_state_dict(state["model"])
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    assert sum(p.numel() for p in hf.parameters()) == best["params"]
    tokens = torch.randint(0, 256, (2, arch.seq_len), generator=torch.Generator().manual_seed(3))
    assert max_logit_difference(model, hf, tokens) < TOLERANCE
