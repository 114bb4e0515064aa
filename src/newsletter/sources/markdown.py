"""A folder of Markdown posts with YAML front matter, as static-site generators keep them.

A file that cannot be used (bad YAML, missing title or date, unknown kind) is skipped
with a warning naming the file and line, so one typo never stops an issue; ``--strict``
turns that warning into an error for editors who prefer to fix before sending.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

from ..config import MarkdownSource
from ..errors import SourceError
from ..memo import files_stamp
from ..models import Post, PostKind
from .base import Reader, SkipItem, is_guest_column
from .sanitize import clean_html, web_url

MARKDOWN_EXTENSIONS = ("extra", "sane_lists", "smarty")
_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}[-_]")
_FENCE = "---"


@dataclass(frozen=True)
class MarkdownFile:
    path: Path
    relative: PurePosixPath
    """Relative to the source folder; names the item in warnings and in its default id."""


@dataclass(frozen=True)
class FrontMatter:
    data: Mapping[str, Any]
    key_lines: Mapping[str, int]
    """Line in the whole file of each top-level key, for pointing at a bad value."""
    body: str


class MarkdownReader(Reader[MarkdownSource, MarkdownFile]):
    def inputs(self) -> list[Any] | None:
        folder = self.loaded.resolve(self.source.path)
        return files_stamp(folder, folder.rglob("*.md")) if folder.is_dir() else None

    def items(self) -> Iterator[MarkdownFile]:
        folder = self.loaded.resolve(self.source.path)
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise SourceError(
                f"source '{self.source.name}': the Markdown folder {folder} {what}",
                hint=(
                    "create the folder or correct 'path' for this source in newsletter.yml "
                    "(paths there are relative to newsletter.yml)"
                ),
            )
        found = (
            MarkdownFile(path, PurePosixPath(path.relative_to(folder).as_posix()))
            for path in folder.rglob("*.md")
            if path.is_file() and not _hidden(path.relative_to(folder))
        )
        yield from sorted(found, key=lambda item: item.relative.as_posix())

    def to_post(self, raw: MarkdownFile) -> Post:
        front = self._front_matter(raw)
        data = front.data
        title = _text(data.get("title"))
        if not title:
            line = front.key_lines.get("title", 1)
            raise self.skip(raw, "front matter has no 'title'; add one", line)
        if data.get("date") in (None, ""):
            raise self.skip(raw, "front matter has no 'date'; add one such as 2026-11-02", 1)
        published = self._date(data["date"], raw, front.key_lines.get("date"))
        declared_kind = _text(data.get("kind")).lower()
        if declared_kind and declared_kind not in {kind.value for kind in PostKind}:
            raise self.skip(
                raw,
                f"unknown kind {data.get('kind')!r}; expected 'post' or 'guest'",
                front.key_lines.get("kind"),
            )
        tags = _tags(data.get("tags"))
        author = _text(data.get("author")) or None
        url = self._url(data, raw, front.key_lines.get("url"))
        if declared_kind:
            kind = PostKind(declared_kind)
        else:
            guest = is_guest_column(
                self.source.guest, tags=tags, author=author, relative_path=raw.relative
            )
            kind = PostKind.GUEST if guest else PostKind.POST
        body = clean_html(self._render(front.body), url)
        image = _text(data.get("image"))
        return Post(
            id=_text(data.get("id")) or f"{self.source.name}:{raw.relative.with_suffix('')}",
            source=self.source.name,
            title=title,
            url=url,
            published=published,
            kind=kind,
            author=author,
            author_role=_text(data.get("author_role")) or None,
            summary=self.summarizer.summary(_text(data.get("summary")) or None, body),
            body_html=body,
            image=web_url(image, url) if image else None,
            tags=tuple(tags),
        )

    # --- one file ----------------------------------------------------------------------

    def _front_matter(self, raw: MarkdownFile) -> FrontMatter:
        try:
            text = raw.path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise self.skip(raw, f"not UTF-8 text ({exc.reason}); save it as UTF-8") from None
        except OSError as exc:
            raise self.skip(raw, f"cannot be read: {exc.strerror or exc}") from None
        lines = text.splitlines(keepends=True)
        if not lines or lines[0].strip() != _FENCE:
            raise self.skip(
                raw, "no front matter; start the file with a '---' line, then title: and date:", 1
            )
        closing = next((i for i in range(1, len(lines)) if lines[i].strip() == _FENCE), None)
        if closing is None:
            raise self.skip(raw, "front matter is not closed; add a '---' line after it", 1)
        yaml_text = "".join(lines[1:closing])
        import yaml  # only for a source the cache could not answer

        try:
            root = yaml.compose(yaml_text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(yaml_text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 2 if mark is not None else 1  # +1 for 0-based, +1 for '---'
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.skip(
                raw,
                f"front matter is not valid YAML: {problem}; check quoting and indentation",
                line,
            ) from None
        if not isinstance(data, dict):
            raise self.skip(raw, "front matter must be 'key: value' lines (a YAML mapping)", 2)
        key_lines: dict[str, int] = {}
        if isinstance(root, yaml.MappingNode):
            for key_node, _ in root.value:
                key_lines[str(key_node.value)] = key_node.start_mark.line + 2
        return FrontMatter(data, key_lines, "".join(lines[closing + 1 :]))

    def _date(self, value: object, raw: MarkdownFile, line: int | None) -> datetime:
        zone = ZoneInfo(self.loaded.settings.newsletter.timezone)
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day)
        else:
            try:
                moment = datetime.fromisoformat(str(value).strip())
            except ValueError:
                raise self.skip(
                    raw,
                    f"date {value!r} is not a date; write it as 2026-11-02 or "
                    "2026-11-02 09:30 (optionally with a UTC offset such as +00:00)",
                    line,
                ) from None
        return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment

    def _url(self, data: Mapping[str, Any], raw: MarkdownFile, line: int | None) -> str:
        site = self.loaded.settings.newsletter.site_url
        given = _text(data.get("url"))
        if given:
            resolved = web_url(given, site + "/")
            if resolved is None:
                raise self.skip(raw, f"url {given!r} is not an http(s) link", line)
            return resolved
        slug = _DATE_PREFIX.sub("", raw.path.stem)
        return urljoin((self.source.base_url or site) + "/", f"{slug}/")

    def _render(self, body: str) -> str:
        import markdown as markdown_lib  # only for a source the cache could not answer

        return markdown_lib.markdown(
            body, extensions=list(MARKDOWN_EXTENSIONS), output_format="html"
        )

    def skip(self, raw: MarkdownFile, message: str, line: int | None = None) -> SkipItem:
        suffix = f":{line}" if line else ""
        return SkipItem(
            f"{raw.relative}{suffix}", message, location=f"{self._shown(raw.path)}{suffix}"
        )

    def _shown(self, path: Path) -> str:
        """The file as the user would type it: relative to newsletter.yml when inside it."""
        try:
            return path.relative_to(self.loaded.base_dir).as_posix()
        except ValueError:
            return str(path)


def _hidden(relative: Path) -> bool:
    return any(part.startswith((".", "_")) for part in relative.parts)


def _text(value: object) -> str:
    if value is None:
        return ""
    return str(value).strip()


def _tags(value: object) -> list[str]:
    """Tags as a YAML list or a comma-separated string; empty ones dropped."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]
