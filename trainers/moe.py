"""The mixture-of-experts FFN sublayer (`ffn_type: moe`) and its router-health measurements.

    x (B, T, d) -> router logits (N, E) -> softmax -> top-k experts and weights per token
      -> tokens sorted by expert -> each expert runs on its own tokens only -> weighted scatter-add
      (+ every shared expert on every token) -> (B, T, d)

Only the selected experts are computed, grouped by expert (one gather, one FFN call and one
`index_add_` per expert that received tokens), never every expert on every token under a mask: the
cost grows with `experts_top_k`, not with `n_experts` (`benchmarks/bench_moe.py` measures it).

Router: a bias-free d_model -> n_experts linear layer whose logits are multiplied by the readout's
width multiplier (1 under the standard parametrisation; see the `router` role in
`archscale.spaces.variants`). Gates are the softmax probabilities of the chosen experts, not
renormalised over the top k (as Switch and DeepSeekMoE do; GShard and Mixtral renormalise, but with
k = 1 a renormalised gate is always 1 and the router would get no gradient from the loss).
The Switch / GShard load-balancing loss, n_experts x sum_e f_e P_e (f_e: share of the
token-expert assignments routed to expert e, P_e: mean router probability of e; 1 when balanced),
is kept on the module after each forward (`aux_loss`); the training loop adds
`router_aux_loss_coef` x its mean over MoE sublayers (`aux_loss(model)`) to the loss.

Capacity (`expert_capacity_factor`, None = dropless): an expert takes at most
ceil(factor x N x k / n_experts) of a forward's N x k assignments. Assignments are admitted by
position first (all rows' position 0, then position 1, ...), so whether a token is dropped depends
only on tokens at its position or earlier: dropping never leaks a future token into a past output.
A dropped assignment contributes nothing (the token keeps its residual and its other experts).

Experts are ordinary FFN modules built by the caller (`expert(width)`), so they use the block's
activation, gated or not, and the decoder's parametrisation roles (`.up`, `.gate`, `.down`) as is.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from archscale.spaces import ArchConfig, transfer


class MoE(nn.Module):
    def __init__(self, arch: ArchConfig, expert: Callable[[int], nn.Module]):
        super().__init__()
        self.n_experts, self.top_k = arch.n_experts, arch.experts_top_k
        self.capacity_factor = arch.expert_capacity_factor
        self.router = nn.Linear(arch.d_model, arch.n_experts, bias=False)
        self.router_mult = transfer.width_readout_multiplier(arch)  # 1; 1 / m_d_model under mup / completep
        self.experts = nn.ModuleList(expert(arch.expert_d_ff) for _ in range(arch.n_experts))
        self.shared = nn.ModuleList(expert(arch.expert_d_ff) for _ in range(arch.n_shared_experts))
        self.aux_loss: Tensor | None = None  # the load-balancing loss of the last forward
        self.kept_per_expert: Tensor | None = None  # (E,) assignments each expert computed in the last forward
        # router health while training, summed since the last `router_health(model)` (not checkpointed)
        self.register_buffer("tokens_per_expert", torch.zeros(arch.n_experts), persistent=False)
        self.register_buffer("health", torch.zeros(3), persistent=False)  # aux loss sum, dropped, forwards

    def forward(self, x: Tensor) -> Tensor:
        B, T, d = x.shape
        N, E, k = B * T, self.n_experts, self.top_k
        flat = x.reshape(N, d)  # (N, d), row n = (b, t) with n = b * T + t
        probs = (self.router(flat) * self.router_mult).float().softmax(-1)  # (N, E)
        gates, chosen = probs.topk(k, dim=-1)  # (N, k) each

        # sort the N x k assignments by expert, and within an expert by (position, row, slot)
        chosen = chosen.flatten()  # (N k,)
        n = torch.arange(N, device=x.device)
        priority = ((n % T) * B + n // T).repeat_interleave(k) * k + torch.arange(k, device=x.device).repeat(N)
        order = torch.argsort(chosen * (N * k) + priority)
        token_of = order // k  # the token each sorted assignment belongs to
        gate_of = gates.flatten()[order]
        if flat.is_meta:  # shapes only (counting FLOPs with no data): route as a perfectly balanced router would
            routed = [N * k // E + (e < N * k % E) for e in range(E)]
            per_expert = torch.tensor(routed, device=flat.device)
        else:
            per_expert = torch.bincount(chosen, minlength=E)  # (E,) assignments routed to each expert
            routed = per_expert.tolist()  # one device sync: the loop below runs on these sizes
        capacity = N * k if self.capacity_factor is None else math.ceil(self.capacity_factor * N * k / E)
        kept = [min(n, capacity) for n in routed]  # an expert's first `capacity` assignments, in priority order

        self.kept_per_expert = torch.tensor(kept)
        out = torch.zeros_like(flat)
        for e, start in enumerate(_starts(routed)):
            if kept[e] == 0:
                continue  # no token reached this expert: it is not computed
            run = slice(start, start + kept[e])
            idx = token_of[run]
            y = self.experts[e](flat[idx]) * gate_of[run, None].to(flat.dtype)  # (n_e, d)
            out.index_add_(0, idx, y)
        for expert in self.shared:
            out = out + expert(flat)

        share = per_expert.float() / (N * k)  # f_e, before any dropping (the router's decision)
        self.aux_loss = E * (share * probs.mean(0)).sum()
        if self.training:
            with torch.no_grad():
                self.tokens_per_expert += per_expert
                dropped = (N * k - sum(kept)) / (N * k)
                aux = self.aux_loss.detach()
                self.health += torch.stack((aux, aux.new_tensor(dropped), aux.new_tensor(1.0)))
        return out.view(B, T, d)


def _starts(sizes: list[int]) -> list[int]:
    """Where each of consecutive runs of the given sizes begins."""
    starts = [0]
    for n in sizes[:-1]:
        starts.append(starts[-1] + n)
    return starts


def moe_layers(model: nn.Module) -> list[MoE]:
    return [m for m in model.modules() if isinstance(m, MoE)]


def aux_loss(model: nn.Module) -> Tensor | None:
    """Mean load-balancing loss over the MoE sublayers of the model's last forward; None without MoE."""
    losses = [m.aux_loss for m in moe_layers(model) if m.aux_loss is not None]
    return torch.stack(losses).mean() if losses else None


