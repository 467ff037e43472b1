"""The study storage without Ray: torn journals repaired, errors that name the storage but not its password."""

import json

import optuna
import pytest

from archscale.search.storage import StudySpec, open_storage, repair_journal
from archscale.spaces.errors import UserError


def journal_with_trials(path, n=3) -> bytes:
    study = StudySpec(str(path), "s", ["eval_loss", "params"]).open()
    for i in range(n):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        study.tell(trial, [1.0 + i, 10.0 * i])
    return path.read_bytes()


def test_a_torn_last_record_is_cut_and_every_complete_record_kept(tmp_path):
    journal = tmp_path / "optuna.journal"
    whole = journal_with_trials(journal)
    assert repair_journal(journal) is None and journal.read_bytes() == whole  # whole: untouched

    journal.write_bytes(whole + b'{"op_code": 5, "worker_id": "w", "trial_id": 3, "param_na')
    records = whole.count(b"\n")
    message = repair_journal(journal)
    assert message and "torn" in message and f"kept all {records} complete records" in message
    assert journal.read_bytes() == whole
    (torn,) = tmp_path.glob("optuna.journal.torn-*")
    assert torn.read_bytes().startswith(b'{"op_code": 5')

    # the repaired study takes new records and reads back whole
    study = StudySpec(str(journal), "s", ["eval_loss", "params"]).open()
    study.enqueue_trial({"x": 0.5})
    assert len(optuna.load_study(study_name="s", storage=open_storage(str(journal))).trials) == 4


def test_a_newline_terminated_garbage_record_is_cut_too(tmp_path):
    journal = tmp_path / "optuna.journal"
    whole = journal_with_trials(journal, n=1)
    journal.write_bytes(whole + b"\0\0\0\0\n")  # zero-filled block after a crash
    assert repair_journal(journal) and journal.read_bytes() == whole
    assert all(json.loads(line) for line in whole.splitlines())


def test_a_torn_journal_is_what_optuna_cannot_append_to(tmp_path):
    """Why the repair is needed: appending after a torn record corrupts the journal for readers."""
    journal = tmp_path / "optuna.journal"
    whole = journal_with_trials(journal, n=1)
    journal.write_bytes(whole + b'{"op_code": 5, "wor')
    study = optuna.load_study(study_name="s", storage=open_storage(str(journal)))
    with pytest.raises(Exception):  # noqa: B017 (which error depends on Optuna's version and the bytes)
        study.enqueue_trial({"x": 0.5})
        optuna.load_study(study_name="s", storage=open_storage(str(journal))).trials  # noqa: B018


def test_the_study_names_its_objectives(tmp_path):
    study = StudySpec(str(tmp_path / "j.journal"), "s", ["eval_loss", "kv_cache_bytes_per_token"]).open()
    assert study.metric_names == ["eval_loss", "kv_cache_bytes_per_token"]
    with pytest.raises(UserError, match="directions"):
        StudySpec(str(tmp_path / "j.journal"), "s", ["eval_loss"]).open()


def test_a_bad_database_url_is_a_user_error_without_its_password():
    with pytest.raises(UserError) as e:
        open_storage("postgresql://alice:s3cret-pw@127.0.0.1:1/optuna")
    assert "s3cret-pw" not in str(e.value) and "alice:***@127.0.0.1:1" in str(e.value)
