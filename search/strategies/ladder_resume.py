"""Resuming a ladder search: ladders rebuilt from the ladder study, rungs from the record study and trials.parquet.

`search resume` builds a fresh `LadderProposals` and calls `resume`: every ladder the ladder
study holds is rebuilt from its trial's parameters (the same rungs, solved the same way; a ladder
already told keeps its state), completed rungs keep their compute and loss, a failed rung ends
its ladder as it did, rungs being trained again are left to `rebuild`, and rungs never asked are
queued. Then what is complete is refitted. A mixin of `LadderProposals` (search/strategies/ladder.py),
whose ladder records and telling it uses.
"""

from __future__ import annotations

from typing import Any

from archscale.search.proposals import Proposal
from archscale.spaces.errors import UserError


class LadderResume:
    """The resume half of `LadderProposals`."""

    def resume(
        self, record: Any, own: dict[int, Any], rows: dict[int, dict[str, Any]], replaying: list[int]
    ) -> str | None:
        if not self.restored:
            self.restore_ladders()
        self.restore_rungs(record, rows, replaying)
        told = sum(lad["told"] for lad in self.ladders.values())
        return (
            f"ladder search: {len(self.ladders)} of {self.n_ladders} ladders asked, {told} told; "
            f"{len(self.queue)} rung(s) not started"
        )

    def rebuild(self, trial: Any) -> Proposal | None:
        if not self.restored:  # resume asks for interrupted rungs before `resume`: the ladders first
            self.restore_ladders()
        return self.proposal_for(trial)

    def restore_ladders(self) -> None:
        """Rebuild every ladder the ladder study holds from its trial's parameters (the same rungs,
        solved the same way); a ladder already told keeps its state. Rung outcomes: `restore_rungs`."""
        import optuna

        self.restored = True
        states = optuna.trial.TrialState
        ended = {states.COMPLETE: "done", states.PRUNED: "pruned", states.FAIL: "failed"}
        for t in self.study.get_trials(deepcopy=False):
            if t.state == states.WAITING:
                continue
            self.started += 1
            told = t.state.is_finished()
            lad = {"id": t.number, "state": ended.get(t.state, "first"), "rungs": {}, "specs": [], "told": told}
            lad["error"] = t.user_attrs.get("error")
            self.ladders[t.number] = lad
            if "arch" not in t.user_attrs:  # infeasible (told), or asked and never sampled
                if not told:
                    lad.update(state="failed", error="interrupted: the driver stopped before this ladder was sampled")
                    self._tell(lad, None)
                continue
            self._build(lad, optuna.trial.FixedTrial(dict(t.params), number=t.number))
            if lad["arch"] != t.user_attrs["arch"]:
                raise UserError(
                    f"ladder {t.number}: its parameters no longer give the architecture it was asked with "
                    "(was the space file changed?); resume needs the same space"
                )
            if "duplicate_of" in t.user_attrs:
                lad.update(state="duplicate", of=int(t.user_attrs["duplicate_of"]))
        for lad in self.ladders.values():  # a duplicate whose twin was told while the driver was dying
            twin = self.ladders.get(lad.get("of"))
            if lad["state"] == "duplicate" and not lad["told"] and twin is not None and twin["told"]:
                self._tell_copy(lad, twin)

    def proposal_for(self, trial: Any) -> Proposal | None:
        """The proposal a rung trial of the record study was asked with (None if it is not a rung)."""
        where = self.rung_of.get(trial.number) or (trial.user_attrs.get("ladder"), trial.user_attrs.get("rung"))
        lad = self.ladders.get(where[0])
        if lad is None or not lad["specs"] or where[1] is None:
            return None
        self.rung_of[trial.number] = (lad["id"], int(where[1]))
        return self._proposal(trial.number, lad["specs"][int(where[1])])

    def restore_rungs(self, record: Any, rows: dict[int, dict[str, Any]], replaying: list[int]) -> None:
        """Put each rung trial of the record study back in its ladder: a completed rung keeps its
        compute and loss, a failed one ends its ladder as it did, one in `replaying` will be trained
        again under its own number; rungs never asked are queued. Then refit what is complete."""
        import optuna

        asked: dict[int, set[int]] = {}
        for t in record.get_trials(deepcopy=False):
            if t.user_attrs.get("ladder") not in self.ladders or t.user_attrs.get("rung") is None:
                continue
            lad, rung = self.ladders[t.user_attrs["ladder"]], int(t.user_attrs["rung"])
            self.rung_of[t.number] = (lad["id"], rung)
            asked.setdefault(lad["id"], set()).add(rung)
            row = rows.get(t.number) or {}
            if t.state == optuna.trial.TrialState.COMPLETE:
                spec = lad["specs"][rung] if lad["specs"] else {}
                compute = row.get("compute") or spec.get("counts", {}).get("flops_per_token", 0) * spec.get("tokens", 0)
                loss = row.get("eval_loss") if row.get("eval_loss") is not None else t.values[0]
                lad["rungs"][rung] = (float(compute), float(loss))
            elif t.number not in replaying and not lad["told"]:
                lad.update(state="failed", error=f"rung {rung} {t.state.name.lower()}: {row.get('error')}")
                self._tell(lad, None)
        for lad in self.ladders.values():
            if lad["told"] or lad["state"] != "first":
                continue
            if len(lad["rungs"]) == self.ladder.rungs:
                lad["state"] = "done"
            elif 0 in lad["rungs"]:
                lad["state"] = "rest"
                self.queue.extend(s for s in lad["specs"][1:] if s["rung"] not in asked.get(lad["id"], set()))
            elif 0 not in asked.get(lad["id"], set()):
                self.queue.append(lad["specs"][0])
        if any(lad["state"] == "done" for lad in self.ladders.values()):
            self._refit(final=False)
