"""The space strategy (a search): Optuna samples a space file define-by-run; the space solves each sample to its budget.

Seed replicas are enqueued Optuna trials with the same parameters and a `seed` user attribute.
An infeasible sample becomes a failed trial with the reason. Its state is the number of trials it
has asked; everything else is in the record study, from whose parameters `rebuild` replays a
proposal (`optuna.trial.FixedTrial`).
"""

from __future__ import annotations

from typing import Any

from archscale.search.proposals import Proposal, TrialPlan
from archscale.search.strategies.contract import ProposalStrategy
from archscale.spaces.errors import BudgetError, UserError
from archscale.spaces.space import Space


class SpaceProposals(ProposalStrategy):
    """`trials` Optuna trials (architectures x seeds) sampled from `space`."""

    name = "space"

    def __init__(self, space: Space, plan: TrialPlan, trials: int):
        self.space = space
        self.plan = plan
        self.trials = trials
        self.proposed = 0

    @property
    def total(self) -> int:
        return max(0, self.trials - self.proposed)

    def max_tokens(self) -> int:
        return self.plan.max_tokens(self.space)

    def propose(self, study: Any) -> Proposal | None:
        if self.proposed >= self.trials:
            return None
        self.proposed += 1
        trial = study.ask()
        seed = int(trial.user_attrs.get("seed", self.plan.base_seed))
        error, arch, train, counts = None, None, {}, None
        try:
            sample = self.space.sample(trial)
            arch, train, counts = sample.arch.to_dict(), dict(sample.train), sample.counts.to_dict()
            trial.set_user_attr("arch", arch)
            trial.set_user_attr("counts", counts)
            trial.set_user_attr("budget_deviation", sample.deviation)
        except (BudgetError, ValueError) as e:
            error = f"infeasible: {e}"
            # Optuna's constraint record (optuna-dashboard and `study.trials[i].constraints` show it);
            # its samplers read constraints only from completed trials, and this one has no loss to
            # tell, so it stays FAIL with the reason rather than being told a made-up value
            trial.set_constraint("budget", 1.0)
        trial.set_user_attr("seed", seed)
        if "replica_of" not in trial.user_attrs and arch is not None:
            for s in range(1, self.plan.seeds):  # seed replicas: same parameters, another seed
                study.enqueue_trial(
                    trial.params, user_attrs={"seed": self.plan.base_seed + s, "replica_of": trial.number}
                )
        tokens = self.plan.tokens_for(counts) if counts else 0
        trial.set_user_attr("target_tokens", tokens)
        return Proposal(
            number=trial.number,
            seed=seed,
            arch=arch,
            counts=counts,
            train={**self.plan.train_defaults, **train, "tokens": tokens, "seed": seed},
            data=self.plan.data,
            target_tokens=tokens,
            group=self.plan.group,
            error=error,
        )

    def state(self) -> dict[str, Any]:
        return {"proposed": self.proposed}

    def restore(self, state: dict[str, Any]) -> None:
        self.proposed = int(state.get("proposed", self.proposed))

    def resume(
        self, record: Any, own: dict[int, Any], rows: dict[int, dict[str, Any]], replaying: list[int]
    ) -> str | None:
        self.proposed = len(own)  # the study holds every trial this directory asked
        return None

    def rebuild(self, trial: Any) -> Proposal | None:
        return replay_proposal(self.space, self.plan, trial)


def replay_proposal(space: Space, plan: TrialPlan, t: Any) -> Proposal | None:
    """The proposal an Optuna trial was asked with, rebuilt from its parameters (None if it has none yet)."""
    import optuna

    if "seed" not in t.user_attrs or ("arch" not in t.user_attrs and not t.params):
        return None
    seed = int(t.user_attrs["seed"])
    try:
        sample = space.sample(optuna.trial.FixedTrial(dict(t.params), number=t.number))
    except (BudgetError, ValueError) as e:
        error = f"infeasible: {e}"
        return Proposal(t.number, seed, None, None, {}, plan.data, 0, plan.group, error=error)
    arch, counts = sample.arch.to_dict(), sample.counts.to_dict()
    if t.user_attrs.get("arch") not in (None, arch):
        raise UserError(
            f"trial {t.number}: its parameters no longer give the architecture it was asked with "
            "(was the space file changed?); resume needs the same space"
        )
    tokens = plan.tokens_for(counts)
    return Proposal(
        number=t.number,
        seed=seed,
        arch=arch,
        counts=counts,
        train={**plan.train_defaults, **sample.train, "tokens": tokens, "seed": seed},
        data=plan.data,
        target_tokens=tokens,
        group=plan.group,
    )
