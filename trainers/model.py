"""The decoder, built from an `ArchConfig`, read top to bottom in the order data flows.

    tokens (B, T) -> token embedding (+ absolute position) -> n_layers x Block -> [final norm] -> LM head

Variants are data: the facts about each named variant (gated or not, what it adds to the counts)
live in `archscale.spaces.variants`, the parametrisation's multipliers in `archscale.spaces.transfer`;
here `NORMS`, `ACTIVATIONS`, `POSITIONS` and `FFN_TYPES` (dense, or the mixture of experts in
`trainers/moe.py`) are the torch implementations keyed by the same names (a test asserts the keys agree).
Adding a variant is one entry in that table plus one implementation and registry entry here; the
contract tests iterate the table. Model code is single-device: devices, dtypes and compilation are
applied by the trainer, outside.
Attention (`archscale.trainers.attention`) runs through one backend chosen when the model is built
(`build_model(arch, attention_backend=...)`): fused SDPA for codings without a score bias and no
window, FlexAttention on CUDA for ALiBi, T5 bias and windows, the materialised reference otherwise.
Fused Triton kernels (`archscale.trainers.kernels`) are chosen when the model is built
(`build_model(arch, fused_kernels=...)`): RMSNorm and the gated activations that have a kernel get
a `fused` flag, and then use it for CUDA tensors (plain torch on CPU, always).
Parametrisations (standard, mup, completep) enter as five forward multipliers read from
`variants` and `transfer` (embedding scale, input multiplier, attention scale, residual-branch
scale, readout multiplier), all 1 or the usual 1/sqrt(head_dim) under standard at the default
`input_mult`, `attn_mult` and `output_mult`, and as the initialisation in
`archscale.trainers.parametrization`, which also builds the optimizer's per-role groups.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from archscale.spaces import ArchConfig, transfer, variants
from archscale.trainers import kernels, parametrization
from archscale.trainers.attention import Attention, choose_backend, make_backend
from archscale.trainers.moe import MoE

# --------------------------------------------------------------------------------------------
# Norms: name -> constructor(width, arch, fused). "none" is the identity.


class RMSNorm(nn.Module):
    def __init__(self, width: int, eps: float = 1e-6, fused: bool = False):
        super().__init__()
        self.eps = eps
        self.fused = fused  # use the fused kernel for CUDA tensors (decided when the model is built)
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        if self.fused and kernels.runs_on(x):
            return kernels.fused_rms_norm(x, self.weight, self.eps)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


NORMS: dict[str, Callable[[int, ArchConfig, bool], nn.Module]] = {
    "layernorm": lambda width, arch, fused: nn.LayerNorm(width, bias=arch.bias),
    "rmsnorm": lambda width, arch, fused: RMSNorm(width, fused=fused),
    "none": lambda width, arch, fused: nn.Identity(),
}

# --------------------------------------------------------------------------------------------
# FFN activations: name -> function. Whether it is gated is in the table (`variants.ACTIVATIONS`);
# a gated function takes (gate, up), both (..., d_ff).

ACTIVATIONS: dict[str, Callable[..., Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda h: F.gelu(h, approximate="tanh"),
    "silu": F.silu,
    "relu2": lambda h: F.relu(h).square(),
    "glu": lambda g, u: torch.sigmoid(g) * u,
    "bilinear": lambda g, u: g * u,
    "reglu": lambda g, u: F.relu(g) * u,
    "geglu": lambda g, u: F.gelu(g) * u,
    "swiglu": lambda g, u: F.silu(g) * u,
}


class Activation(nn.Module):
    """The FFN nonlinearity as a module, so a forward hook can read the hidden activations."""

    def __init__(self, name: str, fused: bool = False):
        super().__init__()
        self.name = name
        self.fn = ACTIVATIONS[name]
        self.gated = variants.ACTIVATIONS[name].gated
        # use the fused kernel for CUDA tensors, when there is one for this activation
        self.fused = fused and name in kernels.FUSED_GATED_ACTIVATIONS

    def forward(self, h: Tensor, up: Tensor | None = None) -> Tensor:
        if not self.gated:
            return self.fn(h)
        if self.fused and kernels.runs_on(h):
            return kernels.fused_gated_activation(self.name, h, up)
        return self.fn(h, up)


# --------------------------------------------------------------------------------------------
# Position codings. Their facts (learned table size, absolute or not, embedding scale, sub-fields,
# longest sequence, validity rule) are in `variants.POSITIONS`; here is the contract, written once:
#   - `embed(T, device)` returns a (T, d_model) tensor added to the token embeddings; the decoder
#     calls it only for codings the table marks `absolute` (and then it must not return None).
#   - `rotate(q, k)` takes q (B, T, H, hd) and k (B, T, KV, hd) and returns them position-coded.
#   - `attn_bias(T, device)` returns an additive (H, T, T) score bias (causal part excluded), or None.
#   - `distance_bias(T, device)` returns the same bias as an (H, T) table by distance i - j = 0..T-1
#     when it depends only on that distance (ALiBi, T5), or None. Implementing it is enough: the
#     base `attn_bias` expands it; FlexAttention then reads the table instead of a T x T tensor.
# All three see only positions 0..T-1 of one causal sequence; none may look at token values, so a
# coding can never leak a future token into a past output. Buffers are caches, never parameters
# unless the coding is learned; its parameters are then exactly the table's `table_params(arch)`.


class PositionCoding(nn.Module):
    def __init__(self, arch: ArchConfig):
        super().__init__()
        self.max_len = variants.POSITIONS[arch.position].max_len(arch)  # longest T it supports; None = any

    def embed(self, T: int, device: torch.device) -> Tensor | None:
        return None

    def rotate(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        return q, k

    def attn_bias(self, T: int, device: torch.device) -> Tensor | None:
        by_distance = self.distance_bias(T, device)
        if by_distance is None:
            return None
        pos = torch.arange(T, device=device)
        distance = (pos[:, None] - pos[None, :]).clamp(min=0)  # (T, T), 0 above the diagonal
        return by_distance[:, distance]  # (H, T, T)

    def distance_bias(self, T: int, device: torch.device) -> Tensor | None:
        return None


class NoPosition(PositionCoding):
    """NoPE: causal attention alone carries order (Haviv et al. 2022; Kazemnejad et al. 2023)."""


class Sinusoidal(PositionCoding):
    """Vaswani et al. 2017. The original also scaled token embeddings by sqrt(d_model): that is
    `embedding_scale: sqrt_d_model`, a separate choice available with every coding."""

    def __init__(self, arch: ArchConfig):
        super().__init__(arch)
        self.d_model = arch.d_model

    def embed(self, T: int, device: torch.device) -> Tensor:
        pos = torch.arange(T, device=device, dtype=torch.float32)[:, None]
        i = torch.arange(0, self.d_model, 2, device=device, dtype=torch.float32)
        angle = pos / torch.pow(10000.0, i / self.d_model)  # (T, ceil(d/2))
        table = torch.zeros(T, self.d_model, device=device)
        table[:, 0::2] = torch.sin(angle)
        table[:, 1::2] = torch.cos(angle[:, : self.d_model // 2])
        return table


class Learned(PositionCoding):
    """A learned absolute table of `seq_len` rows (GPT-2); cannot run past seq_len."""

    def __init__(self, arch: ArchConfig):
        super().__init__(arch)
        self.table = nn.Embedding(arch.seq_len, arch.d_model)

    def embed(self, T: int, device: torch.device) -> Tensor:
        if T > self.max_len:
            raise ValueError(f"learned positions cover seq_len={self.max_len} tokens; got a sequence of {T}")
        return self.table.weight[:T]


class Rotary(PositionCoding):
    """RoPE (Su et al. 2021), rotating half-dimension pairs (GPT-NeoX layout)."""

    def __init__(self, arch: ArchConfig):
        super().__init__(arch)
        inv_freq = 1.0 / (arch.rope_theta ** (torch.arange(0, arch.head_dim, 2, dtype=torch.float32) / arch.head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def rotate(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        T = q.shape[1]
        t = torch.arange(T, device=q.device, dtype=torch.float32)
        freqs = torch.outer(t, self.inv_freq)  # (T, hd/2)
        cos = freqs.cos()[None, :, None, :].to(q.dtype)  # (1, T, 1, hd/2)
        sin = freqs.sin()[None, :, None, :].to(q.dtype)
        return _rotate_half(q, cos, sin), _rotate_half(k, cos, sin)


def _rotate_half(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class ALiBi(PositionCoding):
    """Press et al. 2022: a fixed per-head linear penalty on distance; no parameters."""

    def __init__(self, arch: ArchConfig):
        super().__init__(arch)
        self.register_buffer("slopes", alibi_slopes(arch.n_heads), persistent=False)

    def distance_bias(self, T: int, device: torch.device) -> Tensor:
        distance = torch.arange(T, device=device, dtype=torch.float32)
        return -self.slopes.to(device)[:, None] * distance  # (H, T)


def alibi_slopes(n_heads: int) -> Tensor:
    """Geometric slopes 2^(-8 i / n) for a power of two, interleaved otherwise (the paper's recipe)."""

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_heads).is_integer():
        slopes = power_of_two(n_heads)
    else:
        closest = 2 ** math.floor(math.log2(n_heads))
        slopes = power_of_two(closest) + power_of_two(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)


