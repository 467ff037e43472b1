"""Ladder search: proposals, pruning, the joint fit told to Optuna, predictions.parquet.

The strategy is driven the way the searcher drives it, with a real Optuna study on disk and
training outcomes drawn from known laws (no Ray: training is not what is tested here); a slow test
runs a small ladder search end to end with real Ray and real training.
"""

from __future__ import annotations

import json
import math

import optuna
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from archscale.search.cli import app
from archscale.search.options import SearchOptions, ladder_study, prepare
from archscale.search.strategies.contract import WAIT
from archscale.search.strategies.ladder import LadderProposals
from archscale.search.strategies.ladder_plan import LadderPlan
from archscale.search.trial import TrialReport
from archscale.spaces.errors import UserError
from archscale.spaces.record import TrialStatus
from tests.helpers import FOUR_ACTIVATIONS

SPACE = {**FOUR_ACTIVATIONS, "name": "ladder"}
# the truth each activation's rungs are drawn from: L = 1.5 + A (C / 1e9)^-alpha
LAWS = {"relu": (3.0, 0.30), "swiglu": (2.0, 0.20), "gelu": (3.5, 0.35), "geglu": (2.6, 0.25)}


def _options(tmp_path, **kw) -> SearchOptions:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    base = dict(
        space=str(space),
        out=str(tmp_path / "out"),
        trials=4,
        tokens_per_param=4,
        sampler="random",
        target_compute=1e12,
        progress=False,
    )
    return SearchOptions.from_args({**base, **kw})


def _setup(tmp_path, **kw):
    opts = _options(tmp_path, **kw)
    space, study_spec, plan = prepare(opts)
    ladders = ladder_study(opts, study_spec)
    given = opts.strategy.ladder
    ladder = LadderPlan(rungs=3, ratio=2.0, target_compute=given.target_compute, prune_margin=given.prune_margin)
    (tmp_path / "out").mkdir(exist_ok=True)
    return LadderProposals(space, plan, ladder, ladders, opts.trials, tmp_path / "out"), study_spec, ladders


def _loss(p, seen: int, noise: float) -> tuple[float, float]:
    A, alpha = LAWS[p.arch["ffn_activation"]]
    compute = p.counts["flops_per_token"] * p.target_tokens
    return compute, 1.5 + A * (compute / 1e9) ** -alpha + noise * math.sin(seen)  # deterministic "noise"


def _loop(proposals, record, noise: float = 0.0, stop_after: int | None = None):
    """Drive the strategy as the searcher does; with `stop_after`, stop (the driver dies) after that
    many trials finished, leaving the running ones RUNNING. Returns (ladder, rung) in order of finishing."""
    running, order, seen = [], [], 0
    while stop_after is None or seen < stop_after:
        p = proposals.propose(record)
        if p is None:
            break
        if p != WAIT:
            running.append(p)
            continue
        assert running, "WAIT with nothing running would hang the search"
        done = running.pop(0)
        order.append(done.ladder)
        seen += 1
        compute, loss = _loss(done, seen, noise)
        record.tell(done.number, loss)
        report = TrialReport(
            trial_number=done.number,
            seed=0,
            status=TrialStatus.COMPLETED,
            target_tokens=done.target_tokens,
            tokens=done.target_tokens,
            compute=compute,
            eval_loss=loss,
        )
        proposals.finished(done.number, TrialStatus.COMPLETED, report)
    if stop_after is None:
        order.extend(p.ladder for p in running)  # anything left once the strategy is finished
    return order


def _drive(tmp_path, noise: float = 0.0, **kw):
    proposals, study_spec, ladders = _setup(tmp_path, **kw)
    order = _loop(proposals, study_spec.open(), noise)
    proposals.close()
    return proposals, ladders.open(), order


