"""Attention: the sublayer (projections, Primer's convolutions, position coding) and its backends.

    x (B, T, d_model) -> q, k, v projections -> [Primer depthwise conv] -> [QK-norm] -> rotate
      -> backend.attend(q, k, v, window) -> output projection

One backend is chosen per model when it is built (`choose_backend`) and recorded on the trial row
(`attention_backend`). Every backend computes the same function, softmax(scale q k^T + bias + mask) v
with the causal mask and, in a windowed layer, the band i - W < j <= i; they differ in how:

- `sdpa`: `F.scaled_dot_product_attention`. With no score bias and no window it passes
  `is_causal=True` and no mask, so the fused flash / memory-efficient kernels run; otherwise
  (forced) it passes a dense (H, T, T) float mask, as archscale always did for ALiBi and T5 bias.
- `flex`: FlexAttention (`torch.nn.attention.flex_attention`): ALiBi and T5 bias enter as a
  `score_mod` reading an (H, T) bias by distance, the causal mask and windows as a `BlockMask`,
  so nothing T x T is materialised. On CUDA it is compiled (the fused kernel); elsewhere it runs
  eagerly, forward only (torch has no FlexAttention backward on CPU), which is what the tests use.
- `materialised`: the plain-torch reference: explicit scores, bias, mask, softmax. A windowed
  layer computes only its band of min(W, T) keys per query (an unfolded view of K and V), so its
  work is the O(T W) the FLOP count charges, and FlopCounterMode sees exactly that.

The automatic choice: `sdpa` when the position coding adds no score bias and there is no window
(none, sinusoidal, learned, rope); otherwise `flex` on CUDA and `materialised` elsewhere. Force one
with `build_model(arch, attention_backend=...)` or `ARCHSCALE_ATTENTION=<name>` in the environment.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archscale.spaces import ArchConfig, transfer, variants

BACKENDS = ("sdpa", "flex", "materialised")
ENV_VAR = "ARCHSCALE_ATTENTION"  # force a backend for every model built in this process


def choose_backend(arch: ArchConfig, device: torch.device | str | None = None, forced: str | None = None) -> str:
    """The attention backend for `arch` on `device`: `forced`, else `$ARCHSCALE_ATTENTION`, else the automatic rule."""
    name = forced or os.environ.get(ENV_VAR) or None
    if name is not None:
        if name not in BACKENDS:
            source = "attention_backend" if forced else ENV_VAR
            raise ValueError(f"{source}: got {name!r}; allowed: {', '.join(BACKENDS)}")
        return name
    if not variants.POSITIONS[arch.position].score_bias and arch.attention_window is None:
        return "sdpa"
    device_type = torch.device(device).type if device is not None else "cpu"
    return "flex" if device_type == "cuda" else "materialised"


# --------------------------------------------------------------------------------------------
# Backends. The contract, written once:
#   - `prepare(pos, T, device)` is called once per forward pass by the decoder and returns what every
#     layer shares (biases, masks); it may cache across calls by (T, device), never by token values.
#   - `attend(q, k, v, window, shared)` takes q (B, H, T, hd), k and v (B, KV, T, hd) with H a multiple
#     of KV (grouped-query attention: query head h reads KV head h // (H / KV)), `window` None for a
#     global layer, and returns (B, H, T, hd). `scale` multiplies q k^T.


class Backend:
    name = ""

    def __init__(self, scale: float):
        self.scale = scale

    def prepare(self, pos: Any, T: int, device: torch.device) -> Any:
        raise NotImplementedError

    def attend(self, q: Tensor, k: Tensor, v: Tensor, window: int | None, shared: Any) -> Tensor:
        raise NotImplementedError


def _allowed(T: int, window: int | None, device: torch.device) -> Tensor:
    """(T, T) bool: key j is visible to query i (causal, and within the window in a windowed layer)."""
    i = torch.arange(T, device=device)[:, None]
    j = torch.arange(T, device=device)[None, :]
    keep = j <= i
    return keep & (i - j < window) if window is not None else keep


class Materialised(Backend):
    """The reference: every score computed and masked in plain torch."""

    name = "materialised"

    def prepare(self, pos: Any, T: int, device: torch.device) -> Tensor | None:
        return pos.attn_bias(T, device)  # (H, T, T) or None

    def attend(self, q: Tensor, k: Tensor, v: Tensor, window: int | None, bias: Tensor | None) -> Tensor:
        B, H, T, hd = q.shape
        group = H // k.shape[1]
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # (B, H, T, hd)
        if window is None or window >= T:
            scores = torch.einsum("bhid,bhjd->bhij", q, k) * self.scale  # (B, H, T, T)
            if bias is not None:
                scores = scores + bias.to(scores.dtype)
            scores = scores.masked_fill(~_allowed(T, None, q.device), float("-inf"))
            return torch.einsum("bhij,bhjd->bhid", scores.softmax(-1), v)
        # windowed: key w of query i's band is position j = i - (W - 1) + w, w = 0 .. W - 1
        k_band = F.pad(k, (0, 0, window - 1, 0)).unfold(2, window, 1)  # (B, H, T, hd, W)
        v_band = F.pad(v, (0, 0, window - 1, 0)).unfold(2, window, 1)
        scores = torch.einsum("bhid,bhidw->bhiw", q, k_band) * self.scale  # (B, H, T, W)
        j = torch.arange(T, device=q.device)[:, None] - (window - 1) + torch.arange(window, device=q.device)
        if bias is not None:  # the same (H, T, T) bias, gathered at each band position
            band_bias = bias.gather(-1, j.clamp(min=0).expand(bias.shape[0], T, window))
            scores = scores + band_bias.to(scores.dtype)
        scores = scores.masked_fill(j < 0, float("-inf"))  # left of position 0: padding
        return torch.einsum("bhiw,bhidw->bhid", scores.softmax(-1), v_band)


class SDPA(Backend):
    """torch's fused attention; fused kernels only without a bias or window (is_causal, no mask)."""

    name = "sdpa"

    def prepare(self, pos: Any, T: int, device: torch.device) -> dict:
        return {"bias": pos.attn_bias(T, device), "T": T, "device": device, "masks": {}}

    def attend(self, q: Tensor, k: Tensor, v: Tensor, window: int | None, shared: dict) -> Tensor:
        gqa = k.shape[1] != q.shape[1]
        bias = shared["bias"]
        if bias is None and window is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale, enable_gqa=gqa)
        if window not in shared["masks"]:  # one dense mask per window size per forward pass
            allowed = _allowed(shared["T"], window, shared["device"])
            if bias is None:
                shared["masks"][window] = allowed  # bool: True = attend
            else:
                shared["masks"][window] = bias.masked_fill(~allowed, float("-inf"))  # (H, T, T)
        mask = shared["masks"][window]
        mask = mask if mask.dtype == torch.bool else mask.to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale, enable_gqa=gqa)


