"""``${VAR}`` in newsletter.yml: one rule for every string setting.

A string may mention environment variables anywhere (``path: ${CONTENT_DIR}/posts``); each is
replaced by the variable's value when the file is loaded. A variable that is unset (or set
to nothing) is an error naming it and the setting, never a literal ``${VAR}``: a folder
named ``${CONTENT_DIR}`` created by a build helps nobody. ``$${`` writes a literal ``${``.

The settings that hold secrets are the exception: they must be exactly one ``${VAR}``
reference and are left as written here, to be read from the environment only by the
command that needs them, so ``validate`` or ``build`` never need a password.
"""

from __future__ import annotations

import os
import re
from typing import Any

VARIABLE = r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}"
_NAME = re.compile(VARIABLE)
_PIECE = re.compile(rf"\$\$\{{|{VARIABLE}|\$\{{")


class ReferenceExpander:
    """The ``on_string`` hook of ``read_yaml``: each string with its ``${VAR}`` replaced.

    ``left_for_use`` names (dotted) the settings a command resolves itself when it needs
    them. ``problems`` holds one message per setting that could not be expanded, keyed by
    its path so a second complaint about the same unexpanded value can be left out.
    """

    def __init__(self, shown: str, *, left_for_use: frozenset[str]) -> None:
        self.shown = shown
        self.left_for_use = left_for_use
        self.problems: dict[tuple[Any, ...], str] = {}
        self.variables: set[str] = set()
        """Every variable a setting was expanded from (never a secret's), so a kept config
        can tell when one of them has changed."""

    def __call__(self, path: tuple[Any, ...], line: int, text: str) -> str:
        from .yaml_loader import dotted  # only while a file is parsed, when it is loaded

        key = dotted(path)
        if key in self.left_for_use:
            return text
        self.variables.update(_NAME.findall(text))
        expanded, trouble = _expand(text)
        if trouble:
            self.problems[path] = f"{self.shown}:{line}: {key}: {trouble}"
        return expanded


def _expand(text: str) -> tuple[str, str | None]:
    """The text with its references replaced, and what went wrong with the first bad one."""
    trouble: list[str] = []

    def replace(match: re.Match[str]) -> str:
        piece, name = match.group(0), match.group(1)
        if piece == "$${":
            return "${"
        if name is None:
            trouble.append(
                "'${' starts no variable reference (expected ${NAME}, NAME of letters, digits "
                "and _); write $${ for a literal ${"
            )
            return piece
        value = os.environ.get(name)
        if not value:
            trouble.append(
                f"the environment variable {name} is not set; export {name}=... and retry, "
                "or write $${ for a literal ${"
            )
            return piece
        return value

    expanded = _PIECE.sub(replace, text)
    return expanded, (trouble[0] if trouble else None)
