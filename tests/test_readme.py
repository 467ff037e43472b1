"""The README's CLI reference matches the real CLI: every command listed exists, and its flags too."""

import re
from pathlib import Path

from typer.testing import CliRunner

from archscale.search.cli import app

README = (Path(__file__).parent.parent / "README.md").read_text()
runner = CliRunner()


def reference_rows():
    section = README.split("## CLI reference", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `archscale ")]


def test_every_documented_command_and_flag_exists():
    rows = reference_rows()
    assert len(rows) >= 12
    for row in rows:
        usage = re.match(r"\| `archscale ([^`]*)`", row).group(1)
        words = [w for w in usage.split() if re.fullmatch(r"[a-z][a-z-]*", w)]
        command = []
        for w in words:  # leading lowercase words are the command path
            if w.upper() == w:
                break
            command.append(w)
            r = runner.invoke(app, [*command, "--help"])
            if r.exit_code != 0:
                command.pop()
                break
        assert command, row
        help_text = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"}).output
        for flag in set(re.findall(r"--[a-z][a-z-]*", usage)):
            assert flag in help_text, (command, flag)


def test_readme_starts_with_the_two_commands():
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert "make quickstart" in first_block and "make test" in first_block
    assert "make test" in (Path(__file__).parent.parent / ".ci" / "run").read_text()
