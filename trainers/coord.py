"""The coordinate check: do activations keep their size as the model gets wider or deeper?

    rows = coord_check(arch, widths=[64, 128, 256, 512], steps=5, lr=1e-2)
    slopes(rows, "width", step=5)   # {"logits": 0.02, "residual": -0.01, ...}: log-log slope of RMS vs width

Each size is trained a few steps at a high learning rate from the same seed and the same batches,
and after each step (step 0 = at initialisation) the RMS of the activations of each role is
measured on one fixed batch. Under a parametrisation whose rules hold, every role's RMS is
independent of width (mup) or of width and depth (completep): a flat line in log-log, slope ~0.
Under the standard parametrisation the logits grow with width once Adam has taken a step, which is
why its best learning rate moves (Yang et al. 2022, Fig. 5; microsoft/mup `coord_check.py`, which
plots the same thing; nanoGPT-mup's completep branch does the depth version).

Sizes vary from `arch` the way a scaling study should: head_dim stays fixed and n_heads (and
n_kv_heads, in proportion) grow with width; the FFN ratio d_ff / d_model stays fixed; the base
shapes stay at the file's (base_d_model defaults to the file's d_model, base_n_layers to its
n_layers), so the file's model is the base and the others are its wider or deeper versions.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from archscale.spaces import ArchConfig, variants
from archscale.spaces.errors import UserError
from archscale.spaces.training import TrainConfig

ROLES = ("embedding", "attention", "ffn", "residual", "logits")  # embedding output .. LM head output
ROUTER_ROLE = "router"  # ffn_type=moe only: the router's logits (after its multiplier), mean over MoE sublayers


def with_parametrization(arch: ArchConfig, parametrization: str) -> ArchConfig:
    """`arch` under another parametrisation; base shapes kept where the new one reads them, else dropped."""
    p = variants.PARAMETRIZATIONS[parametrization]
    fields = arch.to_dict()
    fields.update(
        parametrization=parametrization,
        base_d_model=(arch.base_d_model or arch.d_model) if p.width else None,
        base_n_layers=(arch.base_n_layers or arch.n_layers) if p.depth else None,
        base_head_dim=arch.base_head_dim if p.width else None,
        base_d_ff=arch.base_d_ff if p.width else None,
    )
    return ArchConfig(**fields)


def resized(arch: ArchConfig, width: int | None = None, depth: int | None = None) -> ArchConfig:
    """`arch` at d_model=`width` and n_layers=`depth`, with head_dim and the FFN ratio fixed (see module doc)."""
    fields = arch.to_dict()
    if width is not None:
        if width % arch.head_dim:
            raise UserError(f"widths: {width} is not a multiple of the architecture's head_dim={arch.head_dim}")
        n_heads = width // arch.head_dim
        fields.update(
            d_model=width,
            n_heads=n_heads,
            n_kv_heads=max(1, n_heads * arch.n_kv_heads // arch.n_heads),
            d_ff=max(1, round(width * arch.d_ff / arch.d_model)),
        )
        if arch.expert_d_ff is not None:  # a MoE's experts keep their ratio too
            fields["expert_d_ff"] = max(1, round(width * arch.expert_d_ff / arch.d_model))
    if depth is not None:
        fields["n_layers"] = depth
    try:
        return ArchConfig(**fields)
    except ValueError as e:
        raise UserError(f"at width={width}, depth={depth}: {e}") from None


def _rms(t: torch.Tensor) -> float:
    return float(t.detach().float().pow(2).mean().sqrt())


def _measure(model, idx: torch.Tensor) -> dict[str, float]:
    """RMS of each role's activations in one forward pass (attention and FFN: mean over layers)."""
    seen: dict[str, list[float]] = {role: [] for role in ROLES}
    hooks = [
        model.blocks[0].register_forward_pre_hook(lambda m, args: seen["embedding"].append(_rms(args[0]))),
        model.blocks[-1].register_forward_hook(lambda m, args, out: seen["residual"].append(_rms(out))),
    ]
    for block in model.blocks:
        hooks.append(block.attn.register_forward_hook(lambda m, args, out: seen["attention"].append(_rms(out))))
        for ffn in block.ffns:
            hooks.append(ffn.register_forward_hook(lambda m, args, out: seen["ffn"].append(_rms(out))))
            if hasattr(ffn, "router"):  # a MoE: its logits are the router's output times its multiplier
                seen.setdefault(ROUTER_ROLE, [])
                hooks.append(
                    ffn.router.register_forward_hook(
                        lambda m, args, out, ffn=ffn: seen[ROUTER_ROLE].append(_rms(out * ffn.router_mult))
                    )
                )
    try:
        with torch.no_grad():
            seen["logits"].append(_rms(model(idx)))
    finally:
        for h in hooks:
            h.remove()
    return {role: sum(v) / len(v) for role, v in seen.items()}


