"""Variant facts: one torch-free table per architectural axis, keyed by the names a space file uses.

Everything that validation, error messages, counting or the decoder need to know about a named
variant is written here, once:
- `ArchConfig`'s `Literal` types and name tuples (`FFN_ACTIVATIONS`, `NORMS`, ...) are these keys;
- `ArchConfig` validation reads the per-variant rules (`Position.check`, `Block.max_ffn_per_block`,
  `Norm.normalises`) and lists allowed values from the keys;
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
    fields: tuple[str, ...] = ()  # ArchConfig fields that only this coding reads
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
    """Keys per query that the FLOP count charges layer `layer` at length T: T for a global layer,
    min(W, T) for a windowed one (no causal halving in either: the first queries see fewer)."""
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
# Parametrisations: how initialisation, forward multipliers and the optimizer's per-group
# learning rate, weight decay and epsilon scale with width and depth, so hyperparameters tuned at
# the base shapes (`base_d_model`, `base_n_layers`) transfer. The numbers are here (torch-free, so
# the trial record and the study planner can read them); `archscale.trainers.parametrization`
# assigns each parameter its role and applies them. docs/training.md ("Parametrisations") lists
# every rule with the reference it comes from.
#
# Width multipliers, one per dimension that is a fan-in somewhere (`width_multipliers`):
#   d_model: fan-in of q, k, v, FFN up and gate; the readout's 1/m and the residual blocks' epsilon
#   attn:    n_heads x head_dim, fan-in of the attention output projection
#   d_ff:    fan-in of the FFN down projection (of each expert's, expert_d_ff, under ffn_type=moe),
#            measured against base_d_model x FFN_REFERENCE_RATIO
#            (x 2/3 for gated FFNs, the parameter-matched ratio), so changing the FFN ratio or the
#            gated correction at a fixed d_model moves d_ff's multiplier on its own
# n_kv_heads x head_dim is the output width of k and v, never a fan-in (GQA repeats k and v to
# n_heads groups before the output projection), and μP's Adam rules read only fan-in
# (microsoft/mup `MuAdam`: lr /= p.infshape.width_mult(), the fan-in's); so it has no multiplier.

FFN_REFERENCE_RATIO = 4.0  # d_ff / d_model at which d_ff's multiplier equals d_model's


@dataclass(frozen=True)
class Parametrization:
    width: bool  # μP width rules (Yang et al. 2022)
    depth: bool  # CompleteP depth rules, alpha = 1 (Dey et al. 2025)


PARAMETRIZATIONS: dict[str, Parametrization] = {
    "standard": Parametrization(width=False, depth=False),
    "mup": Parametrization(width=True, depth=False),
    "completep": Parametrization(width=True, depth=True),
}


def width_multipliers(arch: Any) -> dict[str, float]:
    """Each fan-in dimension over its base (all 1 under the standard parametrisation)."""
    if not PARAMETRIZATIONS[arch.parametrization].width:
        return {"d_model": 1.0, "attn": 1.0, "d_ff": 1.0}
    base = arch.base_d_model
    ratio = FFN_REFERENCE_RATIO * (2 / 3 if ACTIVATIONS[arch.ffn_activation].gated else 1)
    return {
        "d_model": arch.d_model / base,
        "attn": arch.n_heads * arch.head_dim / base,
        "d_ff": ffn_shape(arch).d_ff / (base * ratio),  # an expert's width under ffn_type=moe
    }


def depth_multiplier(arch: Any) -> float:
    """m_L = n_layers / base_n_layers under completep; 1 otherwise."""
    return arch.n_layers / arch.base_n_layers if PARAMETRIZATIONS[arch.parametrization].depth else 1.0


def residual_scale(arch: Any) -> float:
    """Each residual branch is multiplied by m_L^-alpha = base_n_layers / n_layers (CompleteP, alpha = 1)."""
    return 1.0 / depth_multiplier(arch)


def embedding_scale(arch: Any) -> float:
    """The token-embedding multiplier: the chosen scale at d_model, or at base_d_model under mup / completep."""
    width = arch.base_d_model if PARAMETRIZATIONS[arch.parametrization].width else arch.d_model
    return EMBEDDING_SCALES[arch.embedding_scale].factor(width)


def output_multiplier(arch: Any) -> float:
    """The readout's multiplier on the final hidden state: 1 / m_d_model under mup / completep."""
    return 1.0 / width_multipliers(arch)["d_model"]


