"""One bad-input case as a line of data, and the check every case of the catalogue makes.

A case names what is broken, breaks it in a copy of the sample project, runs one real
``newsletter`` command and expects: its exit status, a message that names the file, line
or field at fault, no traceback, and the project (files and store rows) as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import REMOVE, edit, ledger_counts, run_cli, set_setting
from disk_state import LEDGER_TABLES, ProjectState, assert_unchanged, project_state

Breakage = Callable[[Path], object]


@dataclass(frozen=True)
class Case:
    broken: str
    """What is wrong, in a few words: the test's id."""
    breakage: Breakage
    """Breaks the project whose newsletter.yml it is given."""
    command: tuple[str, ...]
    """The command line after ``newsletter``; ``{project}`` stands for the project folder."""
    status: int
    names: str
    """A fragment of the message; ``:N:`` in it stands for any line number, ``{project}``
    for the project folder."""
    attempted: bool = False
    """The send started and recorded its attempt in the ledger: then only the subscribers
    and files must be as they were, and nobody may be sent or unconfirmed."""


def cases(*rows: tuple[Any, ...]) -> list[Any]:
    """Rows of (what is broken, breakage, command, status, fragment[, attempted]) as
    pytest params."""
    return [
        pytest.param(Case(broken, breakage, tuple(command), *rest), id=broken)
        for broken, breakage, command, *rest in rows
    ]


def mentions(text: str, fragment: str) -> bool:
    """Whether ``text`` holds ``fragment``, any line number standing for ``:N:``: lines
    move whenever newsletter.yml gains a comment, the key and the words do not."""
    pattern = r":\d+:".join(re.escape(part) for part in fragment.split(":N:"))
    return re.search(pattern, text) is not None


def expect_refusal(config: Path, case: Case) -> str:
    """Break, run, and check the case; returns what the command printed."""
    case.breakage(config)
    project = config.parent
    before = project_state(project)
    command = [part.replace("{project}", str(project)) for part in case.command]
    result = run_cli([*command, "--config", str(config)])
    assert result.exit_code == case.status, result.output
    names = case.names.replace("{project}", str(project))
    assert mentions(result.output, names), (names, result.output)
    assert_left_alone(config, before, attempted=case.attempted)
    return result.output


def assert_left_alone(config: Path, before: ProjectState, *, attempted: bool) -> None:
    """The project is as ``before``; after an attempted send, the ledger may record the
    attempt but nobody in it was sent or is unconfirmed."""
    after = project_state(config.parent)
    if not attempted:
        assert_unchanged(before, after)
        return
    assert_unchanged(before, after, ignored=LEDGER_TABLES)
    counts = ledger_counts(config)
    assert counts.get("sent", 0) == counts.get("unconfirmed", 0) == 0, counts


def setting(dotted: str, value: Any) -> Breakage:
    return lambda config: set_setting(config, dotted, value)


def without(dotted: str) -> Breakage:
    return setting(dotted, REMOVE)


def replaced(relative: str, old: str, new: str) -> Breakage:
    """Replace text in a file of the project (``relative`` to the folder of newsletter.yml)."""
    return lambda config: edit(config.parent / relative, old, new)


def written(relative: str, content: str | bytes) -> Breakage:
    """Write (or overwrite) a file of the project."""

    def write(config: Path) -> None:
        path = config.parent / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")

    return write
