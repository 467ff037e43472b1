"""Several drivers, one study, a real PostgreSQL server (tests/search/postgres.py starts it).

Two `archscale search run` processes, each with its own results directory and its own embedded Ray,
add trials to one study at the same time: together exactly the trials each asked for, no trial
number twice, each sampler seeing the other's results, each directory agreeing with the study for
its own trials, and the password nowhere in what archscale prints or writes.
"""

import json
import os
import subprocess
import sys

import optuna
import pytest

from archscale.search.storage import open_storage
from tests.helpers import assert_results_agree_with_study, cli, write_space

pytestmark = pytest.mark.slow

STUDY = "shared-search"


def archscale(*args: str, env=None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "archscale.search.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_bad_postgres_url_is_one_clear_error_without_the_password(tmp_path, postgres):
    url = postgres.url("no_such_database")
    r = archscale(
        "search", "run", str(write_space(tmp_path)), "--out", str(tmp_path / "x"), "--tokens", "10000",
        "--storage", url,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.startswith("error: ") and "no_such_database" in r.stderr and "Traceback" not in r.stderr
    assert postgres.password not in r.stdout + r.stderr
    assert "archscale:***@127.0.0.1" in r.stderr


def test_two_drivers_share_one_study(tmp_path, postgres):
    url = postgres.create_database("shared")
    space = str(write_space(tmp_path))
    a, b = tmp_path / "driver-a", tmp_path / "driver-b"
    # trials long enough (~10 s each) that the two drivers overlap by several trials whatever the skew of
    # their Ray start-ups, so each one's sampler has the other's finished trials to see
    common = ["--tokens", "150000", "--eval-every-tokens", "50000", "--scheduler", "none", "--concurrency", "1"]
    common += ["--study-name", STUDY, "--json"]
    # driver A puts the password in the URL; driver B uses the documented recipe (PGPASSWORD, no password in the URL)
    proc_a = cli("search", "run", space, "--out", str(a), "--trials", "5", "--storage", url, "--seed", "1", *common)
    env_b = {**os.environ, "PGPASSWORD": postgres.password}
    bare = postgres.url("shared", with_password=False)
    proc_b = cli(
        "search", "run", space, "--out", str(b), "--trials", "4", "--storage", bare, "--seed", "2", *common, env=env_b
    )
    outputs = [p.communicate(timeout=1500) for p in (proc_a, proc_b)]
    for p, (stdout, stderr) in zip((proc_a, proc_b), outputs, strict=True):
        assert p.returncode == 0, stderr[-3000:]
        assert postgres.password not in stdout + stderr
    for d in (a, b):
        assert postgres.password not in (d / "run.json").read_text()
    assert json.loads((a / "run.json").read_text())["storage"] == postgres.url("shared").replace(
        postgres.password, "***"
    )

    study = optuna.load_study(study_name=STUDY, storage=open_storage(url))
    assert study.metric_names == ["eval_loss"]
    numbers = [t.number for t in study.trials]
    assert len(numbers) == 5 + 4 == len(set(numbers))  # exactly what each asked for, no number twice
    run_ids = {d: json.loads((d / "run.json").read_text())["run_id"] for d in (a, b)}
    asked = {d: [t for t in study.trials if t.user_attrs.get("run_id") == run_ids[d]] for d in (a, b)}
    assert len(asked[a]) == 5 and len(asked[b]) == 4
    for d in (a, b):
        trials, _, _ = assert_results_agree_with_study(d, study=study, own_only=True)
        assert sorted(trials["trial_id"]) == sorted(t.number for t in asked[d])
        assert all(t.user_attrs["label"] and t.user_attrs["status_reason"] for t in asked[d])

    # each driver's sampler saw the other's finished trials when it asked (same study, read live), and
    # some trials were asked after TPE's 6 random start-up trials had finished
    def seen_when_asked(trial, others):
        return sum(1 for o in others if o.datetime_complete and o.datetime_complete < trial.datetime_start)

    assert max(seen_when_asked(t, asked[b]) for t in asked[a]) >= 1
    assert max(seen_when_asked(t, asked[a]) for t in asked[b]) >= 1
    assert max(seen_when_asked(t, study.trials) for t in study.trials) >= 6

    # status over both directories is their union; with --storage, the study's own counts too
    r = archscale("search", "status", str(a), str(b), "--storage", url, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert postgres.password not in r.stdout + r.stderr
    status = json.loads(r.stdout)
    assert status["trials"] == 9 and status["requested"] == 9
    assert status["study"] == {"trials": 9, "by_state": {"complete": 9}, "drivers": 2}

    # the report over both shows every trial of both
    report = tmp_path / "report.html"
    r = archscale("report", str(a), str(b), "--out", str(report), "--bootstrap", "0", timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    html = report.read_text()
    assert "driver-a" in html and "driver-b" in html

    # resume of A: run.json has no password, so it asks for the URL and prints none
    r = archscale("search", "resume", str(a), "--json")
    assert r.returncode == 2 and "--storage" in r.stderr and postgres.password not in r.stderr
    r = archscale("search", "resume", str(a), "--storage", url, "--json", timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert postgres.password not in r.stdout + r.stderr
    study = optuna.load_study(study_name=STUDY, storage=open_storage(url))
    assert len(study.trials) == 9  # nothing left to do: nothing re-run, nothing added
