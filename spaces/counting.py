"""Exact, analytic parameter / FLOP / KV-cache counts for an `ArchConfig` (no torch needed).

Conventions (tested against torch for every variant the spaces can produce):
- `params`: every trainable parameter (Chinchilla's convention); under ffn_type=moe every expert
  and the router.
- `active_params`: the parameters one token uses: `params` with, in each MoE sublayer, only its
  top-k routed experts (plus the shared experts and the router) instead of all n_experts. Equal to
  `params` for a dense FFN.
- `non_embedding_params`: `params` minus the token embedding, any learned position table
  (`variants.Position.table_params`: the learned absolute table, the T5 relative-bias table) and an
  untied output head (Kaplan's convention, extended to untied heads).
- `flops_per_token`: training FLOPs per token at `seq_len`, = 3 x forward matmul FLOPs
  (2 per multiply-accumulate; backward = 2 x forward): Q/K/V/output projections, Primer's depthwise
  convolutions (`qkv_conv` multiply-accumulates per channel of Q, K and V), attention scores and
  weighted values over the keys each query is charged (`FLOPS_CONVENTIONS`, below), FFN, LM head.
  Norms, softmax, biases, embedding lookups and elementwise work are not counted. A MoE sublayer
  counts its router (d_model x n_experts) and the experts a token runs through (top-k routed +
  shared), never the others; tokens a capacity factor drops are still counted (the count
  is what the model is sized for, not what one batch happened to route).
- `kv_cache_bytes_per_token`: what one more generated token adds to the KV cache once the context
  is longer than the window: 2 (K and V) x global layers x n_kv_heads x head_dim x 2 bytes (bf16).
  Without a window every layer is global; a windowed layer's cache holds at most attention_window
  tokens, a constant that stops growing with the context.

Attention's keys per query, by FLOP convention (`flops_convention`, a trial-row column):
- `causal` (the default): the keys a query can see, nothing masked. Query i (0-based) of a global
  layer sees i + 1 keys, (T + 1) / 2 per query on average; in a windowed layer min(i + 1, W). Full
  and windowed layers are charged alike: what they compute once the mask is applied.
- `dense`: the rectangle a plain implementation multiplies, masked entries included: T keys per
  query in a global layer (the full T x T) and min(W, T) in a windowed one (the band, padding
  included). archscale counted this way before the convention existed, so results without a
  `flops_convention` column read as `dense`. It charges full attention for its masked half but a
  window only for its band, so at "equal FLOPs" windows look cheaper than they are.
FlopCounterMode measures `dense` (it sees the matmuls, not the mask); the contract tests check
`causal` as that measurement minus the masked entries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, get_args

from archscale.spaces import variants
from archscale.spaces.arch import ArchConfig

KV_CACHE_BYTES_PER_VALUE = 2  # bf16

FlopsConvention = Literal["causal", "dense"]
FLOPS_CONVENTIONS: tuple[str, ...] = get_args(FlopsConvention)
DEFAULT_FLOPS_CONVENTION: FlopsConvention = "causal"
#: the convention of results written before the `flops_convention` column existed
LEGACY_FLOPS_CONVENTION: FlopsConvention = "dense"


@dataclass(frozen=True)
class Counts:
    params: int
    non_embedding_params: int
    flops_per_token: float
    kv_cache_bytes_per_token: int
    active_params: int  # what one token uses: = params unless ffn_type=moe

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)

    def __getitem__(self, key: str) -> int | float:
        return getattr(self, key)


def norms_per_block(arch: ArchConfig) -> int:
    """How many d_model-wide norms one block holds (attention + its FFN sublayers)."""
    out_norm = variants.NORM_POSITIONS[arch.norm_position].out_norm
    return variants.BLOCKS[arch.block].norms(arch.ffn_per_block, out_norm)


def charged_keys(arch: ArchConfig, layer: int, T: int, flops_convention: FlopsConvention) -> float:
    """Keys per query (mean over the T queries) that layer `layer`'s scores and values are charged.

    `dense`: the band `variants.attended_keys` gives, K = T (global) or min(W, T) (windowed).
    `causal`: query i sees min(i + 1, K) of them, so the T queries see K T - K (K - 1) / 2 in all.
    """
    keys = variants.attended_keys(arch, layer, T)
    if flops_convention == "dense":
        return float(keys)
    if flops_convention == "causal":
        return keys - keys * (keys - 1) / (2 * T)
    raise ValueError(f"flops_convention: got {flops_convention!r}; allowed: {', '.join(FLOPS_CONVENTIONS)}")


def count(arch: ArchConfig, flops_convention: FlopsConvention = DEFAULT_FLOPS_CONVENTION) -> Counts:
    """Count parameters, training FLOPs per token, and KV-cache bytes per token, analytically.

    `flops_convention` says how attention's masked entries are charged (module docstring); only
    `flops_per_token` depends on it. Every per-variant number comes from the tables in
    `variants.py`; `arch` may also be a plain namespace with ArchConfig's fields (the solver's hot
    loop), so only fields are read here.
    """
    d, L, T = arch.d_model, arch.n_layers, arch.seq_len
    q_width = arch.n_heads * arch.head_dim
    kv_width = arch.n_kv_heads * arch.head_dim
    b = 1 if arch.bias else 0
    norm = variants.NORMS[arch.norm]
    norm_params = norm.params(d, arch.bias)  # one d_model-wide norm (0 for none)

    # attention: Q, K, V, O projections (+ biases) and optional QK-norm over head_dim
    attn = d * (q_width + 2 * kv_width) + q_width * d + b * (q_width + 2 * kv_width + d)
    if arch.qk_norm:
        attn += 2 * norm.params(arch.head_dim, arch.bias)
    # Primer: a depthwise conv of kernel qkv_conv per channel of Q, K and V (+ a bias per channel)
    conv_channels = (q_width + 2 * kv_width) if arch.qkv_conv else 0
    attn += conv_channels * (arch.qkv_conv + b)
    # FFN: up (and gate) d -> d_ff, down d_ff -> d; under moe, `shape.experts` such FFNs of width
    # expert_d_ff (routed + shared) and a bias-free router d -> n_experts, of which a token uses `shape.active`
    n_in = 2 if variants.ACTIVATIONS[arch.ffn_activation].gated else 1
    shape = variants.ffn_shape(arch)
    one_ffn = n_in * d * shape.d_ff + shape.d_ff * d + b * (n_in * shape.d_ff + d)
    router = d * shape.router_out
    ffn = shape.experts * one_ffn + router
    inactive = arch.ffn_per_block * (shape.experts - shape.active) * one_ffn  # per block: experts a token skips
    block = attn + arch.ffn_per_block * ffn + norms_per_block(arch) * norm_params
    final_norm = norm_params if variants.NORM_POSITIONS[arch.norm_position].final_norm else 0
    body = L * block + final_norm

    embedding = arch.vocab_size * d
    position_table = variants.POSITIONS[arch.position].table_params(arch)
    head = 0 if arch.tie_embeddings else d * arch.vocab_size
    params = body + embedding + position_table + head

    # forward matmul FLOPs per token (2 per multiply-accumulate)
    proj = 2 * (d * (q_width + 2 * kv_width) + q_width * d)
    conv = 2 * conv_channels * arch.qkv_conv
    # QK^T and AV over each layer's charged keys per query (`charged_keys`)
    keys = sum(charged_keys(arch, i, T, flops_convention) for i in range(L))
    scores_and_values = 2 * 2 * arch.n_heads * arch.head_dim * keys
    ffn_flops = 2 * arch.ffn_per_block * (shape.active * (n_in + 1) * d * shape.d_ff + router)
    lm_head = 2 * d * arch.vocab_size
    forward = L * (proj + conv + ffn_flops) + scores_and_values + lm_head

    return Counts(
        params=int(params),
        non_embedding_params=int(body),
        flops_per_token=float(3 * forward),
        kv_cache_bytes_per_token=int(2 * variants.global_layers(arch) * kv_width * KV_CACHE_BYTES_PER_VALUE),
        active_params=int(params - L * inactive),
    )
