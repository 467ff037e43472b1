"""Variant facts: one torch-free table per architectural axis, keyed by the names a space file uses.

Everything that validation, error messages, counting or the decoder need to know about a named
variant is written here, once:
- `ArchConfig`'s `Literal` types and name tuples (`FFN_ACTIVATIONS`, `NORMS`, ...) are these keys;
- `ArchConfig` validation reads the per-variant rules (`Position.check`, `Block.max_ffn_per_block`,
  `Norm.normalises`, the fields a variant owns: `FIELD_OWNERS`) and lists allowed values from the keys;
- a parametrisation's scaling rules (`archscale.spaces.transfer`) read `PARAMETRIZATIONS`;
- `count` reads the numbers (gated input matrices, norm parameters, norms per block, position tables)
  and has no per-variant branch;
- the decoder (`archscale.trainers.model`) keeps one registry of torch implementations per table,
  keyed by the same names (a test asserts the keys agree), and takes its embedding scale from here.

Adding a variant is one entry here plus one implementation in `trainers/model.py`; the contract
suite (`tests/model/test_contract.py`) iterates these tables, so it is tested with no test change.
`docs/design.md` ("Adding a variant") walks through a new position coding line by line.

The callables below receive an `ArchConfig`, or, in the solver's hot loop, a plain namespace with
the same attributes: they may read fields, not `ArchConfig` properties.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# --------------------------------------------------------------------------------------------
# FFN activations


@dataclass(frozen=True)
class Activation:
    gated: bool  # act(gate) * up: two d_model x d_ff input matrices (gate and up) instead of one


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(gated=False),
    "gelu": Activation(gated=False),
    "gelu_tanh": Activation(gated=False),
    "silu": Activation(gated=False),
    "relu2": Activation(gated=False),  # squared ReLU, So et al. 2021 (Primer)
    "glu": Activation(gated=True),  # sigmoid gate, Dauphin et al. 2017
    "bilinear": Activation(gated=True),
    "reglu": Activation(gated=True),  # Shazeer 2020
    "geglu": Activation(gated=True),
    "swiglu": Activation(gated=True),
}

# --------------------------------------------------------------------------------------------
# FFN kinds: one dense FFN, or a mixture of experts (Shazeer et al. 2017; GShard, Lepikhin et al.
# 2021; Switch, Fedus et al. 2022; shared always-on experts as in DeepSeekMoE, Dai et al. 2024).
# A MoE sublayer holds a router (d_model -> n_experts, no bias), `n_experts` routed experts of which
# each token uses its `experts_top_k` highest-scoring ones, and `n_shared_experts` experts every
# token uses; each expert is an FFN of width `expert_d_ff` with the block's activation.


@dataclass(frozen=True)
class FFNType:
    # ArchConfig fields only this kind reads: under any other kind they must stay unset (None)
    fields: tuple[str, ...] = ()
    # what an omitted field of this kind is filled with (expert_d_ff: d_ff, filled by ArchConfig)
    defaults: dict[str, Any] = field(default_factory=dict)


MOE_FIELDS = ("n_experts", "experts_top_k", "n_shared_experts", "expert_d_ff", "expert_capacity_factor")

FFN_TYPES: dict[str, FFNType] = {
    "dense": FFNType(),
    "moe": FFNType(fields=MOE_FIELDS, defaults={"n_experts": 8, "experts_top_k": 2, "n_shared_experts": 0}),
}


@dataclass(frozen=True)
class FFNShape:
    """What one FFN sublayer holds and what one token uses (a dense FFN is one shared expert, no router)."""

    experts: int  # FFNs of width `d_ff` held: routed + shared (1 for dense)
    active: int  # FFNs one token runs through: top_k + shared (1 for dense)
    d_ff: int  # each one's hidden width
    router_out: int  # the router's outputs: n_experts (0 for dense, which has no router)


def ffn_shape(arch: Any) -> FFNShape:
    """The FFN sublayer's shape, reading only fields (an omitted MoE field takes the table's default)."""
    if arch.ffn_type == "dense":
        return FFNShape(experts=1, active=1, d_ff=arch.d_ff, router_out=0)
    moe = {k: getattr(arch, k, None) for k in MOE_FIELDS}
    moe = {k: FFN_TYPES["moe"].defaults.get(k) if v is None else v for k, v in moe.items()}
    return FFNShape(
        experts=moe["n_experts"] + moe["n_shared_experts"],
        active=moe["experts_top_k"] + moe["n_shared_experts"],
        d_ff=moe["expert_d_ff"] or arch.d_ff,
        router_out=moe["n_experts"],
    )


# --------------------------------------------------------------------------------------------
# Norms


@dataclass(frozen=True)
class Norm:
    normalises: bool = True  # False only for the identity: no final norm, and QK-norm is refused
    weight: bool = True  # a learned per-channel scale
    bias: bool = False  # a learned per-channel shift, present when ArchConfig.bias is set

    def params(self, width: int, bias: bool) -> int:
        """Parameters of one norm over `width` channels (`bias` is ArchConfig.bias)."""
        return width * (int(self.weight) + int(self.bias and bias))


NORMS: dict[str, Norm] = {
    "layernorm": Norm(bias=True),
    "rmsnorm": Norm(),
    "none": Norm(normalises=False, weight=False),
}

# --------------------------------------------------------------------------------------------
# Norm placement and block layout: together they decide how many norms a block holds.


@dataclass(frozen=True)
class NormPosition:
    out_norm: bool  # each sublayer's output is normed before the residual add (sandwich)
    final_norm: bool  # the stack ends with a norm before the LM head (pre-norm output is not normed yet)


NORM_POSITIONS: dict[str, NormPosition] = {
    "pre": NormPosition(out_norm=False, final_norm=True),  # x += f(n(x))
    "post": NormPosition(out_norm=False, final_norm=False),  # x = n(x + f(x))
    "sandwich": NormPosition(out_norm=True, final_norm=True),  # x += n'(f(n(x)))
}


@dataclass(frozen=True)
class Block:
    shared_input_norm: bool  # every sublayer reads the same normed input (one input norm per block)
    max_ffn_per_block: int | None  # most FFN sublayers one block may hold; None = any number

    def norms(self, ffn_per_block: int, out_norm: bool) -> int:
        """How many d_model-wide norms one block holds (attention + its FFN sublayers)."""
        sublayers = 1 + ffn_per_block
        return (1 if self.shared_input_norm else sublayers) + (sublayers if out_norm else 0)


BLOCKS: dict[str, Block] = {
    "sequential": Block(shared_input_norm=False, max_ffn_per_block=None),
    "parallel": Block(shared_input_norm=True, max_ffn_per_block=1),  # GPT-J, PaLM: attn and FFN side by side
}

# --------------------------------------------------------------------------------------------
# Position codings


def _no_params(arch: Any) -> int:
    return 0


def _any_length(arch: Any) -> int | None:
    return None


def _always_valid(arch: Any) -> str | None:
    return None


@dataclass(frozen=True)
class Position:
    # learned position parameters (a table): counted in `params`, excluded from `non_embedding_params`
    table_params: Callable[[Any], int] = _no_params
    absolute: bool = False  # adds a (T, d_model) embedding to the token embeddings
    fields: tuple[str, ...] = ()  # ArchConfig fields only this coding reads: under another they keep their default
    max_len: Callable[[Any], int | None] = _any_length  # longest sequence it can code; None = any
    check: Callable[[Any], str | None] = _always_valid  # an extra validity rule: the error, naming the field, or None
    score_bias: bool = False  # adds a bias to the attention scores (rules out the plain fused causal kernel)


def _rope_check(arch: Any) -> str | None:
    return f"head_dim: rope needs an even head_dim, got {arch.head_dim}" if arch.head_dim % 2 else None


def _t5_check(arch: Any) -> str | None:
    return f"t5_num_buckets: must be >= 2, got {arch.t5_num_buckets}" if arch.t5_num_buckets < 2 else None


POSITIONS: dict[str, Position] = {
    "none": Position(),  # NoPE
    "sinusoidal": Position(absolute=True),
    "learned": Position(
        absolute=True, table_params=lambda arch: arch.seq_len * arch.d_model, max_len=lambda arch: arch.seq_len
    ),
    "rope": Position(fields=("rope_theta",), check=_rope_check),
    "alibi": Position(score_bias=True),
    "t5_bias": Position(
        table_params=lambda arch: arch.t5_num_buckets * arch.n_heads,
        fields=("t5_num_buckets", "t5_max_distance"),
        check=_t5_check,
        score_bias=True,
    ),
}

# --------------------------------------------------------------------------------------------
# Attention layout: sliding windows and global layers (`attention_window`, `global_every`).
# A windowed layer's query at position i attends to keys j with i - W < j <= i (itself and the W - 1
# tokens before it); a global layer to every j <= i. With a window, layer i (0-based) is global when
# (i + 1) % global_every == 0, so global_every = 2 makes layers 1, 3, 5, ... global (Gemma 2's
# alternation) and the last layer is global when n_layers is a multiple of global_every; None = no
# global layer (every layer windowed, Mistral's layout); 1 = every layer global.


def layer_windowed(arch: Any, layer: int) -> bool:
    """Whether layer `layer` (0-based) attends through the sliding window."""
    if arch.attention_window is None:
        return False
    return arch.global_every is None or (layer + 1) % arch.global_every != 0


def global_layers(arch: Any) -> int:
    """How many layers attend to the whole causal past."""
    return sum(not layer_windowed(arch, i) for i in range(arch.n_layers))


def attended_keys(arch: Any, layer: int, T: int) -> int:
    """Keys per query that layer `layer` multiplies at length T: T for a global layer, min(W, T) for
    a windowed one (the dense FLOP convention's charge; causal: `counting.charged_keys`)."""
    return min(arch.attention_window, T) if layer_windowed(arch, layer) else T


# --------------------------------------------------------------------------------------------
# Embedding scale: what the token embeddings are multiplied by, an explicit choice of its own
# (not tied to a position coding). The original transformer (Vaswani et al. 2017, sec. 3.4) used
# sqrt_d_model with its sinusoidal positions; GPT-2 and most decoders since use none.


@dataclass(frozen=True)
class EmbeddingScale:
    # the multiplier; `width` is d_model under the standard parametrisation and base_d_model under
    # mup / completep, so the embedding output does not grow with width (see `Parametrization`)
    factor: Callable[[int], float]


EMBEDDING_SCALES: dict[str, EmbeddingScale] = {
    "none": EmbeddingScale(factor=lambda width: 1.0),
    "sqrt_d_model": EmbeddingScale(factor=lambda width: math.sqrt(width)),
}

# --------------------------------------------------------------------------------------------
# Parametrisations: standard, μP (width rules) and CompleteP (width and depth rules). The table says
# which rules each applies; the rules themselves (multipliers, per-role init / lr / weight decay /
# epsilon, caveats) are in `archscale.spaces.transfer`, which reads this table.


@dataclass(frozen=True)
class Parametrization:
    width: bool  # μP width rules (Yang et al. 2022)
    depth: bool  # CompleteP depth rules, alpha = 1 (Dey et al. 2025)


PARAMETRIZATIONS: dict[str, Parametrization] = {
    "standard": Parametrization(width=False, depth=False),
    "mup": Parametrization(width=True, depth=False),
    "completep": Parametrization(width=True, depth=True),
}


def embedding_scale(arch: Any) -> float:
    """The token-embedding multiplier: the chosen scale at d_model, or at base_d_model under mup / completep."""
    width = arch.base_d_model if PARAMETRIZATIONS[arch.parametrization].width else arch.d_model
    return EMBEDDING_SCALES[arch.embedding_scale].factor(width)


# The axes whose variants own ArchConfig fields (`FFNType.fields`, `Position.fields`): a field is read
# only under the variant that owns it, so under any other it must hold its default (`ArchConfig`
# refuses anything else, and a space file may sample it only where its owner is chosen).
FIELD_OWNERS: dict[str, dict[str, Any]] = {"ffn_type": FFN_TYPES, "position": POSITIONS}


def owners(axis: str, name: str) -> tuple[str, ...]:
    """The variants of `axis` (a `FIELD_OWNERS` key) that read ArchConfig field `name`."""
    return tuple(variant for variant, facts in FIELD_OWNERS[axis].items() if name in facts.fields)


# The tables by the ArchConfig field whose values they key.
BY_FIELD: dict[str, dict[str, Any]] = {
    "ffn_activation": ACTIVATIONS,
    "ffn_type": FFN_TYPES,
    "norm": NORMS,
    "norm_position": NORM_POSITIONS,
    "position": POSITIONS,
    "block": BLOCKS,
    "embedding_scale": EMBEDDING_SCALES,
    "parametrization": PARAMETRIZATIONS,
}