class Flex(Backend):
    """FlexAttention: score_mod for the position bias, a block mask for causality and windows."""

    name = "flex"

    def __init__(self, scale: float):
        super().__init__(scale)
        from torch.nn.attention import flex_attention as fa  # torch >= 2.5

        self._fa = fa
        self._compiled: Callable | None = None
        self._block_masks: dict[tuple, Any] = {}

    def prepare(self, pos: Any, T: int, device: torch.device) -> dict:
        by_distance = pos.distance_bias(T, device)  # (H, T): the bias depends only on how far back the key is
        dense = pos.attn_bias(T, device) if by_distance is None else None  # any other bias: (H, T, T)
        if by_distance is not None:

            def score_mod(score, b, h, q_idx, kv_idx):
                return score + by_distance[h, (q_idx - kv_idx).clamp(min=0)].to(score.dtype)

        elif dense is not None:

            def score_mod(score, b, h, q_idx, kv_idx):
                return score + dense[h, q_idx, kv_idx].to(score.dtype)

        else:
            score_mod = None
        return {"score_mod": score_mod, "T": T, "device": device}

    def block_mask(self, T: int, window: int | None, device: torch.device) -> Any:
        key = (T, window, str(device))
        if key not in self._block_masks:
            if window is None:

                def mask_mod(b, h, q_idx, kv_idx):
                    return q_idx >= kv_idx

            else:

                def mask_mod(b, h, q_idx, kv_idx):
                    return (q_idx >= kv_idx) & (q_idx - kv_idx < window)

            self._block_masks[key] = self._fa.create_block_mask(mask_mod, None, None, T, T, device=device)
        return self._block_masks[key]

    def attend(self, q: Tensor, k: Tensor, v: Tensor, window: int | None, shared: dict) -> Tensor:
        block_mask = self.block_mask(shared["T"], window, q.device)
        kwargs = dict(score_mod=shared["score_mod"], block_mask=block_mask, scale=self.scale)
        kwargs["enable_gqa"] = k.shape[1] != q.shape[1]
        if q.device.type == "cuda":  # the fused kernel: FlexAttention is only fast compiled
            if self._compiled is None:
                self._compiled = torch.compile(self._fa.flex_attention, dynamic=False)
            return self._compiled(q, k, v, **kwargs)
        if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
            raise ValueError(
                f"attention_backend: flex has no backward on {q.device.type} in torch {torch.__version__} "
                "(FlexAttention trains on CUDA only); use materialised or sdpa here"
            )
        with warnings.catch_warnings():  # eager (unfused) FlexAttention is what we want off CUDA: a reference run
            warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
            return self._fa.flex_attention(q, k, v, **kwargs)


