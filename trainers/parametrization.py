"""Parametrisations applied to a built decoder: initialisation and the optimizer's parameter groups.

The rules are data in `archscale.spaces` (which rules apply: `variants.PARAMETRIZATIONS`; how they
scale: `transfer.PARAMETER_ROLES` and the multiplier functions); this module gives every parameter
of a `Decoder` its role and applies the role's rules. The forward multipliers are read by the model itself:
attention sqrt(base_head_dim)/head_dim, residual branch base_n_layers/n_layers, readout 1/m_d_model and
the tunable input / output / attention multipliers from `transfer`, the embedding scale from
`variants.embedding_scale`. Under `standard` every rule is 1 and, at the default multipliers, the
result is the decoder's usual init and AdamW groups.

    roles(model)                     -> {parameter name: role}
    init_weights(model)              (called by the Decoder when it is built)
    param_groups(model, cfg)         -> AdamW groups, each with an `lr_scale` the loop multiplies in
"""

from __future__ import annotations

import math
import warnings

from torch import nn

from archscale.spaces import transfer, variants
from archscale.spaces.training import TrainConfig

BASE_INIT_STD = 0.02  # sigma_base: every matrix at the base shapes (GPT-2's)
BASE_ADAM_EPS = 1e-8  # epsilon_base: torch's AdamW default, which archscale always used

_ROLE_BY_SUFFIX = (  # parameter-name endings inside a block, most specific first
    (("attn.q.weight", "attn.k.weight", "attn.v.weight"), "hidden_d_model"),
    (("attn.o.weight",), "hidden_attn"),
    ((".up.weight", ".gate.weight"), "hidden_d_model"),  # dense FFNs and every MoE expert alike
    ((".down.weight",), "hidden_d_ff"),
    ((".router.weight",), "router"),  # MoE router, d_model -> n_experts: the readout's rules (see variants)
)


class UncoveredParametrizationWarning(UserWarning):
    """A parametrisation's rules are applied to an architecture their derivation does not cover."""


_warned: set[str] = set()


def warn_if_uncovered(arch) -> str | None:
    """Warn (once per distinct reason in this process) when no derivation covers `arch`; return the reason."""
    caveat = transfer.parametrization_caveat(arch)
    if caveat is not None and caveat not in _warned:
        _warned.add(caveat)
        message = f"{caveat}: it trains, but hyperparameters may not transfer"
        warnings.warn(message, UncoveredParametrizationWarning, stacklevel=3)
    return caveat


def role_of(name: str) -> str:
    """The `transfer.PARAMETER_ROLES` key of one `Decoder` parameter, from its name."""
    if name.startswith(("tok_emb.", "pos.")):
        return "embedding"  # token embedding, learned position table, T5 bias table
    if name.startswith("final_norm."):
        return "final_norm"
    if name.startswith("head."):
        return "readout"
    if name.startswith("blocks."):
        for suffixes, role in _ROLE_BY_SUFFIX:
            if name.endswith(suffixes):
                return role
        return "block_vector"  # norms, QK-norms, biases and Primer's depthwise kernels inside the residual blocks
    raise ValueError(f"parameter {name!r} has no parametrisation role; add it to role_of")


def roles(model: nn.Module) -> dict[str, str]:
    return {name: role_of(name) for name, _ in model.named_parameters()}


def init_weights(model: nn.Module) -> None:
    """Matrices N(0, (0.02 x the role's std multiplier)^2); biases 0; norm weights keep their ones.

    `init: depth_scaled` divides the residual outputs' std (attention `o`, FFN `down`) by
    sqrt(number of residual additions) as GPT-2 does, except under completep, which replaces it by
    scaling the residual branches (CompleteP Table 1 has no depth-scaled init). `zero_init` starts
    the query projections and an untied readout at zero (microsoft/mup: `MuReadout(readout_zero_init=True)`
    and the Transformer example's zero query init).
    """
    arch = model.arch
    depth_scaled = arch.init == "depth_scaled" and not variants.PARAMETRIZATIONS[arch.parametrization].depth
    residual_adds = arch.n_layers * (1 + arch.ffn_per_block)
    for name, p in model.named_parameters():
        if name.endswith("_conv.weight"):
            # Primer's depthwise kernels (channels, 1, k): torch's Conv1d default, U(+-1/sqrt(k)), which Primer
            # implementations keep; the fan-in k does not grow with width, so no parametrisation rescales it
            bound = 1 / math.sqrt(p.shape[-1])
            nn.init.uniform_(p, -bound, bound)
        elif p.dim() >= 2:
            std = BASE_INIT_STD * transfer.PARAMETER_ROLES[role_of(name)].init_std(arch)
            if depth_scaled and name.endswith(("attn.o.weight", "down.weight")):
                std /= math.sqrt(residual_adds)
            if arch.zero_init and name.endswith(("attn.q.weight", "head.weight")):
                nn.init.zeros_(p)
            else:
                nn.init.normal_(p, 0.0, std)
        elif name.endswith("bias"):
            nn.init.zeros_(p)


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """AdamW parameter groups, one per role present, each with its `lr_scale`, weight decay and eps.

    Weight decay: hidden matrices decay (x the role's multiplier); the embedding tables and the
    readout decay only with `cfg.decay_embeddings`, the same whether the head is tied or not;
    norms and biases never. The loop sets each group's lr to the schedule's lr x `lr_scale`; the
    embedding group's includes `cfg.embedding_lr_mult` (a tied readout is that same matrix).
    """
    arch = model.arch
    by_role: dict[str, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        by_role.setdefault(role_of(name), []).append(p)
    groups = []
    for role, params in by_role.items():
        rule = transfer.PARAMETER_ROLES[role]
        decays = rule.decays or (cfg.decay_embeddings and role in ("embedding", "readout"))
        groups.append(
            {
                "params": params,
                "role": role,
                "lr_scale": rule.lr(arch) * (cfg.embedding_lr_mult if role == "embedding" else 1.0),
                "weight_decay": cfg.weight_decay * rule.weight_decay(arch) if decays else 0.0,
                "eps": BASE_ADAM_EPS * rule.eps(arch),
            }
        )
    return groups
