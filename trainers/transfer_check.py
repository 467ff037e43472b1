"""The transfer check: as the model grows, does the best learning rate stay put, and is wider better?

    check = transfer_check(arch, widths=[64, 128, 256, 512], lrs=[2e-3, 4e-3, 8e-3], steps=2000)
    check.optimum_lr        # {64: 4.1e-3, 128: 3.9e-3, ...}: per size, from the loss curve over lr
    check.drift             # largest optimum / smallest (1 = the optimum did not move)
    check.wider_is_better   # loss falls with every step in size at every lr near the base's optimum

Each size (`coord.resized`: head_dim and the FFN ratio fixed, the file's model is the base) trains
for real (`trainers.train`) at every lr of the grid, `steps` optimizer steps, one evaluation at the
end, seed-averaged. The optimum of a size is the parabola vertex in log lr through the best grid
point and its neighbours (`optimal_lr`). "Near the optimum" is fixed here, once (`near_lrs`): the
grid lrs within a factor of 2 of the reference size's optimum (the smallest size listed, the
base), and always the grid lr closest to it. `wider_is_better` holds when, at each of those lrs,
the final eval loss falls strictly from every size to the next larger one; a diverged point makes
it false. μP promises both: the optimum stays put, and wider is better at the transferred lr.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from archscale.spaces import ArchConfig
from archscale.spaces.errors import UserError
from archscale.spaces.training import TrainConfig
from archscale.trainers.coord import resized

DEFAULT_LRS = (1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2)  # log-spaced, factor 2, around TrainConfig's 3e-3
NEAR_FACTOR = 2.0  # an lr within this factor of the base's optimum is "near the optimum"


@dataclass(frozen=True)
class TransferCheck:
    """The check's result. Sizes are d_model (over="width") or n_layers (over="depth"), ascending;
    `losses[size][lr]` is the seed-mean final eval loss, None where a seed diverged or failed."""

    over: str
    parametrization: str
    sizes: tuple[int, ...]
    lrs: tuple[float, ...]
    steps: int
    seeds: int
    losses: dict[int, dict[float, float | None]]
    optimum_lr: dict[int, float]
    optimum_at_edge: dict[int, bool]  # the best grid lr is the grid's first or last: the optimum may lie beyond
    drift: float  # max / min of optimum_lr over sizes
    near_lrs: tuple[float, ...]  # the lrs the verdict reads (see the module doc)
    wider_is_better: bool
    why_not: str | None  # the first lr and sizes at which wider was not better; None when it was

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: sizes and lrs as keys become strings."""
        d = dataclasses.asdict(self)
        d["losses"] = {str(s): {repr(lr): v for lr, v in by_lr.items()} for s, by_lr in self.losses.items()}
        d["optimum_lr"] = {str(s): v for s, v in self.optimum_lr.items()}
        d["optimum_at_edge"] = {str(s): v for s, v in self.optimum_at_edge.items()}
        return d


def optimal_lr(points: dict[float, float | None]) -> tuple[float, bool]:
    """(optimum, at_edge): the argmin over lr of the loss, refined by the vertex of a parabola in log lr
    through its two neighbours (kept within one grid step); the grid point itself at an edge or beside
    a diverged point. `at_edge` says the best grid lr is the grid's first or last."""
    lrs = sorted(points)
    losses = [math.inf if points[lr] is None else points[lr] for lr in lrs]
    i = min(range(len(lrs)), key=lambda k: losses[k])
    at_edge = i in (0, len(lrs) - 1)
    if at_edge or not all(math.isfinite(losses[k]) for k in (i - 1, i, i + 1)):
        return lrs[i], at_edge
    x = [math.log(lrs[k]) for k in (i - 1, i, i + 1)]
    y = [losses[k] for k in (i - 1, i, i + 1)]
    left, right = x[1] - x[0], x[2] - x[1]
    # vertex of the parabola through three points (equal spacing in log lr is the usual case)
    num = (right**2) * (y[0] - y[1]) - (left**2) * (y[2] - y[1])
    den = right * (y[0] - y[1]) + left * (y[2] - y[1])
    shift = 0.5 * num / den if den > 0 else 0.0
    return math.exp(x[1] + max(-left, min(right, shift))), at_edge


def near_lrs(lrs: list[float] | tuple[float, ...], optimum: float, factor: float = NEAR_FACTOR) -> tuple[float, ...]:
    """The grid lrs within `factor` of `optimum` (inclusive), always with the grid lr closest to it."""
    closest = min(lrs, key=lambda lr: abs(math.log(lr / optimum)))
    return tuple(sorted({lr for lr in lrs if abs(math.log(lr / optimum)) <= math.log(factor) + 1e-9} | {closest}))


