"""archscale.trainers: how one architecture is trained (no Ray, no Optuna in this path)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archscale.trainers.model import build_model


def __getattr__(name: str) -> Any:
    # Lazy, so `import archscale.trainers` does not pull in torch until a model is needed.
    if name == "build_model":
        from archscale.trainers.model import build_model

        return build_model
    if name in ("train", "TrainConfig"):
        from archscale.trainers import loop

        return getattr(loop, name)
    raise AttributeError(name)