def test_every_ladder_is_told_and_predictions_match_the_truth(tmp_path):
    proposals, ladders, order = _drive(tmp_path, ladder_prune_margin=10.0)
    trials = ladders.get_trials(deepcopy=False)
    assert len(trials) == 4 and all(t.state.is_finished() for t in trials)
    pred = pl.read_parquet(tmp_path / "out" / "predictions.parquet")
    assert pred.height == 4
    for row in pred.iter_rows(named=True):
        if row["status"] != "predicted":
            continue
        act = row["label"].split("·")[0]
        A, alpha = LAWS[act]
        truth = 1.5 + A * (row["target_compute"] / 1e9) ** -alpha
        assert row["predicted_loss"] == pytest.approx(truth, abs=2e-3)
        told = next(t for t in trials if t.number == row["ladder_id"])
        assert told.values[0] == pytest.approx(row["predicted_loss"])
    assert (pred["status"] == "predicted").sum() >= 2
    # the probability of being best at the target: over the predicted ladders, summing to 1, highest
    # for the lowest predicted loss
    ranked = pred.filter(pl.col("status") == "predicted").sort("predicted_loss")
    assert ranked["p_best"].null_count() == 0 and ranked["p_best"].sum() == pytest.approx(1.0)
    assert ranked["p_best"].arg_max() == 0
    # rung 0 of a ladder always runs before its larger rungs
    for ladder_id in {lid for lid, _ in order}:
        rungs = [r for lid, r in order if lid == ladder_id]
        assert rungs[0] == 0 and sorted(rungs) == rungs


def test_an_architecture_proposed_again_is_told_its_twins_outcome_without_training(tmp_path):
    # 8 ladders from 4 activations: at least 4 are duplicates
    proposals, ladders, order = _drive(tmp_path, ladder_prune_margin=10.0, trials=8)
    copies = [lad for lad in proposals.ladders.values() if lad["state"] == "duplicate"]
    assert len(copies) >= 4 and not copies[0]["rungs"]
    assert len(order) == 3 * (8 - len(copies)), "a duplicate trains no rung"
    told = {t.number: t for t in ladders.get_trials(deepcopy=False)}
    assert all(t.state.is_finished() for t in told.values())
    for copy in copies:
        twin = told[copy["of"]]
        assert told[copy["id"]].state == twin.state and told[copy["id"]].values == twin.values
        assert told[copy["id"]].user_attrs["duplicate_of"] == twin.number
    pred = pl.read_parquet(tmp_path / "out" / "predictions.parquet")
    assert set(pred.filter(pl.col("status") == "duplicate")["ladder_id"]) == {c["id"] for c in copies}


def test_a_ladder_clearly_behind_at_rung_0_is_pruned(tmp_path):
    proposals, ladders, _ = _drive(tmp_path, ladder_prune_margin=0.01)
    states = [t.state for t in ladders.get_trials(deepcopy=False)]
    assert optuna.trial.TrialState.PRUNED in states
    pruned = [lad for lad in proposals.ladders.values() if lad["state"] == "pruned"]
    assert pruned and all(len(lad["rungs"]) == 1 for lad in pruned) and "behind" in pruned[0]["error"]
    pred = pl.read_parquet(tmp_path / "out" / "predictions.parquet")
    assert set(pred.filter(pl.col("status") == "pruned")["ladder_id"]) == {lad["id"] for lad in pruned}


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(ladder=2), "--ladder: at least 3"),
        (dict(ladder_ratio=1.0), "--ladder-ratio"),
        (dict(risk="max"), "--risk"),
        (dict(target_params=1e6), "exactly one of --target-compute"),
        (dict(objectives=["eval_loss", "params"]), "must include predicted_loss"),
    ],
)
def test_bad_ladder_options_fail_before_any_work(tmp_path, kw, message):
    with pytest.raises(UserError, match=message):
        prepare(_options(tmp_path, **kw))


