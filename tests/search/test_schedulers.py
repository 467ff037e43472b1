"""The Pareto early-stopping rule and ASHA-at-budget behaviour, on the real Ray Tune schedulers."""

from ray.tune.schedulers import TrialScheduler

from archscale.search.schedulers import make_scheduler


class Trial:
    def __init__(self, trial_id, arch=None):
        self.trial_id = trial_id
        self.config = {"arch": arch} if arch else {}


def result(tokens, loss, params, status="running", target=1000):
    return {"tokens": tokens, "eval_loss": loss, "status": status, "target_tokens": target, "params": params}


def finish(scheduler, trial, params, curve):
    for tokens, loss in curve:
        scheduler.on_trial_result(None, trial, result(tokens, loss, params))
    scheduler.on_trial_complete(None, trial, result(1000, curve[-1][1], params, status="completed"))


def test_dominated_on_cost_and_loss_is_stopped():
    s = make_scheduler("none", ["eval_loss", "params"], 1000)
    finish(s, Trial("cheap"), 5, [(300, 2.0), (1000, 1.5)])
    t = Trial("t")
    assert s.on_trial_result(None, t, result(100, 3.0, 10)) == TrialScheduler.CONTINUE  # too early (< 1/4 budget)
    assert s.on_trial_result(None, t, result(400, 2.5, 10)) == TrialScheduler.STOP  # cheaper trial was at 2.0 by 300
    assert "t" in s.pareto_stopped


def test_not_dominated_when_cheaper_or_better():
    s = make_scheduler("none", ["eval_loss", "params"], 1000)
    finish(s, Trial("big"), 50, [(300, 2.0), (1000, 1.5)])
    assert s.on_trial_result(None, Trial("small"), result(400, 2.5, 10)) == TrialScheduler.CONTINUE  # cheaper
    finish(s, Trial("cheap"), 5, [(300, 2.0), (1000, 1.5)])
    assert s.on_trial_result(None, Trial("better"), result(400, 1.9, 10)) == TrialScheduler.CONTINUE  # lower loss
    assert s.on_trial_result(None, Trial("done"), result(1000, 9.0, 10)) == TrialScheduler.CONTINUE  # at budget


def test_single_objective_has_no_pareto_stopping_and_asha_lets_budget_finish():
    s = make_scheduler("none", ["eval_loss"], 1000)
    finish(s, Trial("a"), 5, [(300, 1.0), (1000, 0.5)])
    assert s.on_trial_result(None, Trial("b"), result(500, 9.0, 50)) == TrialScheduler.CONTINUE
    asha = make_scheduler("asha", ["eval_loss"], 1000)
    t = Trial("x")
    asha.on_trial_add(None, t)
    assert asha.on_trial_result(None, t, result(1024, 9.0, 5)) == TrialScheduler.CONTINUE  # never cut at budget


def test_seed_replicas_never_stop_each_other():
    """A replica that looks worse than its own finished seed is not pruned (that would bias the
    seed-noise estimate and was timing-dependent); another architecture at the same cost still stops it."""
    s = make_scheduler("none", ["eval_loss", "params"], 1000)
    finish(s, Trial("a-seed0", arch={"d_model": 8}), 10, [(300, 2.0), (1000, 1.5)])
    replica = Trial("a-seed1", arch={"d_model": 8})
    assert s.on_trial_result(None, replica, result(400, 2.5, 10)) == TrialScheduler.CONTINUE
    other = Trial("b", arch={"d_model": 16})
    assert s.on_trial_result(None, other, result(400, 2.5, 10)) == TrialScheduler.STOP