def wider_is_better(losses: dict[int, dict[float, float | None]], lrs: tuple[float, ...]) -> tuple[bool, str | None]:
    """Whether, at every lr in `lrs`, the loss falls strictly from each size to the next larger one;
    with the reason when not. A missing or diverged point (None) is never better."""
    sizes = sorted(losses)
    for lr in lrs:
        for small, large in zip(sizes, sizes[1:], strict=False):
            a, b = losses[small].get(lr), losses[large].get(lr)
            if a is None or b is None:
                return False, f"lr {lr:g}: size {small if a is None else large} diverged or failed"
            if not b < a:
                return False, f"lr {lr:g}: size {large} reached {b:.4f}, not below size {small}'s {a:.4f}"
    return True, None


def summarise(
    over: str,
    parametrization: str,
    losses: dict[int, dict[float, float | None]],
    steps: int,
    seeds: int,
) -> TransferCheck:
    """The result from a loss table {size: {lr: seed-mean final eval loss or None}}; the reference
    size for "near the optimum" is the smallest."""
    sizes = tuple(sorted(losses))
    lrs = tuple(sorted(losses[sizes[0]]))
    optimum, at_edge = {}, {}
    for size in sizes:
        optimum[size], at_edge[size] = optimal_lr(losses[size])
    near = near_lrs(lrs, optimum[sizes[0]])
    verdict, why = wider_is_better(losses, near)
    return TransferCheck(
        over=over,
        parametrization=parametrization,
        sizes=sizes,
        lrs=lrs,
        steps=steps,
        seeds=seeds,
        losses={s: dict(losses[s]) for s in sizes},
        optimum_lr=optimum,
        optimum_at_edge=at_edge,
        drift=max(optimum.values()) / min(optimum.values()),
        near_lrs=near,
        wider_is_better=verdict,
        why_not=why,
    )


def train_point(
    arch: ArchConfig, lr: float, seed: int, steps: int, batch_size: int, data: Any, threads: int | None = None
) -> float | None:
    """The final eval loss of `arch` trained `steps` optimizer steps at peak `lr` (cosine, 5% warmup,
    one evaluation at the end, no checkpoints); None if it diverged or failed."""
    from archscale.trainers.loop import train

    tokens = steps * batch_size * arch.seq_len
    eval_tokens = min(16_384, max(arch.seq_len, tokens))
    cfg = TrainConfig(
        lr=lr,
        tokens=tokens,
        batch_size=batch_size,
        seed=seed,
        eval_every_tokens=tokens,
        eval_tokens=eval_tokens,
        checkpoint_every_tokens=0,
        threads=threads,
    )
    summary = train(arch, cfg, data)
    return summary["eval_loss"] if summary["status"] == "completed" else None


def transfer_check(
    arch: ArchConfig,
    *,
    widths: list[int] | None = None,
    depths: list[int] | None = None,
    lrs: list[float] | tuple[float, ...] = DEFAULT_LRS,
    steps: int = 2000,
    seeds: int = 1,
    batch_size: int = 16,
    data: Any = "pystdlib",
) -> TransferCheck:
    """Train every size (widths or depths, not both) at every lr with `seeds` seeds; see the module doc."""
    from archscale.trainers.data import open_data

    if bool(widths) == bool(depths):
        raise UserError("give widths or depths (one of them): the check compares sizes along one dimension")
    sizes = sorted(widths or depths)
    if len(set(sizes)) < 2:
        raise UserError(f"give at least two different sizes to compare, got {sizes}")
    if len(set(lrs)) < 2 or min(lrs) <= 0:
        raise UserError(f"lrs: give at least two different positive learning rates, got {list(lrs)}")
    if steps < 1 or seeds < 1 or batch_size < 1:
        raise UserError(f"steps, seeds and batch_size must be >= 1, got {steps}, {seeds}, {batch_size}")
    over = "width" if widths else "depth"
    archs = {size: resized(arch, size, None) if widths else resized(arch, None, size) for size in sizes}
    source = open_data(data) if isinstance(data, str) else data
    if source.vocab_size > arch.vocab_size:
        raise UserError(f"vocab_size: data {source.name!r} needs vocab_size >= {source.vocab_size}")
    losses: dict[int, dict[float, float | None]] = {}
    for size, sized in archs.items():
        losses[size] = {}
        for lr in sorted(set(lrs)):
            runs = [train_point(sized, lr, seed, steps, batch_size, source) for seed in range(seeds)]
            losses[size][lr] = None if None in runs else sum(runs) / len(runs)
    return summarise(over, arch.parametrization, losses, steps, seeds)
