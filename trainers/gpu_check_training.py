"""The GPU check's training items: archscale's own loop training a model, its tokens/s and MFU; peak memory.

On CUDA: a 124M-parameter GPT-2-shaped decoder (12 layers, d_model 768, 12 heads, learned
positions, GELU, LayerNorm, tied embeddings, T = 1024, vocabulary 50257) trains 50 steps on the
built-in corpus through `archscale.trainers.train` with bf16 autocast, fused AdamW and
torch.compile. On CPU: a tiny decoder in float32, eager. Throughput is the steady rate between the
first evaluation (after the compile and warm-up steps) and the last, from the loop's own
`tokens_per_s` (training time only); MFU is that x archscale's training FLOPs per token
(`spaces.count`: 3 x the forward matmuls) over the matmul peak measured in the same run (bf16 on
CUDA, fp32 on CPU).
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass

import torch

from archscale.spaces import ArchConfig, count
from archscale.spaces.outcome import RunStatus
from archscale.spaces.training import TrainConfig
from archscale.trainers.gpu_check_report import NEEDS_CUDA, CheckItem, guarded

STEPS = 50
WARM_STEPS = 10  # steps before the first evaluation: compilation and allocator warm-up happen here

GPT2_SMALL = ArchConfig(
    vocab_size=50257,
    seq_len=1024,
    d_model=768,
    n_layers=12,
    n_heads=12,
    d_ff=3072,
    position="learned",
    ffn_activation="gelu_tanh",
    norm="layernorm",
    norm_position="pre",
    bias=True,
    tie_embeddings=True,
)
# What GPT-2 small leaves out, compiled together: the fused RMSNorm and SwiGLU Triton kernels inside
# torch.compile, FlexAttention (ALiBi's score_mod, windowed and global layers) inside the compiled
# model, grouped-query attention and QK-norm.
VARIANTS_SMALL = ArchConfig(
    vocab_size=256,
    seq_len=512,
    d_model=256,
    n_layers=4,
    n_heads=4,
    n_kv_heads=2,
    d_ff=688,
    position="alibi",
    attention_window=128,
    global_every=2,
    norm="rmsnorm",
    ffn_activation="swiglu",
    qk_norm=True,
)
CPU_TINY = ArchConfig(vocab_size=256, seq_len=64, d_model=64, n_layers=2, n_heads=4, d_ff=256, position="rope")


@dataclass(frozen=True)
class Throughput:
    """Steady training throughput between two evaluations of one run."""

    tokens_per_s: float
    steps: int
    status: RunStatus
    final_train_loss: float | None

    @property
    def problem(self) -> str | None:
        """Why the run does not count as trained (not completed, or no finite loss), or None."""
        loss = self.final_train_loss
        if self.status != RunStatus.COMPLETED or loss is None or not math.isfinite(loss):
            return f"the run ended {self.status} (final train loss {loss})"
        return None


def steady_throughput(reports: list[dict], summary: dict) -> Throughput:
    """(tokens2 - tokens1) / (train_s2 - train_s1) between the first and last evaluation, where
    train_s = tokens / tokens_per_s (the loop counts training steps only); the whole run's rate if
    there was only one evaluation."""
    timed = [(r["tokens"], r["tokens"] / r["tokens_per_s"]) for r in reports if r.get("tokens_per_s")]
    if len(timed) >= 2 and timed[-1][1] > timed[0][1]:
        rate = (timed[-1][0] - timed[0][0]) / (timed[-1][1] - timed[0][1])
    else:
        rate = summary.get("tokens_per_s") or float("nan")
    return Throughput(rate, summary["steps"], RunStatus(summary["status"]), summary.get("train_loss"))


def train_steps(arch: ArchConfig, batch_size: int, steps: int, device: str, compile: bool) -> Throughput:
    """Train `arch` `steps` steps through archscale's loop (no files written) and measure it."""
    from archscale.trainers.loop import train

    step_tokens = batch_size * arch.seq_len
    config = TrainConfig(
        tokens=steps * step_tokens,
        batch_size=batch_size,
        lr=6e-4,
        warmup_tokens=WARM_STEPS * step_tokens,
        eval_every_tokens=WARM_STEPS * step_tokens,
        eval_tokens=2 * step_tokens,
        checkpoint_every_tokens=0,
        device=device,
        compile=compile,
    )
    reports: list[dict] = []
    summary = train(arch, config, "pystdlib", report=reports.append, out=None)
    return steady_throughput(reports, summary)