def router_health(model: nn.Module) -> dict[str, float | list[float] | None]:
    """Router health over the training forwards since the last call (then reset), mean over MoE sublayers:

    router_aux_loss: the load-balancing loss (1 = balanced, n_experts = every token to one expert);
    expert_load_max_over_mean: the busiest expert's token share over the mean share (1 = balanced);
    expert_token_share: each expert's share of the assignments (sums to 1), by expert index;
    dropped_token_frac: share of token-expert assignments dropped by the capacity factor (0 if dropless).
    All None for a dense model, or when no training forward ran.
    """
    layers = moe_layers(model)
    empty = dict.fromkeys(("router_aux_loss", "expert_load_max_over_mean", "expert_token_share", "dropped_token_frac"))
    if not layers or float(layers[0].health[2]) == 0:
        return empty
    shares = []
    aux = dropped = 0.0
    for m in layers:
        aux_sum, dropped_sum, forwards = m.health.tolist()
        aux, dropped = aux + aux_sum / forwards, dropped + dropped_sum / forwards
        shares.append(m.tokens_per_expert / m.tokens_per_expert.sum().clamp(min=1))
        m.tokens_per_expert.zero_()
        m.health.zero_()
    share = torch.stack(shares)  # (layers, E)
    return {
        "router_aux_loss": aux / len(layers),
        "expert_load_max_over_mean": float((share.max(1).values / share.mean(1)).mean()),
        "expert_token_share": share.mean(0).tolist(),
        "dropped_token_frac": dropped / len(layers),
    }
