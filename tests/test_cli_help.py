"""Every command's --help is readable at 80 columns: each option's full name is shown, nothing is cut."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from archscale.search.cli import app


def _commands(group, path=()):
    for name, command in getattr(group, "commands", {}).items():
        yield (*path, name), command
        yield from _commands(command, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_root_app_has_every_folders_commands():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"search run", "search resume", "study run", "space show", "arch count", "train", "fit", "report"} <= names


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_at_80_columns_shows_every_option_in_full(path, command):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    for param in command.params:
        for opt in param.opts:
            if opt.startswith("--"):
                assert opt in result.output, (opt, result.output)
    assert max(len(line) for line in result.output.splitlines()) <= 80


def test_version_and_a_user_error_are_one_line():
    version = subprocess.run(
        [sys.executable, "-m", "archscale.search.cli", "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and version.stdout.startswith("archscale ")
    bad = subprocess.run(
        [sys.executable, "-m", "archscale.search.cli", "space", "show", "no-such-space.yaml"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
    assert "Traceback" not in bad.stderr


def test_a_bug_is_not_reported_as_a_user_error(monkeypatch, capsys):
    """A KeyError from a bug exits 1 and says it is a bug; only UserError (and missing/existing
    results files) are the user's to fix (exit 2)."""
    import archscale.spaces.space as space_module
    from archscale.search.cli import main

    def broken(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(space_module, "load_space", broken)
    monkeypatch.setattr(sys, "argv", ["archscale", "space", "show", "tiny"])
    monkeypatch.delenv("ARCHSCALE_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    assert "bug in archscale" in capsys.readouterr().err