def training_item(device: torch.device, quick: bool, peak_flops: float | None) -> CheckItem:
    """training.gpt2_124m on CUDA (bf16, compiled), training.cpu_tiny elsewhere (fp32, eager)."""
    on_cuda = device.type == "cuda"
    arch = GPT2_SMALL if on_cuda else CPU_TINY
    name = "training.gpt2_124m" if on_cuda else "training.cpu_tiny"
    batch = (8 if quick else 16) if on_cuda else 8
    steps = STEPS if on_cuda else (2 if quick else 4) * WARM_STEPS
    measured = train_steps(arch, batch, steps, device.type, compile=on_cuda)
    # MFU as PaLM (Chowdhery et al. 2022, appendix B) and nanoGPT define it: the full attention matrix is
    # charged (6N + 12 L H Q T per token), i.e. archscale's dense convention, not the causal default
    flops_per_token = count(arch, flops_convention="dense").flops_per_token
    mfu = measured.tokens_per_s * flops_per_token / peak_flops if peak_flops else None
    numbers = {
        "params": count(arch).params,
        "mfu_flops_convention": "dense",
        "batch_size": batch,
        "seq_len": arch.seq_len,
        "steps": measured.steps,
        "precision": "bf16 autocast, torch.compile" if on_cuda else "fp32, eager",
        "tokens_per_s": measured.tokens_per_s,
        "flops_per_token": flops_per_token,
        "mfu": mfu,
        "mfu_against": "measured bf16 matmul peak" if on_cuda else "measured fp32 matmul peak (CPU)",
        "final_train_loss": measured.final_train_loss,
    }
    reason = measured.problem
    if reason is not None:
        return CheckItem(name, "fail", reason=reason, numbers=numbers, verdict=reason)
    mfu_text = f", MFU {mfu:.1%}" if mfu is not None else ""
    verdict = (
        f"{numbers['params'] / 1e6:.3g}M params, {steps} steps ({numbers['precision']}), "
        f"{measured.tokens_per_s:,.0f} tokens/s{mfu_text}"
    )
    return CheckItem(name, "pass", numbers=numbers, verdict=verdict)


def variants_item(quick: bool) -> CheckItem:
    """training.compiled_variants (CUDA): VARIANTS_SMALL trains compiled in bf16 to a finite loss."""
    measured = train_steps(VARIANTS_SMALL, 8, (2 if quick else 5) * WARM_STEPS, "cuda", compile=True)
    loss = measured.final_train_loss
    numbers = {"tokens_per_s": measured.tokens_per_s, "steps": measured.steps, "final_train_loss": loss}
    reason = measured.problem
    if reason is not None:
        return CheckItem("training.compiled_variants", "fail", reason=reason, numbers=numbers, verdict=reason)
    verdict = (
        f"fused RMSNorm + SwiGLU kernels and FlexAttention (ALiBi, windows) inside torch.compile: "
        f"{measured.steps} steps, loss {loss:.3f}, {measured.tokens_per_s:,.0f} tokens/s"
    )
    return CheckItem("training.compiled_variants", "pass", numbers=numbers, verdict=verdict)


def training_items(device: torch.device, quick: bool, peak_flops: float | None) -> list[CheckItem]:
    """Every training item, each guarded; the ones this device does not run skipped with the reason."""
    if device.type == "cuda":
        return [
            *guarded("training.gpt2_124m", lambda: [training_item(device, quick, peak_flops)]),
            *guarded("training.compiled_variants", lambda: [variants_item(quick)]),
            CheckItem.skipped("training.cpu_tiny", "CUDA is present: see training.gpt2_124m"),
        ]
    return [
        *guarded("training.cpu_tiny", lambda: [training_item(device, quick, peak_flops)]),
        CheckItem.skipped("training.gpt2_124m", NEEDS_CUDA),
        CheckItem.skipped("training.compiled_variants", NEEDS_CUDA),
    ]


def peak_training_memory(arch: ArchConfig, batch_size: int) -> int:
    """torch.cuda.max_memory_allocated, less what was allocated before, over two steps and an
    evaluation of archscale's loop on CUDA (eager, bf16 autocast, as a search trial trains)."""
    from archscale.trainers.loop import train

    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    already = torch.cuda.memory_allocated()  # anything this process still holds is not the trial's
    step_tokens = batch_size * arch.seq_len
    config = TrainConfig(
        tokens=2 * step_tokens,
        batch_size=batch_size,
        eval_tokens=step_tokens,
        checkpoint_every_tokens=0,
        device="cuda",
    )
    train(arch, config, "pystdlib", out=None)
    peak = torch.cuda.max_memory_allocated() - already
    gc.collect()
    torch.cuda.empty_cache()
    return int(peak)
