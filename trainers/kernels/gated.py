"""Fused gated activations: out = act(gate) * up, for act in silu (SwiGLU), gelu (GeGLU), relu (ReGLU).

Layer 1, the Triton kernels: elementwise over the flattened tensors, computed in float32 and
stored in the input dtype. The forward reads gate and up once and writes out; the backward reads
gate, up and grad_out once and writes both input gradients (nothing is recomputed by torch, and
act(gate) is never materialised for autograd: only gate and up are saved).
Layer 2, `GatedActivation` (torch.autograd.Function); layer 3, `gated_activation(name, gate, up)`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

ACTS = {"swiglu": 0, "geglu": 1, "reglu": 2}

# Elements per program. UNTUNED: no GPU was available when this was written; 1024 (4 warps of
# 256 elements... 8 per thread) is the common choice for bandwidth-bound elementwise kernels
# (Liger-Kernel, the Triton tutorials). Re-measure with benchmarks/bench_kernels.py on a GPU.
BLOCK = 1024
NUM_WARPS = 4

_SQRT1_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


@triton.jit
def _gated_fwd(gate_ptr, up_ptr, out_ptr, n, ACT: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    g = tl.load(gate_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(up_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if ACT == 0:
        a = g * tl.sigmoid(g)
    elif ACT == 1:
        a = 0.5 * g * (1.0 + tl.erf(g * _SQRT1_2))
    else:
        a = tl.maximum(g, 0.0)
    tl.store(out_ptr + offs, (a * u).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gated_bwd(dout_ptr, gate_ptr, up_ptr, dgate_ptr, dup_ptr, n, ACT: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    dout = tl.load(dout_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(gate_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(up_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if ACT == 0:
        s = tl.sigmoid(g)
        a = g * s
        da = s * (1.0 + g * (1.0 - s))
    elif ACT == 1:
        cdf = 0.5 * (1.0 + tl.erf(g * _SQRT1_2))
        a = g * cdf
        da = cdf + g * _INV_SQRT_2PI * tl.exp(-0.5 * g * g)
    else:
        a = tl.maximum(g, 0.0)
        da = tl.where(g > 0.0, 1.0, 0.0)
    tl.store(dgate_ptr + offs, (dout * u * da).to(dgate_ptr.dtype.element_ty), mask=mask)
    tl.store(dup_ptr + offs, (dout * a).to(dup_ptr.dtype.element_ty), mask=mask)


class GatedActivation(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name: str, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        if name not in ACTS:
            raise ValueError(f"fused gated activation {name!r}; allowed: {sorted(ACTS)}")
        if gate.shape != up.shape:
            raise ValueError(f"gate {tuple(gate.shape)} and up {tuple(up.shape)} must have the same shape")
        gate, up = gate.contiguous(), up.contiguous()
        out = torch.empty_like(gate)
        n = gate.numel()
        _gated_fwd[(triton.cdiv(n, BLOCK),)](gate, up, out, n, ACT=ACTS[name], BLOCK=BLOCK, num_warps=NUM_WARPS)
        ctx.save_for_backward(gate, up)
        ctx.act = ACTS[name]
        return out

    @staticmethod
    def backward(ctx, dout: torch.Tensor):
        gate, up = ctx.saved_tensors
        dout = dout.contiguous()
        dgate, dup = torch.empty_like(gate), torch.empty_like(up)
        n = gate.numel()
        _gated_bwd[(triton.cdiv(n, BLOCK),)](
            dout, gate, up, dgate, dup, n, ACT=ctx.act, BLOCK=BLOCK, num_warps=NUM_WARPS
        )
        return None, dgate, dup


def gated_activation(name: str, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return GatedActivation.apply(name, gate, up)


def reference(name: str, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Plain torch, in the input dtype: the fallback's formula and the tests' oracle."""
    act = {"swiglu": torch.nn.functional.silu, "geglu": torch.nn.functional.gelu, "reglu": torch.relu}[name]
    return act(gate) * up
