"""The GPU check's attention items: every backend against a float64 reference, forward and backward.

For each case (every position coding x full attention, all layers windowed, windowed and global
layers alternating; --quick: four codings x full and alternating) one small decoder is built once and copied into:
- golden: the `materialised` backend in float64 (the reference);
- baseline: the `materialised` backend, eager, in the dtype under test (bf16 on CUDA, fp32 on CPU);
- each candidate backend in that dtype.
Each runs forward on the same tokens and backward from the same output gradient; the logits and
every parameter's gradient (the T5 bias table's included) are compared with PyTorch's own rule for
compiled kernels (test/inductor/test_flex_attention.py, `_check_out_and_grad`): the candidate's
mean absolute error against float64 may be at most ERROR_MULTIPLE x the eager same-dtype result's.
The baseline itself must lie within REFERENCE_BOUND of float64 (relative mean absolute error).
FlexAttention is compiled on CUDA (as archscale trains with it) and eager, forward only, on CPU
(torch has no FlexAttention backward there); its compiled item is skipped without CUDA.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from archscale.spaces import ArchConfig
from archscale.spaces.arch import POSITIONS
from archscale.trainers.gpu_check_report import NEEDS_CUDA, CheckItem
from archscale.trainers.model import build_model

# PyTorch's factors in test_flex_attention.py: 1.1 for bf16 / fp16 ("compiled error is greater than
# ref error by more than 1.1X"), 10 for fp32 (its online softmax is less accurate than fp32 eager).
ERROR_MULTIPLE = {torch.bfloat16: 1.1, torch.float32: 10.0}
# The eager same-dtype reference against float64, relative mean absolute error over logits and
# gradients: bf16 keeps 8 bits (2^-8 = 0.004 per rounding; a few roundings compound), fp32 24.
REFERENCE_BOUND = {torch.bfloat16: 5e-2, torch.float32: 1e-4}
# A tensor whose float64 values are this small against the largest is zero in exact arithmetic
# (rounding noise only): its relative error means nothing, so it is not compared.
ZERO_BY_MATH = 1e-10
WINDOWS = ((None, None), (8, None), (8, 2))  # (attention_window, global_every): full, windowed, alternating
# --quick: one coding of each kind the backends treat differently (no bias: the fused path; a
# rotation; a bias by formula; a learned bias table), full and windowed + global layers. On CUDA
# every case compiles FlexAttention afresh, so this is what keeps --quick short.
QUICK_POSITIONS = ("none", "rope", "alibi", "t5_bias")


@dataclass(frozen=True)
class Comparison:
    """One tensor (the logits, or one parameter's gradient) of one candidate against float64."""

    what: str
    error: float  # candidate: mean |x - golden| / mean |golden|
    baseline_error: float  # the eager same-dtype result, the same way
    multiple: float

    @property
    def ok(self) -> bool:
        tiny = 1e-12  # both exact (e.g. a gradient that is zero in every dtype)
        return math.isfinite(self.error) and self.error <= self.multiple * self.baseline_error + tiny

    @property
    def ratio(self) -> float:
        return self.error / self.baseline_error if self.baseline_error > 0 else (0.0 if self.error == 0 else math.inf)


@dataclass(frozen=True)
class BackendRun:
    """One candidate backend on one case: its comparisons, or the error that stopped it."""

    comparisons: tuple[Comparison, ...] = ()
    error: str | None = None


def relative_error(golden: torch.Tensor, x: torch.Tensor) -> float:
    """mean |x - golden| / mean |golden|, computed in float64 (NaN anywhere gives NaN)."""
    golden, x = golden.detach().double(), x.detach().double()
    scale = golden.abs().mean().clamp(min=1e-30)
    return float((x - golden).abs().mean() / scale)


def compare_to_reference(
    golden: torch.Tensor, baseline: torch.Tensor, candidate: torch.Tensor, dtype: torch.dtype, what: str
) -> Comparison:
    """PyTorch's rule for a compiled (or fused) kernel: its error against the float64 `golden` at most
    ERROR_MULTIPLE[dtype] x the error of the eager `baseline` computed in the same dtype."""
    return Comparison(what, relative_error(golden, candidate), relative_error(golden, baseline), ERROR_MULTIPLE[dtype])


def case_arch(position: str, window: tuple[int | None, int | None], on_cuda: bool) -> ArchConfig:
    """A small decoder with grouped-query attention; wider heads on CUDA (FlexAttention's tiles)."""
    return ArchConfig(
        vocab_size=64,
        seq_len=256 if on_cuda else 48,
        d_model=128 if on_cuda else 32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        d_ff=128,
        position=position,
        attention_window=(64 if on_cuda else window[0]) if window[0] else None,
        global_every=window[1],
        bias=False,  # a key projection's bias has zero gradient in exact arithmetic: nothing to compare
    )


def _outputs(model, idx: torch.Tensor, dout: torch.Tensor, backward: bool) -> dict[str, torch.Tensor]:
    """The logits and (when `backward`) every parameter's gradient after one backward from `dout`."""
    if not backward:
        with torch.no_grad():
            return {"logits": model(idx)}
    model.zero_grad(set_to_none=True)
    logits = model(idx)
    logits.backward(dout.to(logits.dtype))
    return {"logits": logits, **{f"grad {n}": p.grad for n, p in model.named_parameters() if p.grad is not None}}


def run_case(
    arch: ArchConfig, candidates: dict[str, bool], device: torch.device, dtype: torch.dtype
) -> tuple[float, dict[str, BackendRun]]:
    """The baseline's worst error against float64, and each candidate backend's run (comparisons,
    or the error it raised: a compile failure of one backend must not hide the others).
    `candidates` maps backend name -> whether to run its backward."""
    torch.manual_seed(0)
    source = build_model(arch, attention_backend="materialised")
    if arch.position == "t5_bias":  # its zero-initialised table would hide a wrong bias lookup (and gradient)
        with torch.no_grad():
            source.pos.table.weight.normal_()
    state = source.state_dict()

    def copy(backend: str, to: torch.dtype):
        model = build_model(arch, fused_kernels=False, attention_backend=backend)
        model.load_state_dict(state)
        return model.to(device=device, dtype=to)

    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, arch.vocab_size, (2, arch.seq_len), generator=g).to(device)
    dout = torch.randn(2, arch.seq_len, arch.vocab_size, generator=g, dtype=torch.float64).to(device)
    golden = _outputs(copy("materialised", torch.float64), idx, dout, backward=True)
    baseline = _outputs(copy("materialised", dtype), idx, dout, backward=True)
    scale = {k: float(t.detach().abs().mean()) for k, t in golden.items()}
    compared = [k for k in golden if scale[k] > ZERO_BY_MATH * max(scale.values())]
    baseline_worst = max(relative_error(golden[k], baseline[k]) for k in compared)
    results = {}
    for backend, backward in candidates.items():
        try:
            got = _outputs(copy(backend, dtype), idx, dout, backward)
        except Exception as e:
            results[backend] = BackendRun(error=CheckItem.failed(backend, e).reason)
            continue
        kept = [k for k in got if k in compared]
        results[backend] = BackendRun(
            tuple(compare_to_reference(golden[k], baseline[k], got[k], dtype, k) for k in kept)
        )
    return baseline_worst, results