BACKEND_CLASSES: dict[str, type[Backend]] = {"sdpa": SDPA, "flex": Flex, "materialised": Materialised}


def make_backend(name: str, arch: ArchConfig) -> Backend:
    return BACKEND_CLASSES[name](transfer.attention_scale(arch))


# --------------------------------------------------------------------------------------------
# The sublayer


class CausalDepthwiseConv(nn.Module):
    """Primer's depthwise convolution over time (So et al. 2021, "Multi-DConv-Head Attention"): one
    kernel of `kernel` taps per channel, left-padded so output t reads inputs t - kernel + 1 .. t."""

    def __init__(self, channels: int, kernel: int, bias: bool):
        super().__init__()
        self.kernel = kernel
        self.weight = nn.Parameter(torch.empty(channels, 1, kernel))  # initialised in parametrization.init_weights
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C) -> (B, T, C)
        x = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))  # (B, C, kernel - 1 + T): causal, left padding only
        return F.conv1d(x, self.weight, self.bias, groups=self.weight.shape[0]).transpose(1, 2)


class Attention(nn.Module):
    def __init__(
        self, arch: ArchConfig, layer: int, backend: Backend, make_head_norm: Callable[[int], nn.Module] | None = None
    ):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = arch.n_heads, arch.n_kv_heads, arch.head_dim
        self.scale = transfer.attention_scale(arch)  # attn_mult/sqrt(head_dim); sqrt(base)/head_dim under mup
        self.window = arch.attention_window if arch.windowed(layer) else None  # None: full causal attention
        self.backend = backend  # shared by every layer of the model
        q_width, kv_width = arch.n_heads * arch.head_dim, arch.n_kv_heads * arch.head_dim
        self.q = nn.Linear(arch.d_model, q_width, bias=arch.bias)
        self.k = nn.Linear(arch.d_model, kv_width, bias=arch.bias)
        self.v = nn.Linear(arch.d_model, kv_width, bias=arch.bias)
        self.o = nn.Linear(q_width, arch.d_model, bias=arch.bias)
        if arch.qkv_conv:
            self.q_conv = CausalDepthwiseConv(q_width, arch.qkv_conv, arch.bias)
            self.k_conv = CausalDepthwiseConv(kv_width, arch.qkv_conv, arch.bias)
            self.v_conv = CausalDepthwiseConv(kv_width, arch.qkv_conv, arch.bias)
        else:
            self.q_conv = self.k_conv = self.v_conv = nn.Identity()
        qk_norm = arch.qk_norm and make_head_norm is not None
        self.q_norm = make_head_norm(arch.head_dim) if qk_norm else nn.Identity()
        self.k_norm = make_head_norm(arch.head_dim) if qk_norm else nn.Identity()

    def forward(self, x: Tensor, pos: Any, shared: Any) -> Tensor:
        B, T, _ = x.shape
        q = self.q_norm(self.q_conv(self.q(x)).view(B, T, self.n_heads, self.head_dim))  # (B, T, H, hd)
        k = self.k_norm(self.k_conv(self.k(x)).view(B, T, self.n_kv_heads, self.head_dim))  # (B, T, KV, hd)
        v = self.v_conv(self.v(x)).view(B, T, self.n_kv_heads, self.head_dim)
        q, k = pos.rotate(q, k)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, T, hd)
        y = self.backend.attend(q, k, v, self.window, shared)  # (B, H, T, hd)
        return self.o(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))
