"""Fused RMSNorm: y = x / sqrt(mean(x^2) + eps) * weight over the last dimension.

Layer 1, the Triton kernels. Forward: one program per row; reads x once, writes y and the row's
1/rms (float32, saved for backward). Backward: each program walks a contiguous range of rows,
reading x, dy and 1/rms once, writing dx, and accumulating its share of dweight in registers;
the per-program partial sums (programs x N, float32) are added by torch at the end.
Layer 2, `RMSNormFunction` (torch.autograd.Function); layer 3, `rms_norm(x, weight, eps)`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Programs in the backward, as a multiple of the GPU's SM count (each writes one dweight partial
# row). UNTUNED: no GPU was available when this was written; 4 per SM follows Liger-Kernel's
# RMSNorm. On CPU (Triton interpreter, tests) a fixed 8.
BWD_PROGRAMS_PER_SM = 4
BWD_PROGRAMS_CPU = 8


def _num_warps(block_n: int) -> int:
    # UNTUNED heuristic (as in the Triton layer-norm tutorial): more warps for wider rows.
    return 4 if block_n <= 2048 else 8 if block_n <= 8192 else 16


@triton.jit
def _rms_fwd(x_ptr, w_ptr, y_ptr, rstd_ptr, n_cols, eps, BLOCK_N: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / n_cols + eps)
    tl.store(y_ptr + row * n_cols + cols, (x * rstd * w).to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(rstd_ptr + row, rstd)


@triton.jit
def _rms_bwd(
    dy_ptr, x_ptr, w_ptr, rstd_ptr, dx_ptr, dw_partial_ptr, n_rows, n_cols, rows_per_program, BLOCK_N: tl.constexpr
):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < n_cols
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    dw = tl.zeros((BLOCK_N,), dtype=tl.float32)
    row_start = pid * rows_per_program
    row_end = tl.minimum(row_start + rows_per_program, n_rows)
    base = row_start.to(tl.int64) * n_cols  # int64: rows x cols may pass 2^31 elements
    for row in range(row_start, row_end):
        x = tl.load(x_ptr + base + cols, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(dy_ptr + base + cols, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(rstd_ptr + row)
        xhat = x * rstd
        dyw = dy * w
        dx = rstd * (dyw - xhat * (tl.sum(dyw * xhat, axis=0) / n_cols))
        tl.store(dx_ptr + base + cols, dx.to(dx_ptr.dtype.element_ty), mask=mask)
        dw += dy * xhat
        base += n_cols
    tl.store(dw_partial_ptr + pid * n_cols + cols, dw, mask=mask)


class RMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        shape, n = x.shape, x.shape[-1]
        if weight.shape != (n,):
            raise ValueError(f"weight {tuple(weight.shape)} must be ({n},) for input {tuple(shape)}")
        x2 = x.reshape(-1, n).contiguous()
        m = x2.shape[0]
        y = torch.empty((m, n), dtype=torch.promote_types(x.dtype, weight.dtype), device=x.device)
        rstd = torch.empty(m, dtype=torch.float32, device=x.device)
        block_n = triton.next_power_of_2(n)
        if m:
            _rms_fwd[(m,)](x2, weight, y, rstd, n, eps, BLOCK_N=block_n, num_warps=_num_warps(block_n))
        ctx.save_for_backward(x2, weight, rstd)
        ctx.shape = shape
        return y.reshape(shape)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x2, weight, rstd = ctx.saved_tensors
        m, n = x2.shape
        dy2 = dy.reshape(m, n).contiguous()
        dx = torch.empty_like(x2)
        if x2.is_cuda:
            sms = torch.cuda.get_device_properties(x2.device).multi_processor_count
            programs = max(1, min(m, BWD_PROGRAMS_PER_SM * sms))
        else:
            programs = max(1, min(m, BWD_PROGRAMS_CPU))
        rows_per_program = triton.cdiv(max(m, 1), programs)
        dw_partial = torch.zeros((programs, n), dtype=torch.float32, device=x2.device)
        block_n = triton.next_power_of_2(n)
        if m:
            _rms_bwd[(programs,)](
                dy2,
                x2,
                weight,
                rstd,
                dx,
                dw_partial,
                m,
                n,
                rows_per_program,
                BLOCK_N=block_n,
                num_warps=_num_warps(block_n),
            )
        return dx.reshape(ctx.shape), dw_partial.sum(0).to(weight.dtype), None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return RMSNormFunction.apply(x, weight, eps)


def reference(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Plain torch, exactly the model's fallback formula: the tests' oracle."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
