"""The training loop: one architecture, one data source, one run.

    train(arch, TrainConfig(...), data="pystdlib", report=fn, out="runs/x") -> summary dict

AdamW (decoupled weight decay on matrices only), linear warmup then cosine or WSD decay, gradient
clipping, gradient accumulation to `tokens_per_step`. CPU runs in float32 with `threads` torch
threads and are deterministic for a fixed seed; CUDA runs use bf16 autocast, fused AdamW and,
optionally, torch.compile. Every evaluation is reported, appended to `out/curves.parquet`, and
(when due) checkpointed to `out/checkpoint/`, from which `resume_from=` continues the same run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from archscale.spaces import ArchConfig, count
from archscale.spaces.outcome import RunStatus
from archscale.spaces.record import REPEATED_DATA_EPOCHS, epochs, repeated_share, repeats_data
from archscale.spaces.training import TrainConfig
from archscale.trainers.checkpoint import load_checkpoint, save_checkpoint
from archscale.trainers.data import open_data
from archscale.trainers.distributed import Workers
from archscale.trainers.evaluation import LENGTH_FACTORS, eval_rows, evaluate, loss_by_length
from archscale.trainers.metrics import ActivationStats, git_revision, grad_norm_by_block, hardware, versions
from archscale.trainers.model import build_model
from archscale.trainers.moe import aux_loss, router_health
from archscale.trainers.optim import Schedule, make_optimizer
from archscale.trainers.source import IGNORE, DataSource

__all__ = [
    "LENGTH_FACTORS",
    "DIVERGENCE_FACTOR",
    "RepeatedDataWarning",
    "Schedule",
    "diverged",
    "eval_rows",
    "evaluate",
    "make_optimizer",
    "train",
]

DIVERGENCE_FACTOR = 3.0  # after warmup, a training loss above 3x the first step's loss = diverged


# --------------------------------------------------------------------------------------------
# Pieces


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but torch sees no CUDA device; use 'auto' or 'cpu'")
    return torch.device(name)


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def diverged(loss: float, grad_norm: float, initial_loss: float, after_warmup: bool) -> str | None:
    """Why a training step counts as diverged (a non-finite loss or gradient norm at any step; after
    warmup, a loss above `DIVERGENCE_FACTOR` x the first step's), or None. The one divergence rule."""
    if not math.isfinite(loss) or not math.isfinite(grad_norm):
        return f"non-finite {'loss' if not math.isfinite(loss) else 'gradient norm'}"
    if after_warmup and loss > DIVERGENCE_FACTOR * initial_loss:
        return f"training loss {loss:.3g} > {DIVERGENCE_FACTOR:g}x the first step's {initial_loss:.3g} after warmup"
    return None


class RepeatedDataWarning(UserWarning):
    """A run will read its training split `REPEATED_DATA_EPOCHS` times or more (spaces/record.py)."""


def warn_if_repeated(source: DataSource, tokens: int) -> None:
    """Warn once, before training, when a run of `tokens` tokens repeats `source`'s training data."""
    planned = epochs(tokens, source.train_tokens)
    if repeats_data(planned):
        warnings.warn(
            f"{source.name}: {tokens:,} tokens are {planned:.2f} epochs of its {source.train_tokens:,}-token training "
            f"split (>= {REPEATED_DATA_EPOCHS}), so ~{repeated_share(planned):.0%} of them repeat earlier ones; "
            "compare it only with runs of similar epochs, or give more data",
            RepeatedDataWarning,
            stacklevel=3,
        )


def _write_parquet_atomically(rows: list[dict], path: Path) -> None:
    import polars as pl

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pl.DataFrame(rows, infer_schema_length=None).write_parquet(tmp)
    os.replace(tmp, path)


def _write_json_atomically(obj: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# The loop


def train(
    arch: ArchConfig | dict,
    train_config: TrainConfig | dict | None = None,
    data: str | DataSource = "pystdlib",
    report: Callable[[dict], bool | None] | None = None,
    out: str | Path | None = None,
    resume_from: str | Path | None = None,
    workers: Workers | None = None,
) -> dict:
    """Train `arch` on `data`; return the summary (also written to `out/summary.json`).

    The summary's `status` is a `RunStatus` (completed, stopped, diverged, failed), decided here once.
    `report(metrics)` is called at every evaluation; returning True stops the run (`RunStatus.STOPPED`).
    `out=None` writes no curves or summary; checkpoints then go to a fresh temp dir (its path is in
    the metrics and summary; the caller owns it). `resume_from` is a checkpoint directory of the
    same architecture and data; the run continues exactly where it was checkpointed.
    `workers` (trainers/distributed.py): data-parallel, the batch split; only the main one writes `out`.
    Raises ValueError on bad input, FileExistsError if `out` already holds a finished run (unless
    resuming); exceptions from the model propagate after summary.json records `RunStatus.FAILED`.
    """
    arch = arch if isinstance(arch, ArchConfig) else ArchConfig(**arch)
    cfg = train_config if isinstance(train_config, TrainConfig) else TrainConfig.from_dict(train_config or {})
    source = open_data(data) if isinstance(data, str) else data
    workers = Workers.for_run(workers, cfg.batch_size)
    out = out if workers.is_main else None  # the main worker writes the run's files; the others only compute
    if source.vocab_size > arch.vocab_size:
        raise ValueError(
            f"vocab_size: data {source.name!r} has {source.vocab_size} tokens but the architecture's "
            f"vocab_size is {arch.vocab_size}; set vocab_size >= {source.vocab_size}"
        )
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        if (out_dir / "summary.json").exists() and resume_from is None:
            raise FileExistsError(f"{out_dir}: holds a finished run (summary.json); choose a new out dir or resume")
        out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out_dir / "checkpoint" if out_dir is not None else None  # None: a temp dir, made when first needed

    device = resolve_device(cfg.device)
    threads = cfg.threads or default_threads()
    previous_threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(threads)
    counts = count(arch, cfg.flops_convention)
    summary: dict[str, Any] = {
        "status": None,
        "reason": None,
        "eval_loss": None,
        "eval_bpb": None,
        "eval_loss_by_length": {},
        "train_loss": None,
        "attention_backend": None,  # sdpa | flex | materialised, chosen when the model is built
        "tokens": 0,
        "compute": 0.0,
        "epochs": epochs(0, source.train_tokens),
        "steps": 0,
        "tokens_per_s": None,
        "wall_s": 0.0,
        **counts.to_dict(),
        "arch": arch.to_dict(),
        "arch_id": arch.arch_id,
        "train_config": cfg.to_dict(),
        "seed": cfg.seed,
        "versions": versions(),
        "git_revision": git_revision(),
        "hardware": hardware(device, threads if device.type == "cpu" else torch.get_num_threads()),
        "data": source.describe(),
        "checkpoint": None,
        "resumed_from": str(resume_from) if resume_from else None,
    }
    warn_if_repeated(source, cfg.tokens)
    try:
        flops = counts.flops_per_token
        _run(arch, cfg, source, report, out_dir, ckpt_dir, resume_from, device, flops, summary, workers)
    except BaseException as e:
        summary.update(status=RunStatus.FAILED, reason=f"{type(e).__name__}: {e}")
        if out_dir is not None:
            _write_json_atomically(summary, out_dir / "summary.json")
        raise
    finally:
        torch.set_num_threads(previous_threads)
    if out_dir is not None:
        _write_json_atomically(summary, out_dir / "summary.json")
    return summary


def _run(
    arch: ArchConfig,
    cfg: TrainConfig,
    source: DataSource,
    report,
    out_dir: Path | None,
    ckpt_dir: Path | None,
    resume_from,
    device: torch.device,
    flops_per_token: float,
    summary: dict,
    workers: Workers,
) -> None:
    T = arch.seq_len
    micro_tokens = cfg.batch_size * T
    accum = max(1, round((cfg.tokens_per_step or micro_tokens) / micro_tokens))
    step_tokens = accum * micro_tokens
    total_steps = max(1, math.ceil(cfg.tokens / step_tokens))
    warmup_tokens = cfg.warmup_tokens if cfg.warmup_tokens is not None else cfg.tokens // 20
    warmup_steps = min(total_steps, math.ceil(warmup_tokens / step_tokens))
    schedule = Schedule(cfg.lr, total_steps, warmup_steps, cfg.schedule, cfg.min_lr_ratio, cfg.wsd_decay_frac)
    # default: 10 evaluations, but never more often than every 2 x eval_tokens, so evaluation
    # (a forward pass, ~1/3 of a training step per token) costs at most ~1/6 of training
    eval_every = cfg.eval_every_tokens or max(step_tokens, cfg.tokens // 10, 2 * cfg.eval_tokens)
    ckpt_every = eval_every if cfg.checkpoint_every_tokens is None else cfg.checkpoint_every_tokens

    torch.manual_seed(cfg.seed)
    model = build_model(arch, fused_kernels=cfg.kernels, device=device).to(device)
    summary["attention_backend"] = model.attention_backend
    wrapped = workers.wrap(model)  # DDP or FSDP2 for several workers, before the optimizer sees the parameters
    optimizer = make_optimizer(model, cfg, device)
    data_gen = torch.Generator().manual_seed(cfg.seed + 1_000_003)  # batch order, independent of init
    forward = torch.compile(wrapped) if cfg.compile else wrapped
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        bf16 = torch.cuda.is_bf16_supported()
        autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    else:
        autocast = contextlib.nullcontext
    val = source.val_batches(T, cfg.eval_tokens, eval_rows(cfg.batch_size, T, arch.vocab_size), seed=0)
    bpt = source.bytes_per_token
    data_id = {"name": source.name, "fingerprint": source.fingerprint}

    step, tokens, train_s, wall_offset, initial_loss = 0, 0, 0.0, 0.0, None
    next_eval, next_ckpt, rows = eval_every, ckpt_every, []
    if resume_from is not None:
        state, meta = load_checkpoint(resume_from)
        if meta["arch"] != arch.to_dict():
            raise ValueError(
                f"{resume_from}: checkpoint is of a different architecture ({meta.get('arch_id')}) than {arch.arch_id}"
            )
        if meta["data"]["fingerprint"] != source.fingerprint:
            raise ValueError(f"{resume_from}: checkpoint was trained on {meta['data']} but data is {data_id}")
        workers.load_states(model, optimizer, state)
        data_gen.set_state(state["data_rng"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        step, tokens, train_s, wall_offset = state["step"], state["tokens"], state["train_s"], state["wall_s"]
        initial_loss, next_eval, next_ckpt = state["initial_loss"], state["next_eval"], state["next_ckpt"]
        rows = meta["curves"]
        if rows:
            summary.update(
                eval_loss=rows[-1]["eval_loss"], eval_bpb=rows[-1].get("eval_bpb"), train_loss=rows[-1]["train_loss"]
            )

    def checkpoint(wall_s: float) -> str | None:
        state = {
            **workers.states(model, optimizer),  # "model", "optimizer": full, gathered by every worker
            "data_rng": data_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "step": step,
            "tokens": tokens,
            "train_s": train_s,
            "wall_s": wall_s,
            "initial_loss": initial_loss,
            "next_eval": next_eval,
            "next_ckpt": next_ckpt,
        }
        if device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(device)
        meta = {
            "arch": arch.to_dict(),
            "arch_id": arch.arch_id,
            "train_config": cfg.to_dict(),
            "data": data_id,
            "step": step,
            "tokens": tokens,
            "curves": rows,
        }
        return str(save_checkpoint(ckpt_dir, state, meta)) if workers.is_main else None

    t0 = time.perf_counter()
    params = list(model.parameters())
    loss_sum, loss_steps, grad_norm, block_norms, lr = 0.0, 0, float("nan"), [], schedule(step)
    status, reason = RunStatus.COMPLETED, None
    model.train()
    while tokens < cfg.tokens:
        t_step = time.perf_counter()
        lr = schedule(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        step_loss = torch.zeros((), device=device)
        for _ in range(accum):
            x, y = workers.split(*source.train_batch(cfg.batch_size, T, data_gen))  # this worker's rows
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast():
                logits = forward(x)  # (B, T, V)
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=IGNORE)
            balance = aux_loss(model)  # MoE load-balancing loss (None for dense FFNs); not in the reported loss
            objective = loss if balance is None else loss + cfg.router_aux_loss_coef * balance
            (objective / accum).backward()
            step_loss += loss.detach() / accum
        tokens += step_tokens
        step += 1
        eval_due = tokens >= next_eval or tokens >= cfg.tokens
        if eval_due:
            block_norms = grad_norm_by_block(model)
        grad_norm = workers.clip_grad_norm(params, cfg.grad_clip or float("inf"))
        loss_value = float(workers.mean(step_loss))  # the whole batch's loss, on every worker
        if initial_loss is None:
            initial_loss = loss_value
        why = diverged(loss_value, grad_norm, initial_loss, after_warmup=step > warmup_steps)
        if why is not None:
            status, reason = RunStatus.DIVERGED, f"{why} at step {step} ({tokens} tokens)"
            break
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_sum, loss_steps = loss_sum + loss_value, loss_steps + 1
        train_s += time.perf_counter() - t_step
        if not eval_due:
            continue

        final = tokens >= cfg.tokens
        router = router_health(model)  # over the training steps since the last evaluation
        stats = ActivationStats(model)
        eval_loss = evaluate(model, val, device, autocast, stats)  # eager: hooks, any length
        if tokens >= next_eval:
            next_eval = (tokens // eval_every + 1) * eval_every
        path = None
        wall_s = wall_offset + time.perf_counter() - t0
        metrics = {
            "tokens": tokens,
            "compute": flops_per_token * tokens,
            "epochs": epochs(tokens, source.train_tokens),
            "step": step,
            "train_loss": loss_sum / max(1, loss_steps),
            "eval_loss": eval_loss,
            "eval_bpb": eval_loss / bpt / math.log(2) if bpt else None,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens_per_s": tokens / train_s if train_s > 0 else None,
            "wall_s": wall_s,
            "ffn_zero_frac": stats.zero_frac,
            "ffn_dead_frac": stats.dead_frac,
            "grad_norm_by_layer": block_norms,
            "attention_backend": model.attention_backend,
            **router,
            "checkpoint": None,
            "final": final,
        }
        loss_sum, loss_steps = 0.0, 0
        if ckpt_every and (tokens >= next_ckpt or final):
            if tokens >= next_ckpt:
                next_ckpt = (tokens // ckpt_every + 1) * ckpt_every
            if ckpt_dir is None and workers.is_main:
                ckpt_dir = Path(tempfile.mkdtemp(prefix="archscale-run-")) / "checkpoint"
            metrics["checkpoint"] = str(ckpt_dir) if workers.is_main else None
            rows.append(metrics)
            path = checkpoint(wall_s)
            summary["checkpoint"] = path
        else:
            rows.append(metrics)
        if out_dir is not None:
            _write_parquet_atomically(rows, out_dir / "curves.parquet")
        summary.update(eval_loss=eval_loss, eval_bpb=metrics["eval_bpb"], train_loss=metrics["train_loss"])
        if report is not None and report(dict(metrics)) is True:
            status, reason = RunStatus.STOPPED, f"report() asked to stop at {tokens} tokens"
            break

    wall_s = wall_offset + time.perf_counter() - t0
    summary.update(
        status=status,
        reason=reason,
        tokens=tokens,
        compute=flops_per_token * tokens,
        epochs=epochs(tokens, source.train_tokens),
        steps=step,
        tokens_per_s=tokens / train_s if train_s > 0 else None,
        wall_s=wall_s,
    )
    if status == RunStatus.COMPLETED:
        summary["eval_loss_by_length"] = loss_by_length(
            model, source, arch, cfg, device, autocast, summary["eval_loss"]
        )
    elif status == RunStatus.DIVERGED:
        summary["eval_loss"] = summary["eval_bpb"] = None
