"""Proposal strategies: where a run's trials come from, each behind the one contract in `contract.py`.

    space    a search: Optuna samples a space file (space.py)
    grid     a scaling study: planned grid points (grid.py)
    ladder   a ladder search: each architecture trained at a ladder of sizes and judged by the loss
             its fitted law predicts at the target (ladder.py, with its plan, resume, predictions
             and validation in ladder_*.py)

`replay.py` wraps any of them for `search resume`. Modules are imported when used, so this
package stays light.
"""

from __future__ import annotations

import importlib

#: strategy name -> "module:class" (imported when asked for); the contract suite runs every entry
STRATEGIES = {
    "space": "archscale.search.strategies.space:SpaceProposals",
    "grid": "archscale.search.strategies.grid:GridProposals",
    "ladder": "archscale.search.strategies.ladder:LadderProposals",
}


def strategy_class(name: str) -> type:
    """The strategy class registered under `name`."""
    module, cls = STRATEGIES[name].split(":")
    return getattr(importlib.import_module(module), cls)