def _backend_item(name: str, runs: dict[str, BackendRun], mode: str) -> CheckItem:
    """One backend's item from its runs by case label."""
    comparisons = {case: run.comparisons for case, run in runs.items()}
    worst_case, worst = max(
        ((case, c) for case, cs in comparisons.items() for c in cs), key=lambda cc: cc[1].ratio, default=(None, None)
    )
    bad = [f"{case}: {run.error}" for case, run in runs.items() if run.error is not None]
    bad += [
        f"{case}: {c.what} error {c.error:.3g} > {c.multiple:g} x {c.baseline_error:.3g}"
        for case, cs in comparisons.items()
        for c in cs
        if not c.ok
    ]
    numbers = {
        "mode": mode,
        "cases": len(comparisons),
        "tensors_compared": sum(len(cs) for cs in comparisons.values()),
        "worst_error_ratio": worst.ratio if worst else None,
        "worst": f"{worst_case}: {worst.what}" if worst else None,
        "allowed_ratio": worst.multiple if worst else None,
    }
    if bad:
        reason = f"{len(bad)} error(s) or tensor(s) over PyTorch's rule; first: " + "; ".join(bad[:3])
        return CheckItem(name, "fail", reason=reason, numbers=numbers, verdict=reason)
    verdict = (
        f"{mode}: {numbers['cases']} cases, error vs float64 at most {numbers['worst_error_ratio']:.3g} x "
        f"the eager same-dtype error (allowed {numbers['allowed_ratio']:g} x)"
    )
    return CheckItem(name, "pass", numbers=numbers, verdict=verdict)