@pytest.mark.slow
def test_ladder_search_end_to_end(tmp_path, ray_cluster):
    from archscale.search.run import run_search

    opts = _options(
        tmp_path, trials=2, train={"eval_every_tokens": 8192, "eval_tokens": 2048}, ladder_prune_margin=10.0
    )
    run_search(opts)
    out = tmp_path / "out"
    assert pl.read_parquet(out / "trials.parquet").height == 6
    r = CliRunner().invoke(app, ["search", "resume", str(out), "--trials", "3", "--json"])  # extend by a ladder
    assert r.exit_code == 0, r.output
    trials = pl.read_parquet(out / "trials.parquet")
    assert trials.height == 9 and trials["ladder_id"].n_unique() == 3
    assert set(trials["status"]) == {"completed"}
    for _, ladder in trials.group_by("ladder_id"):
        ladder = ladder.sort("rung")
        assert ladder["rung"].to_list() == [0, 1, 2] and ladder["params"].is_sorted()
    run = json.loads((out / "run.json").read_text())
    assert run["kind"] == "ladder-search" and run["objectives"][0]["name"] == "predicted_loss"
    study = optuna.load_study(
        study_name=run["ladder_study"],
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "optuna.journal"))),
    )
    assert len(study.trials) == 3 and all(t.state.is_finished() for t in study.trials)
    pred = pl.read_parquet(out / "predictions.parquet")
    assert pred.height == 3 and set(pred["status"]) <= {"predicted", "not identified"}
    for t in study.trials:  # told a value exactly when predicted; otherwise FAIL with the reason
        row = pred.filter(pl.col("ladder_id") == t.number).row(0, named=True)
        assert (t.state.name == "COMPLETE") == (row["status"] == "predicted")
        if row["status"] != "predicted":
            assert t.user_attrs["error"] and row["reason"]
    r = CliRunner().invoke(app, ["search", "status", str(out), "--json"])
    assert r.exit_code == 0, r.output
    status = json.loads(r.stdout)
    assert len(status["predicted"]) + len(status["not_predicted"]) == 3 and len(status["small_scale"]) == 3
    from archscale.analysis.present.report import write_report
    from archscale.analysis.present.report_parts import section_errors

    report = write_report([out], tmp_path / "report.html", bootstrap=10)
    assert section_errors(report) == {} and "Predicted at the target" in report.read_text()


