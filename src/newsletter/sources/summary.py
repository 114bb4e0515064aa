"""Summaries fit for an issue: the feed's boilerplate removed, cut where a sentence or a word ends.

Feeds rarely carry a summary written for a reader. WordPress appends "The post X appeared
first on Y." and ends excerpts in "[…]", themes add "Continue reading →", Medium and
Substack add their own calls to action. Left in, they read as noise in the issue, and a
" ..." at the end wraps onto a line of its own on a phone. Patterns for the common
platforms are built in (``BUILTIN_BOILERPLATE``); a newsletter adds its own under
``summaries.boilerplate`` in newsletter.yml.

A summary is cut to ``summaries.length`` characters: at the end of a sentence when one
ends in the second half of the allowance (then no ellipsis is needed), else at the end of
a word, with one ellipsis joined to that word and no dangling punctuation before it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import lxml.html
from lxml import etree

from .sanitize import html_to_text

ELLIPSIS = "…"

BUILTIN_BOILERPLATE: dict[str, tuple[str, ...]] = {
    "wordpress": (
        r"The post .{1,300}? appeared first on .{1,300}?(?:\.|$)",
        r"(?:Continue|Keep) reading\b[^.!?]{0,200}?(?:→|»|›|\.\.\.|…|$)",
        r"Read (?:more|the rest(?: of (?:this|the) (?:entry|post|article))?)\b\s*"
        r"(?:→|»|›|\.\.\.|…|$)",
    ),
    "ghost": (r"(?:Sign up|Subscribe) (?:now|for free|today)\b[^.!?]{0,100}?(?:[.!]|$)",),
    "substack": (
        r"Thanks for reading .{1,200}?! Subscribe for free to receive new posts"
        r"(?: and support (?:my|our) work)?\.?",
        r"\b(?:Subscribe now|Leave a comment|Give a gift subscription)$",
    ),
    "medium": (
        r"Continue reading on Medium\s*»?",
        r"[^.!?]{1,300}? was originally published in .{1,300}? on Medium, where people are "
        r"continuing the conversation by highlighting and responding to this story\.",
    ),
    "blogger": (r"Read more\s*»",),
}
"""Text the common blogging platforms add to a feed item: regular expressions, matched
case-insensitively against the item's plain text."""

_CUT_MARK = re.compile(r"\s*(?:\[\s*(?:…|\.{3})\s*\]|…|\.{3,})\s*$")
"""How a platform marks that it cut the text: '[…]', '[...]', '…', '...'."""
_DANGLING = " \t,;:-–—(/[{\"'“‘«"
"""What may not stand before an ellipsis or end a summary."""
_SENTENCE_END = re.compile(r"[.!?][\"'”’»)]?(?=\s)")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Summarizer:
    """How summaries are made for one newsletter (from its ``summaries`` settings)."""

    length: int = 280
    patterns: Sequence[str] = field(default_factory=tuple)
    builtin: bool = True

    def __post_init__(self) -> None:
        sources = [*(_builtin() if self.builtin else ()), *self.patterns]
        joined = "|".join(f"(?:{pattern})" for pattern in sources)
        compiled = re.compile(joined, re.IGNORECASE) if joined else None
        object.__setattr__(self, "_boilerplate", compiled)

    def clean(self, text: str) -> tuple[str, bool]:
        """``text`` without boilerplate, on one line; and whether its source had cut it."""
        pattern: re.Pattern[str] | None = self._boilerplate  # type: ignore[attr-defined]
        if pattern is not None:
            text = pattern.sub(" ", text)
        text = _SPACES.sub(" ", text).strip()
        cut = _CUT_MARK.search(text)
        if cut is not None:
            return text[: cut.start()].rstrip(_DANGLING), True
        return text, False

    def summary(self, given: str | None, clean_body: str) -> str:
        """The author's own summary when it says anything once cleaned, else the first
        paragraph of the body that does; cut to ``length``."""
        if given and given.strip():
            text, was_cut = self.clean(html_to_text(given))
            if _says_something(text):
                return self.cut(text, was_cut)
        for paragraph in _paragraphs(clean_body):
            text, was_cut = self.clean(paragraph)
            if _says_something(text):
                return self.cut(text, was_cut)
        return ""

    def cut(self, text: str, was_cut: bool = False) -> str:
        """At most ``length`` characters, ending with a whole sentence or a word and '…'."""
        if len(text) <= self.length:
            return _with_ellipsis(text) if was_cut else text
        window = text[: self.length]
        ends = [match.end() for match in _SENTENCE_END.finditer(window + " ")]
        if ends and ends[-1] >= self.length // 2:
            return window[: ends[-1]]
        room = window[: self.length - len(ELLIPSIS)]
        space = room.rfind(" ")
        if space >= self.length // 2:
            room = room[:space]
        return _with_ellipsis(room)


def _with_ellipsis(text: str) -> str:
    trimmed = text.rstrip(_DANGLING + ".…")
    return trimmed + ELLIPSIS if trimmed else ""


def _says_something(text: str) -> bool:
    return any(character.isalnum() for character in text)


def _builtin() -> Iterable[str]:
    for patterns in BUILTIN_BOILERPLATE.values():
        yield from patterns


def _paragraphs(clean_body: str) -> Iterable[str]:
    """Plain text of each non-empty paragraph of a sanitised body, else all of its text."""
    if not clean_body.strip():
        return
    try:
        root = lxml.html.fragment_fromstring(clean_body, create_parent="div")
    except (etree.ParserError, ValueError):
        yield html_to_text(clean_body)
        return
    found = False
    for paragraph in root.iter("p"):
        text = _SPACES.sub(" ", paragraph.text_content()).strip()
        if text:
            found = True
            yield text
    if not found:
        yield html_to_text(clean_body)
