"""Early stopping measured in tokens seen, and multi-objective (Pareto) early stopping.

ASHA (Ray Tune's `AsyncHyperBandScheduler`) runs on `time_attr="tokens"`, so rungs are token
counts, not iterations: trials with different evaluation intervals compare at equal tokens.

Multi-objective early stopping rule. Parameter, FLOP and KV-cache costs are known before
training. A running trial t at `tokens` = τ is stopped when some *completed* trial f
  1. costs no more than t on every cost objective of the search (params, flops_per_token, ...), and
  2. had already reached a lower eval loss at τ tokens than t has now (f's loss at τ is read
     from its curve: its last evaluation at or before τ, which is conservative because loss falls),
provided τ is at least `min_fraction` of t's budget (default 1/4: early losses are noisy), and f is
another architecture: seed replicas of one architecture never stop each other (they exist to measure
seed noise; stopping the replica that looks worse would bias that measurement and leave the
architecture with one seed, depending only on which replica finished first).
Such a t cannot end on the Pareto front unless its loss curve crosses f's later, which at equal
or larger cost is the rare case; the rule trades that risk for compute. It is applied before the
wrapped scheduler (ASHA or FIFO) sees the result.
"""

from __future__ import annotations

import bisect
from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from archscale.search.storage import COST_OBJECTIVES
from archscale.spaces.errors import UserError


class ParetoStoppingMixin:
    def _pareto_init(self, cost_objectives: list[str], min_fraction: float = 0.25) -> None:
        self.cost_objectives = list(cost_objectives)
        self.min_fraction = min_fraction
        self._curves: dict[str, tuple[list[int], list[float]]] = {}
        self._finished: list[tuple[str | None, dict[str, float], list[int], list[float]]] = []
        self.pareto_stopped: set[str] = set()

    def _record(self, trial_id: str, result: dict[str, Any]) -> None:
        loss, tokens = result.get("eval_loss"), result.get("tokens")
        if loss is None or tokens is None or result.get("status") != "running":
            return
        xs, ys = self._curves.setdefault(trial_id, ([], []))
        xs.append(int(tokens))
        ys.append(float(loss))

    def _dominated(self, result: dict[str, Any], arch: str | None = None) -> bool:
        if not self.cost_objectives or result.get("status") != "running":
            return False
        tau, loss = result.get("tokens"), result.get("eval_loss")
        target = result.get("target_tokens") or 0
        if tau is None or loss is None or tau < self.min_fraction * target or tau >= target:
            return False  # too early to judge, or already at budget (its summary report is next)
        costs = {c: result.get(c) for c in self.cost_objectives}  # a TrialReport carries its counts
        for f_arch, f_costs, xs, ys in self._finished:
            if arch is not None and f_arch == arch:
                continue  # its own seed replica
            if all(_le(f_costs.get(c), costs.get(c)) for c in self.cost_objectives):
                i = bisect.bisect_right(xs, tau) - 1
                if i >= 0 and ys[i] < loss:
                    return True
        return False

    def _complete(self, trial_id: str, result: dict[str, Any] | None, arch: str | None = None) -> None:
        xs, ys = self._curves.pop(trial_id, ([], []))
        if result and result.get("status") == "completed" and xs:
            self._finished.append((arch, {c: result.get(c) for c in self.cost_objectives}, xs, ys))

    # The scheduler interface: Pareto stopping first, then the wrapped scheduler (next in the MRO).
    def on_trial_result(self, tune_controller, trial, result):
        self._record(trial.trial_id, result)
        if self._dominated(result, architecture_of(trial)):
            self.pareto_stopped.add(trial.trial_id)
            return TrialScheduler.STOP
        if result.get("status") != "running" or result.get("tokens", 0) >= result.get("target_tokens", float("inf")):
            return TrialScheduler.CONTINUE  # at budget, or a summary: let the trial report and complete
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result):
        self._complete(trial.trial_id, result, architecture_of(trial))
        return super().on_trial_complete(tune_controller, trial, result)


def architecture_of(trial: Any) -> str | None:
    """A Tune trial's architecture as a comparable key (its proposal's `arch`), None when unknown."""
    import json

    arch = (getattr(trial, "config", None) or {}).get("arch")
    return json.dumps(arch, sort_keys=True, default=str) if arch else None


def _le(a: float | None, b: float | None) -> bool:
    """a <= b for costs, where an unknown cost never dominates."""
    return a is not None and b is not None and a <= b


class ParetoASHA(ParetoStoppingMixin, AsyncHyperBandScheduler):
    def __init__(self, cost_objectives: list[str], min_fraction: float = 0.25, **kwargs: Any):
        AsyncHyperBandScheduler.__init__(self, **kwargs)
        self._pareto_init(cost_objectives, min_fraction)


class ParetoFIFO(ParetoStoppingMixin, FIFOScheduler):
    def __init__(self, cost_objectives: list[str], min_fraction: float = 0.25):
        FIFOScheduler.__init__(self)
        self._pareto_init(cost_objectives, min_fraction)


def make_scheduler(
    name: str, objectives: list[str], max_tokens: int, grace_fraction: float = 1 / 13.5, reduction_factor: float = 3.0
):
    """`asha` or `none`; either with Pareto stopping when cost objectives are being searched.

    ASHA's rungs sit at budget/13.5, budget/4.5 and budget/1.5 tokens (reduction factor 3), all
    below the budget, so a trial that reaches its budget always completes and reports its summary.
    """
    costs = [o for o in objectives if o in COST_OBJECTIVES]
    if name == "asha":
        # max_t above the budget: ASHA stops a trial at max_t, which would cut off its final summary
        # report (trainers round the budget up to whole steps); the last real rung stays below budget.
        return ParetoASHA(
            costs,
            time_attr="tokens",
            metric="eval_loss",
            mode="min",
            max_t=max(2, 2 * max_tokens),
            grace_period=max(1, int(max_tokens * grace_fraction)),
            reduction_factor=reduction_factor,
        )
    if name == "none":
        return ParetoFIFO(costs)
    raise UserError(f"--scheduler: got {name!r}; allowed: asha, none")
