"""What every reader shares: the read loop, skipped items, and the guest-column rule.

A reader only knows how to list its raw items and turn one into a ``Post``; deciding
whether a bad item becomes a warning or (under strict) an error happens here, once.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..config import FeedSource, GuestRule, LoadedConfig, MarkdownSource
from ..errors import ContentWarning
from ..models import ItemWarning, Post, SourceResult

if TYPE_CHECKING:
    from .summary import Summarizer

S = TypeVar("S", MarkdownSource, FeedSource)
RawItem = TypeVar("RawItem")


class SkipItem(Exception):
    """Raised while reading one item to say it cannot be used; the loop turns it into a warning.

    ``item`` is how the warning names it (e.g. ``guest/x.md:3``); ``location`` is how a
    strict error names it so the user can open the file (e.g. ``samples/content/guest/x.md:3``).
    """

    def __init__(self, item: str, message: str, *, location: str | None = None) -> None:
        super().__init__(message)
        self.item = item
        self.message = message
        self.location = location or item


class Reader(ABC, Generic[S, RawItem]):
    """One source kind. Subclasses list raw items and convert one item at a time."""

    def __init__(self, source: S, loaded: LoadedConfig, *, strict: bool = False) -> None:
        self.source: S = source
        self.loaded = loaded
        self.strict = strict

    @functools.cached_property
    def summarizer(self) -> Summarizer:
        """Made on first use: it loads lxml, which a build whose sources are unchanged
        (read from the cache) does not need."""
        from .summary import Summarizer

        settings = self.loaded.settings.summaries
        return Summarizer(
            settings.length, tuple(settings.boilerplate), settings.builtin_boilerplate
        )

    def inputs(self) -> list[Any] | None:
        """The stamps (``memo.file_stamp``) of everything ``items`` reads, so the build's
        cache can tell an unchanged source; None when they cannot be known without reading
        (a feed on the web), and the source is then read every time."""
        return None

    def read(self) -> SourceResult:
        posts: list[Post] = []
        warnings: list[ItemWarning] = []
        seen_ids: set[str] = set()
        for raw in self.items():
            try:
                post = self.to_post(raw)
                if post.id in seen_ids:
                    # The archive remembers featured items by id, so two items sharing one
                    # would hide each other; the first keeps it.
                    raise self.skip(raw, f"has the same id as an earlier item ({post.id!r})")
                seen_ids.add(post.id)
                posts.append(post)
            except SkipItem as skipped:
                warning = ItemWarning(self.source.name, skipped.item, skipped.message)
                if self.strict:
                    raise ContentWarning(
                        f"source '{self.source.name}': {skipped.location}: {skipped.message}",
                        hint="fix the item, or run without --strict to skip it with a warning",
                    ) from None
                warnings.append(warning)
        return SourceResult(name=self.source.name, posts=tuple(posts), warnings=tuple(warnings))

    @abstractmethod
    def items(self) -> Iterable[RawItem]:
        """Every raw item, in a stable order; raises SourceError when the source is unusable."""

    @abstractmethod
    def to_post(self, raw: RawItem) -> Post:
        """One item as a Post; raises SkipItem when it cannot be used."""

    @abstractmethod
    def skip(self, raw: RawItem, message: str, line: int | None = None) -> SkipItem:
        """The SkipItem that names ``raw`` (and the line, where known) the way a user finds it."""


def is_guest_column(
    rule: GuestRule,
    *,
    tags: Sequence[str],
    author: str | None,
    relative_path: PurePosixPath | None = None,
) -> bool:
    """Whether any part of the source's guest rule matches; tags and authors ignore case."""
    if rule.all:
        return True
    if relative_path is not None and any(
        _is_under(relative_path, folder) for folder in rule.folders
    ):
        return True
    wanted_tags = {tag.casefold() for tag in rule.tags}
    if wanted_tags & {tag.casefold() for tag in tags}:
        return True
    if not author:
        return False
    return author.casefold() in {name.casefold() for name in rule.authors}


def _is_under(path: PurePosixPath, folder: str) -> bool:
    parts = tuple(_non_empty(PurePosixPath(folder.strip("/")).parts))
    return bool(parts) and path.parts[: len(parts)] == parts and len(path.parts) > len(parts)


def _non_empty(parts: Iterable[str]) -> Iterator[str]:
    return (part for part in parts if part not in ("", "."))
