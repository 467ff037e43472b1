"""archscale.trainers: how one architecture is trained (no Ray, no Optuna in this path)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["build_model", "train", "TrainConfig"]

if TYPE_CHECKING:
    from archscale.trainers.model import build_model


def __getattr__(name: str) -> Any:
    # Lazy, so `import archscale.trainers` does not pull in torch until a model is needed.
    if name == "build_model":
        from archscale.trainers.model import build_model

        return build_model
    if name == "TrainConfig":  # defined torch-free beside ArchConfig; re-exported here
        from archscale.spaces.training import TrainConfig

        return TrainConfig
    if name == "train":
        from archscale.trainers.loop import train

        return train
    raise AttributeError(name)
