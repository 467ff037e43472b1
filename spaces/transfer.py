"""Transfer rules of the parametrisations: width and depth multipliers, per-role init / lr / weight decay / eps.

Which rules a parametrisation applies (width, depth) is its entry in `variants.PARAMETRIZATIONS`;
how each rule scales is written here, once, torch-free (so the trial record and the study planner
can read it); `archscale.trainers.parametrization` assigns each parameter its role and applies them.
The callables receive an `ArchConfig` or a namespace with its fields, as in `variants`.
docs/training.md ("Parametrisations") lists every rule with the reference it comes from.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archscale.spaces.variants import NORMS, PARAMETRIZATIONS, ffn_shape

# Width multipliers, one per dimension that is a fan-in somewhere (`width_multipliers`):
#   d_model: fan-in of q, k, v, FFN up and gate; the readout's 1/m and the residual blocks' epsilon
#   attn:    n_heads x head_dim, fan-in of the attention output projection
#   d_ff:    fan-in of the FFN down projection (of each expert's, expert_d_ff, under ffn_type=moe),
#            measured against the base model's own d_ff (`base_d_ff`)
# n_kv_heads x head_dim is the output width of k and v, never a fan-in (GQA repeats k and v to
# n_heads groups before the output projection), and μP's Adam rules read only fan-in
# (microsoft/mup `MuAdam`: lr /= p.infshape.width_mult(), the fan-in's); so it has no multiplier.


def base_d_ff(arch: Any) -> float:
    """The base model's FFN width (an expert's under moe): `arch.base_d_ff`, or, omitted, base_d_model
    x this model's own FFN ratio (the ratio held from the base, as a μP width ladder holds it)."""
    if arch.base_d_ff is not None:
        return arch.base_d_ff
    return arch.base_d_model * ffn_shape(arch).d_ff / arch.d_model


def base_head_dim(arch: Any) -> int:
    """The base model's head_dim: `arch.base_head_dim`, or, omitted, this model's own (held from the base)."""
    return arch.base_head_dim if arch.base_head_dim is not None else arch.head_dim


def width_multipliers(arch: Any) -> dict[str, float]:
    """Each fan-in dimension over its base (all 1 under the standard parametrisation)."""
    if not PARAMETRIZATIONS[arch.parametrization].width:
        return {"d_model": 1.0, "attn": 1.0, "d_ff": 1.0}
    base = arch.base_d_model
    return {
        "d_model": arch.d_model / base,
        "attn": arch.n_heads * arch.head_dim / base,
        "d_ff": ffn_shape(arch).d_ff / base_d_ff(arch),  # an expert's width under ffn_type=moe
    }


def depth_multiplier(arch: Any) -> float:
    """m_L = n_layers / base_n_layers under completep; 1 otherwise."""
    return arch.n_layers / arch.base_n_layers if PARAMETRIZATIONS[arch.parametrization].depth else 1.0


def residual_scale(arch: Any) -> float:
    """Each residual branch is multiplied by m_L^-alpha = base_n_layers / n_layers (CompleteP, alpha = 1)."""
    return 1.0 / depth_multiplier(arch)


# The tunable multipliers (`output_mult`, `input_mult`, `attn_mult`: ArchConfig fields, 1 by default)
# multiply the forward pass under every parametrisation; under mup / completep they are tuned at the
# base and held, while the width rules below move with width. docs/transfer.md cites each.


def width_readout_multiplier(arch: Any) -> float:
    """μP's width rule for an output layer (readout, MoE router): 1 / m_d_model; 1 under standard."""
    return 1.0 / width_multipliers(arch)["d_model"]


def output_multiplier(arch: Any) -> float:
    """The readout's multiplier on the final hidden state: output_mult / m_d_model (output_mult under
    standard), as microsoft/mup `MuReadout` (`output_mult * x / width_mult`) and nanoGPT-mup
    (`x *= mup_output_alpha / mup_width_multiplier`) apply it."""
    return arch.output_mult * width_readout_multiplier(arch)


def input_multiplier(arch: Any) -> float:
    """The embedding output's multiplier (token embedding x embedding scale, plus an absolute position
    table): input_mult, as nanoGPT-mup's `mup_input_alpha`; the same under every parametrisation."""
    return arch.input_mult


def attention_scale(arch: Any) -> float:
    """Attention logits' scale: attn_mult x sqrt(base_head_dim) / head_dim under mup / completep
    (1/sqrt(head_dim) at the base head_dim, 1/head_dim beyond it: microsoft/mup's `8 / d` anchored
    at d = 64), attn_mult / sqrt(head_dim) under standard."""
    if PARAMETRIZATIONS[arch.parametrization].width:
        return arch.attn_mult * math.sqrt(base_head_dim(arch)) / arch.head_dim
    return arch.attn_mult / math.sqrt(arch.head_dim)


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
    # model multiplies its logits by `width_readout_multiplier` (1/m_d_model; not the readout's tuned
    # output_mult), so router logits and their updates stay O(1) with width. Unlike the readout it is a matrix inside
    # a residual block, so it decays like the hidden matrices do (x 1 here) and takes the blocks' eps.
    "router": Role(init_std=_one, lr=_one, weight_decay=_one, eps=_block_eps, decays=True),
}