class T5Bias(PositionCoding):
    """Raffel et al. 2020: a learned scalar per (head, log-spaced distance bucket), shared by all
    layers; unidirectional buckets since the decoder only looks back."""

    def __init__(self, arch: ArchConfig):
        super().__init__(arch)
        self.num_buckets = arch.t5_num_buckets
        self.max_distance = arch.t5_max_distance
        self.table = nn.Embedding(arch.t5_num_buckets, arch.n_heads)

    def distance_bias(self, T: int, device: torch.device) -> Tensor:
        distance = torch.arange(T, device=device)  # how far back the key is
        buckets = t5_bucket(distance, self.num_buckets, self.max_distance)
        return self.table(buckets).T  # (H, T)


def t5_bucket(distance: Tensor, num_buckets: int, max_distance: int) -> Tensor:
    exact = num_buckets // 2
    is_small = distance < exact
    log_ratio = torch.log(distance.float().clamp(min=1) / exact) / math.log(max(max_distance, exact + 1) / exact)
    large = exact + (log_ratio * (num_buckets - exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return torch.where(is_small, distance, large)


POSITIONS: dict[str, type[PositionCoding]] = {
    "none": NoPosition,
    "sinusoidal": Sinusoidal,
    "learned": Learned,
    "rope": Rotary,
    "alibi": ALiBi,
    "t5_bias": T5Bias,
}

# --------------------------------------------------------------------------------------------
# Sublayers


class FFN(nn.Module):
    """Expand, activate, contract: d_model -> d_ff (twice for gated variants) -> d_model.
    `d_ff` overrides the width (a MoE expert's is expert_d_ff)."""

    def __init__(self, arch: ArchConfig, fused: bool = False, d_ff: int | None = None):
        super().__init__()
        d_ff = d_ff or arch.d_ff
        self.gated = variants.ACTIVATIONS[arch.ffn_activation].gated
        self.up = nn.Linear(arch.d_model, d_ff, bias=arch.bias)
        self.gate = nn.Linear(arch.d_model, d_ff, bias=arch.bias) if self.gated else None
        self.act = Activation(arch.ffn_activation, fused)
        self.down = nn.Linear(d_ff, arch.d_model, bias=arch.bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.gated:
            return self.down(self.act(self.gate(x), self.up(x)))
        return self.down(self.act(self.up(x)))


# FFN kinds: name -> constructor(arch, fused); their facts are in `variants.FFN_TYPES`. A MoE's
# experts are this module's FFN, so every activation works in both.
FFN_TYPES: dict[str, Callable[[ArchConfig, bool], nn.Module]] = {
    "dense": lambda arch, fused: FFN(arch, fused),
    "moe": lambda arch, fused: MoE(arch, lambda width: FFN(arch, fused, width)),  # trainers/moe.py
}


class Block(nn.Module):
    """One attention sublayer and `ffn_per_block` FFN sublayers, with the configured norm placement.

    sequential pre:      x += r attn(n(x));          x += r ffn(n(x))
    sequential post:     x = n(x + r attn(x));       x = n(x + r ffn(x))
    sequential sandwich: x += r n'(attn(n(x)));      x += r n'(ffn(n(x)))
    parallel pre:        h = n(x); x += r (attn(h) + ffn(h))
    parallel post:       x = n(x + r (attn(x) + ffn(x)))
    parallel sandwich:   h = n(x); x += r (n'(attn(h)) + n''(ffn(h)))

    r = base_n_layers / n_layers under completep (each residual branch x m_L^-1), else 1.
    """

    def __init__(self, arch: ArchConfig, layer: int, backend, fused: bool = False):
        super().__init__()
        self.parallel = arch.block == "parallel"
        self.position = arch.norm_position
        self.r = transfer.residual_scale(arch)

        def make_norm() -> nn.Module:
            return NORMS[arch.norm](arch.d_model, arch, fused)

        self.attn = Attention(arch, layer, backend, lambda width: NORMS[arch.norm](width, arch, fused))
        self.ffns = nn.ModuleList(FFN_TYPES[arch.ffn_type](arch, fused) for _ in range(arch.ffn_per_block))
        n_in = 1 if self.parallel else 1 + arch.ffn_per_block
        self.norms = nn.ModuleList(make_norm() for _ in range(n_in))
        n_out = 1 + arch.ffn_per_block if self.position == "sandwich" else 0
        self.out_norms = nn.ModuleList(make_norm() for _ in range(n_out))

    def forward(self, x: Tensor, pos: PositionCoding, shared) -> Tensor:
        if self.parallel:
            return self._parallel(x, pos, shared)
        sublayers = [lambda h: self.attn(h, pos, shared)] + list(self.ffns)
        for i, sublayer in enumerate(sublayers):
            if self.position == "pre":
                x = x + self.r * sublayer(self.norms[i](x))
            elif self.position == "post":
                x = self.norms[i](x + self.r * sublayer(x))
            else:
                x = x + self.r * self.out_norms[i](sublayer(self.norms[i](x)))
        return x

    def _parallel(self, x: Tensor, pos: PositionCoding, shared) -> Tensor:
        ffn = self.ffns[0]
        if self.position == "post":
            return self.norms[0](x + self.r * (self.attn(x, pos, shared) + ffn(x)))
        h = self.norms[0](x)
        if self.position == "pre":
            return x + self.r * (self.attn(h, pos, shared) + ffn(h))
        return x + self.r * (self.out_norms[0](self.attn(h, pos, shared)) + self.out_norms[1](ffn(h)))


# --------------------------------------------------------------------------------------------
# The decoder


class Decoder(nn.Module):
    def __init__(self, arch: ArchConfig, fused_kernels: bool = False, attention_backend: str = "materialised"):
        super().__init__()
        self.arch = arch
        self.attention_backend = attention_backend  # sdpa | flex | materialised (see trainers/attention.py)
        self.backend = make_backend(attention_backend, arch)
        position = variants.POSITIONS[arch.position]
        self.tok_emb = nn.Embedding(arch.vocab_size, arch.d_model)
        self.emb_scale = variants.embedding_scale(arch)  # 1, or sqrt(d_model) (sqrt(base_d_model) under mup)
        self.input_mult = transfer.input_multiplier(arch)  # input_mult (1 by default)
        self.output_mult = transfer.output_multiplier(arch)  # output_mult; output_mult / m_d_model under mup
        self.pos = POSITIONS[arch.position](arch)
        self.absolute_position = position.absolute
        self.blocks = nn.ModuleList(Block(arch, i, self.backend, fused_kernels) for i in range(arch.n_layers))
        self.final_norm = NORMS[arch.norm](arch.d_model, arch, fused_kernels) if arch.has_final_norm else nn.Identity()
        self.head = None if arch.tie_embeddings else nn.Linear(arch.d_model, arch.vocab_size, bias=False)
        parametrization.warn_if_uncovered(arch)
        # normal: every matrix N(0, 0.02) (x the parametrisation's per-role multiplier); depth_scaled:
        # attention `o` and FFN `down` also / sqrt(number of residual additions), as in GPT-2
        parametrization.init_weights(self)

    def forward(self, idx: Tensor) -> Tensor:
        B, T = idx.shape
        x = self.tok_emb(idx) * self.emb_scale  # (B, T, d_model)
        if self.absolute_position:
            x = x + self.pos.embed(T, idx.device)  # (T, d_model), broadcast over the batch
        x = x * self.input_mult  # the embedding output's multiplier, after positions as nanoGPT-mup does
        shared = self.backend.prepare(self.pos, T, idx.device)  # position bias and masks, shared by every layer
        for block in self.blocks:
            x = block(x, self.pos, shared)
        x = self.final_norm(x) * self.output_mult  # the readout's multiplier, on x as nanoGPT-mup does
        if self.head is None:
            return x @ self.tok_emb.weight.T  # (B, T, vocab)
        return self.head(x)


def build_model(
    arch: ArchConfig,
    fused_kernels: bool = True,
    attention_backend: str | None = None,
    device: torch.device | str | None = None,
) -> Decoder:
    """The decoder for `arch`, on CPU in float32; the trainer moves and casts it.

    `fused_kernels`: RMSNorm and the gated activations with a Triton kernel use it for CUDA tensors
    (plain torch elsewhere). Decided here, per module, once; `ARCHSCALE_KERNELS=0` in the
    environment when the model is built turns them off too (`kernels.allowed`).
    `attention_backend`: sdpa, flex or materialised; None = `$ARCHSCALE_ATTENTION`, else chosen for
    `arch` on `device` (the device the model will run on; None = CPU), see `attention.choose_backend`.
    The choice is `model.attention_backend`.
    """
    backend = choose_backend(arch, device, attention_backend)
    return Decoder(arch, fused_kernels=kernels.allowed(fused_kernels), attention_backend=backend)
