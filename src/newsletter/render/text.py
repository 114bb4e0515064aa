"""Numbered link references for the plain-text part.

A text e-mail cannot hide a URL behind its title, and long URLs in running text wreck
the wrapping; "Title [1]" with a list of links at the end reads well in any client.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

BLANK_RUNS = re.compile(r"\n{4,}")
TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)


class LinkReferences:
    """Numbers URLs in the order a reader meets them; a repeated URL keeps its number.

    One instance per render: the template calls ``ref(url)`` while it writes the body
    and iterates the instance at the end, by which time every link has been seen.
    """

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def ref(self, url: str) -> str:
        number = self._numbers.setdefault(url, len(self._numbers) + 1)
        return f"[{number}]"

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return iter([(number, url) for url, number in self._numbers.items()])

    def __len__(self) -> int:
        return len(self._numbers)


def tidy_text(text: str) -> str:
    """No trailing spaces, at most two blank lines in a row, exactly one final newline.

    Lets the template stay readable without every line fighting Jinja's whitespace rules.
    """
    text = TRAILING_SPACE.sub("", text)
    text = BLANK_RUNS.sub("\n\n\n", text)
    return text.strip("\n") + "\n"