def attention_scale(arch: Any) -> float:
    """Attention logits' scale: 1/head_dim under mup / completep, 1/sqrt(head_dim) otherwise."""
    if PARAMETRIZATIONS[arch.parametrization].width:
        return 1.0 / arch.head_dim
    return 1.0 / math.sqrt(arch.head_dim)


# Combinations no derivation covers: the references derive the rules for pre-norm decoders with
# a normalising norm and a position coding (CompleteP's Table 1: "a pre-LN transformer"). They
# train, but `archscale.trainers.parametrization` warns once and the trial row's
# `parametrization_caveat` column says why.
def parametrization_caveat(arch: Any) -> str | None:
    """Why the rules of `arch.parametrization` are not derived for `arch`, or None."""
    if arch.parametrization == "standard":
        return None
    reasons = []
    if arch.norm_position != "pre":
        reasons.append(f"norm_position={arch.norm_position}")
    if not NORMS[arch.norm].normalises:
        reasons.append(f"norm={arch.norm}")
    if arch.position == "none":
        reasons.append("position=none")
    if not reasons:
        return None
    return (
        f"{arch.parametrization} is derived for pre-norm decoders with a norm and a position coding, "
        f"not {', '.join(reasons)}"
    )


@dataclass(frozen=True)
class Role:
    """How one kind of parameter is initialised and optimised. Every callable takes the arch."""

    init_std: Callable[[Any], float]  # multiplies the base std (0.02)
    lr: Callable[[Any], float]  # multiplies the peak learning rate
    weight_decay: Callable[[Any], float]  # multiplies the weight decay (0 where the role never decays)
    eps: Callable[[Any], float]  # multiplies Adam's epsilon
    decays: bool  # gets weight decay at all


def _one(arch: Any) -> float:
    return 1.0


def _hidden(dim: str) -> Role:
    # μP hidden matrices (CompleteP Table 1 "Hidden"; microsoft/mup init.normal_/constant_std_init_
    # scales std by width_mult^-1/2, MuAdamW divides lr by width_mult and, with decoupled_wd=False,
    # multiplies weight decay by it so lr x wd is width-independent). alpha = 1: no depth factor on lr.
    return Role(
        init_std=lambda arch: width_multipliers(arch)[dim] ** -0.5,
        lr=lambda arch: 1.0 / width_multipliers(arch)[dim],
        weight_decay=lambda arch: width_multipliers(arch)[dim],
        eps=_block_eps,
        decays=True,
    )


def _block_eps(arch: Any) -> float:
    # CompleteP Table 1 "AdamW eps (residual blocks)": eps x m_N^-1 (μP), x m_N^-1 x m_L^-alpha (CompleteP)
    return 1.0 / (width_multipliers(arch)["d_model"] * depth_multiplier(arch))


PARAMETER_ROLES: dict[str, Role] = {
    # token embedding, learned position table, T5 bias table, and a tied readout: constant init and lr
    "embedding": Role(init_std=_one, lr=_one, weight_decay=_one, eps=_one, decays=False),
    "hidden_d_model": _hidden("d_model"),  # q, k, v, FFN up and gate
    "hidden_attn": _hidden("attn"),  # attention output projection (fan-in n_heads x head_dim)
    "hidden_d_ff": _hidden("d_ff"),  # FFN down projection (fan-in d_ff)
    # norms, QK-norms and biases inside the residual blocks
    "block_vector": Role(init_std=_one, lr=_one, weight_decay=_one, eps=_block_eps, decays=False),
    "final_norm": Role(init_std=_one, lr=_one, weight_decay=_one, eps=_one, decays=False),
    "readout": Role(init_std=_one, lr=_one, weight_decay=_one, eps=_one, decays=False),  # an untied head
    # the MoE router, d_model -> n_experts: its fan-out stays finite as width grows, so μP treats it
    # like the readout (Yang et al. 2022, Table 3, output weights): constant init and lr, and the
    # model multiplies its logits by `output_multiplier` (1/m_d_model), as it does the readout's, so
    # router logits and their updates stay O(1) with width. Unlike the readout it is a matrix inside
    # a residual block, so it decays like the hidden matrices do (x 1 here) and takes the blocks' eps.
    "router": Role(init_std=_one, lr=_one, weight_decay=_one, eps=_block_eps, decays=True),
}

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
