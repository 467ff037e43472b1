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
from dataclasses import dataclass
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


def _unscaled(arch: Any) -> float:
    return 1.0


def _any_length(arch: Any) -> int | None:
    return None


def _always_valid(arch: Any) -> str | None:
    return None


@dataclass(frozen=True)
class Position:
    # learned position parameters (a table): counted in `params`, excluded from `non_embedding_params`
    table_params: Callable[[Any], int] = _no_params
    absolute: bool = False  # adds a (T, d_model) embedding to the token embeddings
    # multiplies the token embeddings. Today sqrt(d_model) for sinusoidal only (Vaswani et al.); the
    # hook where an explicit embedding-scale choice would plug in.
    emb_scale: Callable[[Any], float] = _unscaled
    fields: tuple[str, ...] = ()  # ArchConfig fields that only this coding reads
    max_len: Callable[[Any], int | None] = _any_length  # longest sequence it can code; None = any
    check: Callable[[Any], str | None] = _always_valid  # an extra validity rule: the error, naming the field, or None


def _rope_check(arch: Any) -> str | None:
    return f"head_dim: rope needs an even head_dim, got {arch.head_dim}" if arch.head_dim % 2 else None


def _t5_check(arch: Any) -> str | None:
    return f"t5_num_buckets: must be >= 2, got {arch.t5_num_buckets}" if arch.t5_num_buckets < 2 else None


POSITIONS: dict[str, Position] = {
    "none": Position(),  # NoPE
    "sinusoidal": Position(absolute=True, emb_scale=lambda arch: math.sqrt(arch.d_model)),
    "learned": Position(
        absolute=True, table_params=lambda arch: arch.seq_len * arch.d_model, max_len=lambda arch: arch.seq_len
    ),
    "rope": Position(fields=("rope_theta",), check=_rope_check),
    "alibi": Position(),
    "t5_bias": Position(
        table_params=lambda arch: arch.t5_num_buckets * arch.n_heads,
        fields=("t5_num_buckets", "t5_max_distance"),
        check=_t5_check,
    ),
}

# The tables by the ArchConfig field whose values they key.
BY_FIELD: dict[str, dict[str, Any]] = {
    "ffn_activation": ACTIVATIONS,
    "norm": NORMS,
    "norm_position": NORM_POSITIONS,
    "position": POSITIONS,
    "block": BLOCKS,
}
