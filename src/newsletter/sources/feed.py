"""An RSS 2.0 or Atom feed, from a file beside newsletter.yml or from the web.

We fetch the bytes ourselves with urllib rather than letting feedparser do it, so a dead
server, an HTTP error or a timeout becomes a clear ``SourceError`` instead of an empty
feed that looks like "nothing new".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import __version__
from ..config import FeedSource
from ..errors import SourceError
from ..memo import file_stamp
from ..models import Post, PostKind
from .base import Reader, SkipItem, is_guest_column
from .sanitize import clean_html, html_to_text, web_url

USER_AGENT = f"newsletter/{__version__}"
ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"


@dataclass(frozen=True)
class FeedEntry:
    index: int
    """1-based position in the feed, to name an entry that has neither id nor link."""
    entry: Any
    """A ``feedparser.FeedParserDict``."""
    base: str
    """What a relative entry link is resolved against."""
    channel: str | None
    """The channel's own page (its <link>), which no entry may pass off as its own."""


class FeedReader(Reader[FeedSource, FeedEntry]):
    def inputs(self) -> list[Any] | None:
        if self._is_web():
            return None
        stamp = file_stamp(self.loaded.resolve(self.source.url))
        return None if stamp is None else [stamp]

    def items(self) -> Iterator[FeedEntry]:
        import feedparser  # a fifth of a second, for a feed the cache could not answer

        data, headers = self._fetch()
        parsed = feedparser.parse(data, response_headers=headers)
        if not parsed.entries and (parsed.bozo or not parsed.get("version")):
            reason = _parse_problem(parsed.get("bozo_exception"))
            raise SourceError(
                f"source '{self.source.name}': {self._shown()} is not a readable feed: {reason}",
                hint="check the address points at the RSS or Atom feed itself, not a web page",
            )
        channel_link = parsed.feed.get("link")
        base = self._base(channel_link)
        channel = web_url(channel_link, base) if channel_link else None
        for index, entry in enumerate(parsed.entries, start=1):
            yield FeedEntry(index, entry, base, channel)

    def to_post(self, raw: FeedEntry) -> Post:
        entry = raw.entry
        link = self._link(raw)
        title = _title(entry)
        if not title:
            raise self.skip(raw, "has no title; it was left out")
        stamp = entry.get("published_parsed") or entry.get("updated_parsed")
        if stamp is None:
            raise self.skip(raw, "has no date (published or updated); it was left out")
        if link is None:
            raise self.skip(
                raw,
                "has no http(s) link of its own; it was left out rather than sent "
                "to the feed's own page",
            )
        tags = tuple(
            term for tag in entry.get("tags") or () if (term := (tag.get("term") or "").strip())
        )
        author = _author(entry)
        contents = entry.get("content") or []
        if contents:
            body = clean_html(contents[0].get("value", ""), link)
            given_summary = entry.get("summary")
        else:
            body = clean_html(entry.get("summary", ""), link)
            given_summary = None  # the description is the body: summarise its first paragraph
        guest = is_guest_column(self.source.guest, tags=tags, author=author)
        return Post(
            id=str(entry.get("id") or link),
            source=self.source.name,
            title=title,
            url=link,
            published=datetime(*_fields(stamp), tzinfo=UTC),
            kind=PostKind.GUEST if guest else PostKind.POST,
            author=author,
            summary=self.summarizer.summary(given_summary, body),
            body_html=body,
            image=_image(entry, link),
            tags=tags,
        )

    # --- fetching ----------------------------------------------------------------------

    def _is_web(self) -> bool:
        return self.source.url.lower().startswith(("http://", "https://"))

    def _shown(self) -> str:
        return self.source.url if self._is_web() else str(self.loaded.resolve(self.source.url))

    def _base(self, channel_link: str | None) -> str:
        """The feed's own URL when fetched; for a file, the site the feed says it is from."""
        if self._is_web():
            return self.source.url
        site = self.loaded.settings.newsletter.site_url + "/"
        return (web_url(channel_link, site) if channel_link else None) or site

    def _fetch(self) -> tuple[bytes, dict[str, str]]:
        """The feed's bytes, and the HTTP headers that tell feedparser their charset."""
        return self._download() if self._is_web() else (self._read_file(), {})

    def _read_file(self) -> bytes:
        path = self.loaded.resolve(self.source.url)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise SourceError(
                f"source '{self.source.name}': cannot read the feed file {path}: "
                f"{exc.strerror or exc}",
                hint="correct 'url' for this source in newsletter.yml "
                "(a file path there is relative to newsletter.yml)",
            ) from None

    def _download(self) -> tuple[bytes, dict[str, str]]:
        import http.client
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            self.source.url, headers={"User-Agent": USER_AGENT, "Accept": ACCEPT}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.source.timeout) as response:
                headers = {name.lower(): value for name, value in response.headers.items()}
                return bytes(response.read()), headers
        except urllib.error.HTTPError as exc:
            reason = f"the server answered HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            reason = _reason(exc.reason, self.source.timeout)
        except (OSError, http.client.HTTPException) as exc:  # TimeoutError is an OSError
            reason = _reason(exc, self.source.timeout)
        raise SourceError(
            f"source '{self.source.name}': cannot fetch {self.source.url}: {reason}",
            hint="check the address and your network, or raise 'timeout' for a slow server",
        )

    def skip(self, raw: FeedEntry, message: str, line: int | None = None) -> SkipItem:
        name = str(
            raw.entry.get("id") or self._link(raw) or _title(raw.entry) or f"entry {raw.index}"
        )
        return SkipItem(name, message, location=f"{self._shown()} entry {raw.index} ({name})")

    def _link(self, raw: FeedEntry) -> str | None:
        """The entry's own address; None when it has none.

        An empty or fragment-only link resolves to the page it is relative to (the
        channel's or the feed's), which would make the item a link to the whole site.
        """
        given = (raw.entry.get("link") or "").strip()
        if not given or given.startswith("#"):
            return None
        link = web_url(given, raw.base)
        return None if link in (raw.base, raw.channel) else link


def _parse_problem(error: object) -> str:
    import xml.sax

    if isinstance(error, xml.sax.SAXParseException):
        where = f"line {error.getLineNumber()}, column {error.getColumnNumber()}"
        return f"{where}: {error.getMessage()}"
    return str(error) if error else "it is not an RSS or Atom document"


def _reason(error: object, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)


def _title(entry: Any) -> str:
    title = entry.get("title") or ""
    detail = entry.get("title_detail") or {}
    if "html" in (detail.get("type") or ""):
        return html_to_text(title)
    return " ".join(title.split())


def _author(entry: Any) -> str | None:
    detail = entry.get("author_detail") or {}
    name = detail.get("name") or entry.get("author") or ""
    return name.strip() or None


def _image(entry: Any, link: str) -> str | None:
    """A thumbnail the feed offers: Media RSS first, then an image enclosure."""
    for media in (*(entry.get("media_thumbnail") or ()), *(entry.get("media_content") or ())):
        url = media.get("url")
        if url and (media.get("medium", "image") == "image" or "image" in media.get("type", "")):
            return web_url(url, link)
    for enclosure in entry.get("enclosures") or ():
        if (enclosure.get("type") or "").startswith("image/") and enclosure.get("href"):
            return web_url(enclosure["href"], link)
    return None


def _fields(stamp: Any) -> tuple[int, int, int, int, int, int]:
    """Year to second of one of feedparser's ``*_parsed`` times (a UTC struct_time)."""
    year, month, day, hour, minute, second = stamp[:6]
    return year, month, day, hour, minute, second
