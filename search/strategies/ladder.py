"""The ladder strategy: choose the architecture by the loss it is predicted to reach at the target scale.

    archscale search run SPACE --target-compute C [--ladder K] [--ladder-ratio R] [--risk mean|ucb]

For each architecture Optuna proposes (a trial of the *ladder study*, whose objective is
`predicted_loss`), `LadderProposals` derives K sizes from the space's budget (budget, budget x R,
budget x R^2, ...; each solved by the budget solver with the same sampled choices; tokens by the
search's rule) and runs each size (rung) as its own Ray Tune trial, recorded in the search's
ordinary study and trials.parquet (with `ladder_id` and `rung`). Rung 0 runs first; a ladder whose
rung 0 is behind the best rung 0 so far by more than `prune_margin` nats (equal budgets, so equal
compute up to the solver's tolerance) is stopped there and told to Optuna as PRUNED. The others
run their larger rungs in parallel.

When a ladder completes, every complete ladder is refitted jointly (`archscale.analysis.laws.ladder`:
each architecture its own A and alpha in compute, one shared E), and each ladder whose law is
identified is told its predicted loss at the target compute (`--risk ucb`: the upper end of its
95% interval). A ladder whose law is not identified is told FAIL with the reason; ladders that
finish before a second ladder exists wait (RUNNING) until the joint fit can identify them.
Predictions go to DIR/predictions.parquet after every refit, from the latest joint fit.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

from archscale.search.proposals import Proposal, TrialPlan
from archscale.search.storage import COST_OBJECTIVES, StudySpec
from archscale.search.strategies.contract import WAIT, ProposalStrategy
from archscale.search.strategies.ladder_plan import LadderPlan, ReplayChooser, at_target, rung_space
from archscale.search.strategies.ladder_resume import LadderResume
from archscale.spaces.errors import BudgetError
from archscale.spaces.record import TrialStatus
from archscale.spaces.space import Space


class LadderProposals(LadderResume, ProposalStrategy):
    """A ladder search (see the module docstring). `study` given to `propose` is the search's
    record of trained models; `ladders` is the study Optuna samples architectures in."""

    name = "ladder"
    early_stopping = False  # rungs of different sizes: no early stopping across them
    ray_restorable = False  # a restored searcher would replay proposals out of step with the two studies

    def __init__(
        self, space: Space, plan: TrialPlan, ladder: LadderPlan, ladders: StudySpec, n_ladders: int, out: str | Path
    ):
        self.space, self.plan, self.ladder, self.ladders_spec = space, plan, ladder, ladders
        self.n_ladders, self.out = n_ladders, str(out)
        self.started = 0
        self.queue: list[dict[str, Any]] = []  # rungs ready to run
        self.ladders: dict[int, dict[str, Any]] = {}
        self.rung_of: dict[int, tuple[int, int]] = {}  # record-study number -> (ladder, rung)
        self._study = None
        self.fit = None  # the latest joint fit (analysis.laws.ladder_record.LadderFit)
        self.restored = False  # rebuilt from the ladder study (`restore_ladders`, on resume)

    @property
    def study(self):
        if self._study is None:
            self._study = self.ladders_spec.open()
        return self._study

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_study": None}

    # ---- proposals ---------------------------------------------------------------------------------
    def propose(self, study: Any) -> Proposal | str | None:
        while not self.queue and self.started < self.n_ladders:  # a duplicate queues nothing: ask again
            self._start_ladder()
        if self.queue:
            return self._rung_proposal(study, self.queue.pop(0))
        active = [lad for lad in self.ladders.values() if lad["state"] in ("first", "rest")]
        return WAIT if active else None

    def _start_ladder(self) -> None:
        trial = self.study.ask()
        self.started += 1
        lad = {"id": trial.number, "state": "first", "rungs": {}, "specs": [], "told": False, "error": None}
        self.ladders[trial.number] = lad
        try:
            self._build(lad, trial)
        except (BudgetError, ValueError) as e:
            lad.update(state="failed", error=f"infeasible: {e}")
            self._tell(lad, None)
            self.queue.append({"ladder": lad["id"], "rung": 0, "error": lad["error"], "seed": self.plan.base_seed})
            return
        for key in ("arch", "label", "target_compute", "target_counts"):
            trial.set_user_attr(key, lad[key])
        twin = self._twin(lad)
        if twin is None:
            self.queue.append(lad["specs"][0])
            return
        # Optuna proposed an architecture it already has (common in small categorical spaces): the same
        # rungs with the same seed would train to the same losses, and would count twice in the joint fit
        trial.set_user_attr("duplicate_of", twin["id"])
        lad.update(state="duplicate", of=twin["id"])
        if twin["told"]:
            self._tell_copy(lad, twin)

    def _twin(self, lad: dict[str, Any]) -> dict[str, Any] | None:
        """An earlier ladder with the same rungs (architecture, training, tokens, seed), or None."""

        def key(one: dict[str, Any]) -> list[Any]:
            return [(s["arch"], s["train"], s["tokens"], s["seed"]) for s in one["specs"]]

        return next(
            (
                o
                for o in self.ladders.values()
                if o is not lad and o["state"] != "duplicate" and o["specs"] and key(o) == key(lad)
            ),
            None,
        )

    def _tell_copy(self, lad: dict[str, Any], twin: dict[str, Any]) -> None:
        """Tell a duplicate ladder what its twin was told."""
        import optuna

        t = self.study._storage.get_trial(
            self.study._storage.get_trial_id_from_study_id_trial_number(self.study._study_id, twin["id"])
        )
        lad["error"] = f"the same rungs as ladder {twin['id']}, which was trained; told its outcome" + (
            f" ({twin['error']})" if twin.get("error") else ""
        )
        if t.state == optuna.trial.TrialState.COMPLETE:
            lad["told"] = True
            self.study.tell(lad["id"], list(t.values))
        else:
            self._tell(lad, None, pruned=t.state == optuna.trial.TrialState.PRUNED)

    def _build(self, lad: dict[str, Any], trial: Any) -> None:
        """Fill in a ladder's rungs (each solved by the budget solver with the choices `trial` makes)
        and its size at the target. Raises BudgetError / ValueError for an infeasible ladder."""
        seed = self.plan.base_seed
        first = self.space.sample(trial)
        params = dict(trial.params)
        for rung in range(self.ladder.rungs):
            sample = (
                first
                if rung == 0
                else rung_space(self.space, rung, self.ladder.ratio).sample_with(ReplayChooser(params))
            )
            lad["specs"].append(self._spec(lad["id"], rung, sample, seed))
        target, target_compute = at_target(self.space, self.plan, self.ladder, params)
        arch = first.arch
        lad.update(
            arch_id=arch.arch_id,
            label=arch.label,
            arch=arch.to_dict(),
            target_compute=target_compute,
            target_counts=target.counts.to_dict(),
            target_arch=target.arch.to_dict(),
            params=params,
        )

    def _spec(self, ladder_id: int, rung: int, sample: Any, seed: int) -> dict[str, Any]:
        arch = sample.arch.to_dict()
        if rung > 0 and arch.get("parametrization", "standard") != "standard":
            # transfer: every rung is parametrised against rung 0's shape, so its tuned lr carries over;
            # only the base shapes its parametrisation reads (mup: widths; completep: depth too)
            from archscale.spaces.variants import PARAMETRIZATIONS

            reads = PARAMETRIZATIONS[arch["parametrization"]]
            base = self.ladders[ladder_id]["specs"][0]["arch"]
            for key in ("d_model", "head_dim", "d_ff", "n_layers"):
                if getattr(reads, "depth" if key == "n_layers" else "width"):
                    arch[f"base_{key}"] = base[key]
        tokens = self.plan.tokens_for(sample.counts)
        return {
            "ladder": ladder_id,
            "rung": rung,
            "arch": arch,
            "counts": sample.counts.to_dict(),
            "train": dict(sample.train),
            "tokens": tokens,
            "seed": seed,
            "error": None,
        }

    def _rung_proposal(self, study: Any, spec: dict[str, Any]) -> Proposal:
        trial = study.ask()
        for key in ("ladder", "rung", "seed"):
            trial.set_user_attr(key, spec[key])
        if spec.get("arch"):
            trial.set_user_attr("arch", spec["arch"])
        self.rung_of[trial.number] = (spec["ladder"], spec["rung"])
        return self._proposal(trial.number, spec)

    def _proposal(self, number: int, spec: dict[str, Any]) -> Proposal:
        tokens = spec.get("tokens", 0)
        return Proposal(
            number=number,
            seed=spec["seed"],
            arch=spec.get("arch"),
            counts=spec.get("counts"),
            train={**self.plan.train_defaults, **spec.get("train", {}), "tokens": tokens, "seed": spec["seed"]},
            data=self.plan.data,
            target_tokens=tokens,
            group=self.plan.group,
            ladder=(spec["ladder"], spec["rung"]),
            error=spec.get("error"),
        )

    # ---- outcomes --------------------------------------------------------------------------------
    def finished(self, number: int, status: TrialStatus, report: Any) -> None:
        if number not in self.rung_of:
            return
        ladder_id, rung = self.rung_of[number]
        lad = self.ladders[ladder_id]
        if lad["state"] in ("failed", "pruned"):
            return
        if status != TrialStatus.COMPLETED or report is None or report.final_loss is None:
            lad.update(state="failed", error=f"rung {rung} {status.value}: {getattr(report, 'error', None)}")
            self._tell(lad, None)
            return
        lad["rungs"][rung] = (float(report.compute), float(report.final_loss))
        if rung == 0:
            best = min(
                (
                    other["rungs"][0][1]
                    for other in self.ladders.values()
                    if other is not lad and 0 in other.get("rungs", {})
                ),
                default=None,
            )
            if best is not None and report.final_loss > best + self.ladder.prune_margin:
                lad.update(
                    state="pruned",
                    error=(
                        f"rung 0 loss {report.final_loss:.4f} is more than "
                        f"{self.ladder.prune_margin} nats behind the best rung 0 ({best:.4f})"
                    ),
                )
                self._tell(lad, None, pruned=True)
                self._write_predictions()
                return
            lad["state"] = "rest"
            self.queue.extend(lad["specs"][1:])
        if len(lad["rungs"]) == self.ladder.rungs:
            lad["state"] = "done"
            self._refit(final=False)

    def _refit(self, final: bool) -> None:
        from archscale.analysis import fit_ladders

        done = {i: lad for i, lad in self.ladders.items() if lad["state"] == "done"}
        fit = fit_ladders({i: tuple(zip(*lad["rungs"].values(), strict=True)) for i, lad in done.items()})
        self.fit = fit
        for i, lad in done.items():
            if lad["told"]:
                continue
            law = fit.laws[i]
            if law.identified:
                pred = fit.predict(i, lad["target_compute"])
                if pred is not None and math.isfinite(pred[2]):
                    self._tell(lad, pred[2] if self.ladder.risk == "ucb" else pred[0])
                    continue
                law_reason = "too few bootstrap refits to form an interval"
            else:
                law_reason = law.reason
            if final or fit.identified or len(done) >= 2:  # more ladders will not fix this one
                lad["error"] = law_reason
                self._tell(lad, None)
        self._write_predictions(fit)

    def close(self) -> None:
        """At the end of the run: ladders still waiting for a joint fit are told why they failed."""
        self._refit(final=True)

    def _tell(self, lad: dict[str, Any], predicted: float | None, pruned: bool = False) -> None:
        import optuna

        if lad["told"]:
            return
        lad["told"] = True
        number = lad["id"]
        if lad.get("error"):
            storage = self.study._storage
            trial_id = storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
            storage.set_trial_user_attr(trial_id, "error", lad["error"][:2000])
        if predicted is None:
            state = optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.FAIL
            self.study.tell(number, state=state)
        else:
            counts = lad.get("target_counts") or {}
            values = [
                predicted if o == "predicted_loss" else float(counts[o])
                for o in self.ladders_spec.objectives
                if o == "predicted_loss" or o in COST_OBJECTIVES
            ]
            self.study.tell(number, values)
        for other in self.ladders.values():
            if other.get("of") == number and not other["told"]:
                self._tell_copy(other, lad)

    def _write_predictions(self, fit: Any = None) -> None:
        from archscale.search.strategies.ladder_predictions import write_predictions

        write_predictions(Path(self.out), self.ladders, fit or self.fit, self.ladder)  # the latest fit, always

    # ---- the contract's remaining calls ------------------------------------------------------
    @property
    def total(self) -> int:
        return len(self.queue) + max(0, self.n_ladders - self.started) * self.ladder.rungs

    def max_tokens(self) -> int:
        return self.plan.max_tokens(rung_space(self.space, self.ladder.rungs - 1, self.ladder.ratio))

    def record(self) -> dict[str, Any]:
        ladder, spec = self.ladder, self.ladders_spec
        return {
            "kind": "ladder-search",
            "ladder": {
                "rungs": ladder.rungs,
                "ratio": ladder.ratio,
                "risk": ladder.risk,
                "target_compute": ladder.target_compute,
                "target_params": ladder.target_params,
                "prune_margin": ladder.prune_margin,
            },
            "ladder_study": spec.study_name,
            "objectives": [{"name": o, "direction": d} for o, d in zip(spec.objectives, spec.directions, strict=True)],
        }

    def conclude(self, opts: Any) -> dict[str, Any]:
        """`--validate-top K`: the top K trained at a held-out scale (ladder_validate.py), once per directory."""
        out = Path(self.out)
        if not self.ladder.validate_top or (out / "validation.parquet").exists():
            return {}
        run = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
        if "validation" in run:
            return {}
        from archscale.search.strategies.ladder_validate import validate_top

        return {"validation": validate_top(self, opts, self.ladder.validate_top, self.ladder.validate_compute)}

    def state(self) -> dict[str, Any]:
        keep = ("started", "ladders", "queue", "rung_of")
        return copy.deepcopy({key: getattr(self, key) for key in keep})

    def restore(self, state: dict[str, Any]) -> None:
        self.started = int(state.get("started", self.started))
        for key in ("ladders", "queue", "rung_of"):
            if key in state:
                setattr(self, key, copy.deepcopy(state[key]))
        if any(lad["state"] == "done" for lad in self.ladders.values()):
            self._refit(final=False)  # the latest joint fit, as the original held it
