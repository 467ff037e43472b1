"""Choosers: where a sampled value comes from (an Optuna trial, a random generator), behind one protocol."""

from __future__ import annotations

import math
import random
from typing import Any, Protocol


class Chooser(Protocol):
    def categorical(self, name: str, choices: list[Any]) -> Any: ...
    def integer(self, name: str, low: int, high: int, log: bool, step: int) -> int: ...
    def real(self, name: str, low: float, high: float, log: bool, step: float | None) -> float: ...


class OptunaChooser:
    def __init__(self, trial: Any):
        self.trial = trial

    def categorical(self, name: str, choices: list[Any]) -> Any:
        return self.trial.suggest_categorical(name, choices)

    def integer(self, name: str, low: int, high: int, log: bool, step: int) -> int:
        return self.trial.suggest_int(name, low, high, log=log, step=1 if log else step)

    def real(self, name: str, low: float, high: float, log: bool, step: float | None) -> float:
        return self.trial.suggest_float(name, low, high, log=log, step=None if log else step)


class RandomChooser:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def categorical(self, name: str, choices: list[Any]) -> Any:
        return self.rng.choice(choices)

    def integer(self, name: str, low: int, high: int, log: bool, step: int) -> int:
        if log:
            return int(round(math.exp(self.rng.uniform(math.log(low), math.log(high)))))
        return low + step * self.rng.randint(0, (high - low) // step)

    def real(self, name: str, low: float, high: float, log: bool, step: float | None) -> float:
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        x = self.rng.uniform(low, high)
        return low + round((x - low) / step) * step if step else x
