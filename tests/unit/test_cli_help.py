"""``--help`` of every ``scenedex`` command and sub-command renders, and reads as terminal text: no
reStructuredText backticks, and one-line summaries (typer's rich help keeps a docstring's line
breaks as they are, so a summary wrapped in the source comes out broken mid-sentence)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from scenedex.scripts.cli import app


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command of the click tree typer builds, groups included, with its path."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_tree_has_every_command() -> None:
    paths = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "reprocess", "jobs", "jobs status", "index verify", "db upgrade", "person add"} <= paths
    assert {"api", "worker", "scheduler", "embed-server", "doctor", "bench", "embed-bench"} <= paths
    assert {"demo", "ingest", "search"} <= paths


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "scenedex" for p, _ in COMMANDS])
def test_help_renders_without_rst(path: tuple[str, ...], command: Any) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100"}, terminal_width=100)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "``" not in result.output
    summary = command.help or ""
    assert summary.strip(), f"scenedex {' '.join(path)} has no help"
    assert "\n" not in summary.strip(), f"scenedex {' '.join(path)}: a summary of one line"
    for param in command.params:
        assert "\n" not in (getattr(param, "help", None) or ""), f"{' '.join(path)} {param.name}"