def attention_items(device: torch.device, quick: bool) -> list[CheckItem]:
    """attention.materialised, attention.sdpa, attention.flex_eager (CPU) and attention.flex_compiled (CUDA)."""
    on_cuda = device.type == "cuda"
    dtype = torch.bfloat16 if on_cuda else torch.float32
    windows = (WINDOWS[0], WINDOWS[2]) if quick else WINDOWS
    positions = QUICK_POSITIONS if quick else POSITIONS
    candidates = {"sdpa": True, "flex": on_cuda}  # flex: compiled fwd + bwd on CUDA; eager forward on CPU
    flex_name = "attention.flex_compiled" if on_cuda else "attention.flex_eager"
    baseline_errors: dict[str, float] = {}
    by_backend: dict[str, dict[str, BackendRun]] = {b: {} for b in candidates}
    for position, window in itertools.product(positions, windows):
        label = f"{position}/w{window[0]}/g{window[1]}"
        if on_cuda:
            torch._dynamo.reset()  # each case's score_mod is new code: keep dynamo under its recompile limit
        baseline_errors[label], results = run_case(case_arch(position, window, on_cuda), candidates, device, dtype)
        for backend, run in results.items():
            by_backend[backend][label] = run
    worst_label = max(baseline_errors, key=baseline_errors.__getitem__)
    bound = REFERENCE_BOUND[dtype]
    worst_error = baseline_errors[worst_label]
    dtype_name = str(dtype).removeprefix("torch.")
    numbers = {
        "dtype": dtype_name,
        "cases": len(baseline_errors),
        "worst_relative_error": worst_error,
        "worst": worst_label,
        "bound": bound,
    }
    if worst_error <= bound:
        verdict = f"eager {dtype_name} within {worst_error:.2g} of float64 (bound {bound:g})"
        reference = CheckItem("attention.materialised", "pass", numbers=numbers, verdict=verdict)
    else:
        reason = f"{worst_label}: eager {dtype_name} is {worst_error:.3g} from float64 > {bound:g}"
        reference = CheckItem("attention.materialised", "fail", reason=reason, numbers=numbers, verdict=reason)
    mode = f"{dtype_name}, forward and backward"
    items = [reference, _backend_item("attention.sdpa", by_backend["sdpa"], mode)]
    if on_cuda:
        items.append(_backend_item(flex_name, by_backend["flex"], f"compiled, {mode}"))
        items.append(CheckItem.skipped("attention.flex_eager", "on CUDA archscale runs FlexAttention compiled"))
    else:
        items.append(_backend_item(flex_name, by_backend["flex"], "eager, float32, forward only (no CPU backward)"))
        items.append(CheckItem.skipped("attention.flex_compiled", NEEDS_CUDA))
    return items
