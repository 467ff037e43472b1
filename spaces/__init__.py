"""archscale.spaces: what an architecture is, how it is sampled, counted and solved to a budget.

No torch, no Ray: everything here is plain Python so it can run anywhere, fast.
"""

from archscale.spaces.arch import ArchConfig
from archscale.spaces.counting import Counts, count
from archscale.spaces.errors import BudgetError, SpaceError

__all__ = ["ArchConfig", "Counts", "count", "BudgetError", "SpaceError"]