def coord_check(
    arch: ArchConfig,
    *,
    widths: list[int] | None = None,
    depths: list[int] | None = None,
    steps: int = 5,
    lr: float = 1e-2,
    seeds: int = 1,
    batch_size: int = 8,
    data: Any = "pystdlib",
) -> list[dict[str, Any]]:
    """Rows `{"width", "depth", "step", "role", "rms"}` for every size (widths x depths), step 0..steps
    and role; RMS averaged over `seeds`. Training: AdamW with the parametrisation's per-group rules
    (`make_optimizer`), a constant `lr`, no clipping, the same batches for every size."""
    from archscale.trainers.data import IGNORE, open_data
    from archscale.trainers.loop import make_optimizer
    from archscale.trainers.model import build_model

    if not widths and not depths:
        raise UserError("give widths, depths or both")
    if steps < 1 or seeds < 1:
        raise UserError(f"steps and seeds must be >= 1, got steps={steps}, seeds={seeds}")
    source = open_data(data) if isinstance(data, str) else data
    if source.vocab_size > arch.vocab_size:
        raise UserError(f"vocab_size: data {source.name!r} needs vocab_size >= {source.vocab_size}")
    cfg = TrainConfig(lr=lr, grad_clip=None)
    cpu = torch.device("cpu")
    rows = []
    for width in widths or [None]:
        for depth in depths or [None]:
            sized = resized(arch, width, depth)
            totals: dict[tuple[int, str], float] = {}
            for seed in range(seeds):
                torch.manual_seed(seed)
                model = build_model(sized, fused_kernels=False)
                optimizer = make_optimizer(model, cfg, cpu)
                for group in optimizer.param_groups:
                    group["lr"] = lr * group["lr_scale"]
                gen = torch.Generator().manual_seed(10_000 + seed)
                probe, _ = source.train_batch(batch_size, sized.seq_len, gen)
                for step in range(steps + 1):
                    for role, rms in _measure(model, probe).items():
                        totals[(step, role)] = totals.get((step, role), 0.0) + rms / seeds
                    if step == steps:
                        break
                    x, y = source.train_batch(batch_size, sized.seq_len, gen)
                    logits = model(x)
                    F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE).backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            rows += [
                {"width": sized.d_model, "depth": sized.n_layers, "step": step, "role": role, "rms": rms}
                for (step, role), rms in totals.items()
            ]
    return rows


def slopes(rows: list[dict[str, Any]], over: str, step: int) -> dict[str, float]:
    """Least-squares slope of log(rms) against log(`over`) ("width" or "depth") at `step`, per role.
    With several values of the other dimension, each is fitted and the slopes averaged."""
    out = {}
    for role in (*ROLES, ROUTER_ROLE):
        fits = []
        others = sorted({r["depth" if over == "width" else "width"] for r in rows})
        for other in others:
            pts = [
                (math.log(r[over]), math.log(r["rms"]))
                for r in rows
                if r["role"] == role and r["step"] == step and r["depth" if over == "width" else "width"] == other
            ]
            if len({x for x, _ in pts}) < 2:
                continue
            mx, my = sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)
            sxx = sum((x - mx) ** 2 for x, _ in pts)
            fits.append(sum((x - mx) * (y - my) for x, y in pts) / sxx)
        if fits:
            out[role] = sum(fits) / len(fits)
    return out


def save_plot(rows: list[dict[str, Any]], out: str | Path, over: str) -> Path:
    """A log-log chart of RMS against `over` per role (one line per step): .html (offline) or .png."""
    import altair as alt
    import vl_convert as vlc

    out = Path(out)
    if out.suffix not in (".html", ".png"):
        raise UserError(f"--out: {out}: unsupported format {out.suffix!r}; allowed: .html, .png")
    chart = (
        alt.Chart(alt.Data(values=rows))
        .mark_line(point=True)
        .encode(
            x=alt.X(f"{over}:Q", scale=alt.Scale(type="log", base=2)),
            y=alt.Y("rms:Q", scale=alt.Scale(type="log")),
            color=alt.Color("step:O"),
        )
        .properties(width=160, height=140)
        .facet(column=alt.Column("role:N", sort=[*ROLES, ROUTER_ROLE]))
        .resolve_scale(y="independent")
    )
    spec = chart.to_dict()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".png":
        out.write_bytes(vlc.vegalite_to_png(spec, scale=2))
    else:
        out.write_text(vlc.vegalite_to_html(spec, bundle=True))
    return out
