"""The content stage: every configured source read into sanitised ``Post`` objects.

One reader class per source kind, chosen by the type of the source's settings, so adding a
kind means adding a module and one line to ``READERS``. A source whose files are as they
were when it was last read is answered from the build's cache (``memo``).
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

from ..config import FeedSource, LoadedConfig, MarkdownSource
from ..memo import Memo, code_stamp, digest, settings_stamp
from ..models import SourceResult
from ..people import attribute
from ..post_json import NotKept, result_from_json, result_to_json
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
    result = _read_remembered(reader_class(source, loaded, strict=strict))
    authors = loaded.settings.authors
    return replace(result, posts=attribute(result.posts, authors)) if authors else result


def read_sources(loaded: LoadedConfig, *, strict: bool = False) -> list[SourceResult]:
    """Read every source in the order newsletter.yml lists them."""
    return [read_source(source, loaded, strict=strict) for source in loaded.settings.sources]


def _read_remembered(reader: Reader) -> SourceResult:  # type: ignore[type-arg]
    """The reader's result, from the cache when nothing it reads has changed.

    Under ``--strict`` a kept result with skipped items is read again, so the error names
    the item as a fresh read does.
    """
    inputs = reader.inputs()
    if inputs is None:
        return reader.read()
    loaded = reader.loaded
    memo = Memo(loaded.base_dir, "sources")
    key = digest(
        code_stamp(),
        str(loaded.path),
        settings_stamp(loaded.settings),
        reader.source.name,
        inputs,
    )
    kept = memo.get(key)
    if kept is not None:
        try:
            result = result_from_json(kept)
        except (KeyError, TypeError, ValueError):  # not an entry this version wrote
            result = None
        if result is not None and not (reader.strict and result.warnings):
            return result
    result = reader.read()
    with contextlib.suppress(NotKept):  # a result that would not read back exactly
        memo.put(key, result_to_json(result))
    return result
