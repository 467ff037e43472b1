"""`RunStatus`: how one training run ended, the trainer's typed outcome (torch-free, so `search` reads it).

`archscale.trainers.train` decides it once, where it is known, and puts it in its summary
(`summary["status"]`, also in `summary.json` as its string value); `search/trial.py` maps it to a
trial's `TrialStatus` by the member, never by reading error text.
"""

from __future__ import annotations

import enum


class RunStatus(str, enum.Enum):
    """A training run's end. A `str` enum, so `summary.json` holds the plain value ("diverged")."""

    COMPLETED = "completed"  # trained to its full token budget
    STOPPED = "stopped"  # `report()` asked it to stop (a scheduler's early stop)
    DIVERGED = "diverged"  # a non-finite loss or gradient norm, or the loss rule of `trainers.loop.diverged`
    FAILED = "failed"  # an exception ended it (it propagates; summary.json records it)

    def __str__(self) -> str:
        return self.value