def test_multi_objective_ladders_are_told_costs_at_the_target_size(tmp_path):
    _, ladders, _ = _drive(tmp_path, ladder_prune_margin=10.0, objectives=["predicted_loss", "params"])
    told = [t for t in ladders.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    assert told and all(len(t.values) == 2 for t in told)
    for t in told:  # the cost is the architecture's size at the target, far above its rungs' budgets
        assert t.values[1] == t.user_attrs["target_counts"]["params"] > 12000 * 4
    assert ladders.directions == [optuna.study.StudyDirection.MINIMIZE] * 2


def test_an_interrupted_ladder_search_resumes_without_training_a_rung_twice(tmp_path):
    """The driver dies with rungs training; a new driver rebuilds the ladders from the two studies
    (`restore_ladders`, `restore_rungs`), trains the interrupted rungs again under their own numbers
    and the missing ones anew, and ends with the predictions an uninterrupted run makes."""
    from archscale.search.strategies.replay import ReplayProposals

    (tmp_path / "whole").mkdir()
    _drive(tmp_path / "whole", ladder_prune_margin=10.0)
    first, study_spec, ladders = _setup(tmp_path, ladder_prune_margin=10.0)
    record = study_spec.open()
    _loop(first, record, stop_after=5)  # 5 rungs done, others asked and RUNNING, then the driver dies
    states = optuna.trial.TrialState
    running = [t.number for t in record.get_trials(deepcopy=False) if t.state == states.RUNNING]
    assert running, "the interruption must leave rungs training"
    second, _, _ = _setup(tmp_path, ladder_prune_margin=10.0)
    second.restore_ladders()
    assert second.started == first.started and set(second.ladders) == set(first.ladders)
    for i, lad in first.ladders.items():  # rebuilt from the ladder study's parameters: the same rungs
        assert second.ladders[i]["specs"] == lad["specs"] and second.ladders[i]["told"] == lad["told"]
    second.restore_rungs(record, {}, running)
    for i, lad in first.ladders.items():
        assert second.ladders[i]["rungs"] == lad["rungs"]  # the told loss and the counted compute, exactly
    replay = ReplayProposals(running, then=second)
    _loop(replay, record)
    second.close()
    rungs = [t for t in record.get_trials(deepcopy=False)]
    assert all(t.state == states.COMPLETE for t in rungs)
    done = [(t.user_attrs["ladder"], t.user_attrs["rung"]) for t in rungs]
    trained = [lad for lad in second.ladders.values() if lad["state"] != "duplicate"]
    assert len(done) == len(set(done)) == 3 * len(trained), "every rung trained exactly once"
    assert all(t.state.is_finished() for t in ladders.open().get_trials(deepcopy=False))
    resumed = pl.read_parquet(tmp_path / "out" / "predictions.parquet").sort("ladder_id")
    uninterrupted = pl.read_parquet(tmp_path / "whole" / "out" / "predictions.parquet").sort("ladder_id")
    assert resumed["label"].to_list() == uninterrupted["label"].to_list()
    assert resumed["predicted_loss"].to_list() == pytest.approx(uninterrupted["predicted_loss"].to_list(), abs=1e-6)


@pytest.mark.slow
def test_validate_top_trains_the_finalists_and_the_small_scale_pick_at_a_held_out_scale(tmp_path, ray_cluster):
    """Predictions from known laws (so they are identified); the held-out runs are real training."""
    from archscale.search.strategies.ladder_validate import validate_top

    proposals, _, _ = _drive(tmp_path, ladder_prune_margin=10.0, trials=4)
    opts = _options(tmp_path, train={"eval_every_tokens": 8192, "eval_tokens": 2048})
    top = max(c for lad in proposals.ladders.values() for c, _ in lad["rungs"].values())
    summary = validate_top(proposals, opts, 2, compute=1.5 * top)
    rows = pl.read_parquet(tmp_path / "out" / "validation.parquet")
    archs = {lad["arch_id"] for lad in proposals.ladders.values()}
    assert rows["predicted_top"].sum() == min(2, len(archs)) and rows["small_scale_pick"].sum() == 1
    assert rows.height == len({proposals.ladders[i]["arch_id"] for i in rows["ladder_id"]})  # one run per arch
    assert rows["actual_loss"].null_count() == 0 and (rows["compute"] > top).all()
    small = min((lad for lad in proposals.ladders.values() if lad["rungs"]), key=lambda lad: lad["rungs"][0][1])
    assert summary["small_scale_winner"] == small["label"]
    assert summary["actual_winner"] == rows.sort("actual_loss")["label"][0]
    predicted = rows.filter(pl.col("predicted_top")).sort("predicted_loss")
    assert summary["predicted_winner"] == predicted["label"][0]
    for row in predicted.iter_rows(named=True):
        assert row["run_lo"] <= row["lo"] <= row["predicted_loss"] <= row["hi"] <= row["run_hi"]  # one run is noisier
        assert row["covered"] == (row["run_lo"] <= row["actual_loss"] <= row["run_hi"])


def test_the_first_run_of_a_ladder_search_tags_its_trials_with_the_run_id(tmp_path, monkeypatch):
    """Defect: the first run of a ladder search built its searcher without the directory's run_id
    (plain searches and resumed ladder searches had it), so its trials were not tagged for a study
    several drivers share, and a later resume could not tell them apart."""
    import archscale.search.run as run_module

    seen = []
    monkeypatch.setattr(run_module, "run_trials", lambda searcher, *args, **kwargs: seen.append(searcher) or {})
    run_module.run_search(_options(tmp_path))
    (searcher,) = seen
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["kind"] == "ladder-search" and searcher.run_id == run["run_id"] is not None
    asked = searcher.suggest("ray-1")  # the searcher tags what it asks with that run_id
    record = optuna.load_study(
        study_name=run["study_name"],
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "out" / "optuna.journal"))
        ),
    )
    assert record.trials[asked["number"]].user_attrs["run_id"] == run["run_id"]


@pytest.mark.parametrize("parametrization", ["mup", "completep"])
def test_every_rung_of_a_transferring_ladder_is_a_valid_architecture_parametrised_against_rung_0(
    tmp_path, parametrization
):
    """Defect: rungs above 0 copied every base_* field from rung 0, so under mup they carried
    base_n_layers (read only by completep) and ArchConfig refused them: a ladder search on a mup
    space (the quickstart's) failed at its second rung."""
    from archscale.spaces.arch import ArchConfig

    space = {**SPACE, "arch": {**SPACE["arch"], "parametrization": parametrization, "head_dim": 16}}
    (tmp_path / "mup.yaml").write_text(yaml.safe_dump(space))
    proposals, _, _ = _setup(tmp_path, space=str(tmp_path / "mup.yaml"))
    proposals._start_ladder()
    (lad,) = proposals.ladders.values()
    base = lad["specs"][0]["arch"]
    for spec in lad["specs"][1:]:
        arch = ArchConfig(**spec["arch"])  # valid
        assert arch.base_d_model == base["d_model"] and arch.base_d_ff == base["d_ff"]
        assert arch.base_n_layers == (base["n_layers"] if parametrization == "completep" else None)
