"""The content stage: every configured source read into sanitised ``Post`` objects.

One reader class per source kind, chosen by the type of the source's settings, so adding a
kind means adding a module and one line to ``READERS``.
"""

from __future__ import annotations

from dataclasses import replace

from ..config import FeedSource, LoadedConfig, MarkdownSource
from ..models import SourceResult
from ..people import attribute
from .base import Reader
from .feed import FeedReader
from .markdown import MarkdownReader

READERS: dict[type[MarkdownSource | FeedSource], type[Reader]] = {  # type: ignore[type-arg]
    MarkdownSource: MarkdownReader,
    FeedSource: FeedReader,
}

__all__ = ["READERS", "FeedReader", "MarkdownReader", "Reader", "read_source", "read_sources"]


def read_source(
    source: MarkdownSource | FeedSource, loaded: LoadedConfig, *, strict: bool = False
) -> SourceResult:
    """Read one source. Raises SourceError if it is unusable, ContentWarning under strict."""
    reader_class = READERS[type(source)]
    result = reader_class(source, loaded, strict=strict).read()
    authors = loaded.settings.authors
    return replace(result, posts=attribute(result.posts, authors)) if authors else result


def read_sources(loaded: LoadedConfig, *, strict: bool = False) -> list[SourceResult]:
    """Read every source in the order newsletter.yml lists them."""
    return [read_source(source, loaded, strict=strict) for source in loaded.settings.sources]
