"""The issues/ folder: one sub-folder per published issue, an index page and an Atom feed.

Layout::

    issues/
      001-2026-11-24/  email.html  email.txt  issue.json  index.html (the web copy)
      index.html       every issue, newest first
      feed.xml         Atom feed of every issue

The archive is the record of what was published: featured items are never repeated and
numbering continues from it. So an issue appears whole or not at all (written into a
hidden sibling folder, then renamed into place), a published issue is never overwritten,
and the derived files are byte-identical for the same issues, so publishing the folder
with rsync or git shows only real changes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import NewsletterInfo
from .errors import ArchiveError
from .models import ArchivedIssue, ArchivedItem, IssueMeta, RenderedIssue

if TYPE_CHECKING:
    import jinja2

ISSUE_FILE = "issue.json"
HTML_FILE = "email.html"
TEXT_FILE = "email.txt"
WEB_FILE = "index.html"
"""The view-in-browser page: the e-mail with its merge fields filled for an anonymous reader."""
INDEX_FILE = "index.html"
FEED_FILE = "feed.xml"
TEMP_PREFIX = ".tmp-"
STALE_TEMP_SECONDS = 3600
ATOM_NS = "http://www.w3.org/2005/Atom"

_INDEX_PAGE = """<!DOCTYPE html>
<html lang="{{ language }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ name }}: all issues</title>
<link rel="alternate" type="application/atom+xml" title="{{ name }}" href="feed.xml">
<style>
body { font-family: Helvetica, Arial, sans-serif; max-width: 40rem; margin: 2rem auto;
       padding: 0 1rem; color: #1f2933; line-height: 1.5; }
ol { list-style: none; padding: 0; }
li { margin: 0 0 1rem; }
.meta { color: #616e7c; font-size: 0.9rem; }
</style>
</head>
<body>
<h1>{{ name }}</h1>
{% if description %}
<p>{{ description }}</p>
{% endif %}
{% if issues %}
<ol class="issues">
{% for issue in issues %}
<li><span class="meta">#{{ issue.number }} · \
<time datetime="{{ issue.date.isoformat() }}">{{ issue.date.isoformat() }}</time></span><br>
<a href="{{ issue.slug }}/">{{ issue.subject }}</a></li>
{% endfor %}
</ol>
{% else %}
<p>No issues yet.</p>
{% endif %}
<p><a href="feed.xml">Subscribe to the feed</a></p>
</body>
</html>
"""


@functools.cache
def _index_template() -> jinja2.Template:
    """Compiled when an issue is filed: reading the archive (a dry run, a send) needs no Jinja."""
    from .sandbox import sandboxed_environment

    environment = sandboxed_environment(
        autoescape=True, trim_blocks=True, keep_trailing_newline=True
    )
    return environment.from_string(_INDEX_PAGE)


def web_copy(html: str, newsletter: NewsletterInfo) -> str:
    """The e-mail as a web page: merge fields take their fallbacks ("Hello there").

    The archive is public, so it must not carry anyone's name or unsubscribe token; its
    unsubscribe link asks by e-mail instead.
    """
    contact = newsletter.reply_to or newsletter.sender.address
    values = {"unsubscribe_url": f"mailto:{contact}?subject=unsubscribe"}
    from . import merge  # a dry run answered from the cache files nothing and needs none of it

    return merge.substitute(html, values, escape_html=True)


def content_hash(html: str, text: str) -> str:
    """Fingerprint of an issue's two bodies, so a resend can prove it sends what was archived."""
    digest = hashlib.sha256()
    for body in (html, text):
        data = body.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))  # length prefix: ("ab","c") != ("a","bc")
        digest.update(data)
    return f"sha256:{digest.hexdigest()}"


def atomic_write(path: Path, data: str | bytes) -> None:
    """Replace ``path`` so that a reader sees the old file or the new one, never half of one."""
    import tempfile  # writes only: a dry run or a read of the archive starts without it

    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, temp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)  # mkstemp's 0600 would hide a published page from a web server
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


class Archive:
    """Reads and extends one issues/ folder."""

    def __init__(self, directory: Path, *, newsletter: NewsletterInfo) -> None:
        self.directory = Path(directory)
        self.newsletter = newsletter

    # --- reading ---------------------------------------------------------------------------

    def issues(self) -> list[ArchivedIssue]:
        """Every archived issue, oldest first; files and folders that are not issues are ignored."""
        if not self.directory.exists():
            return []
        if not self.directory.is_dir():
            raise ArchiveError(
                f"{self.directory}: the issues folder is a file, not a folder",
                hint="move the file away or set output.directory in newsletter.yml",
            )
        try:
            entries = sorted(self.directory.iterdir())
        except OSError as exc:
            raise ArchiveError(
                f"{self.directory}: cannot read the issues folder: {exc.strerror or exc}",
                hint="check the folder's permissions",
            ) from None
        found = [
            _read_issue(entry / ISSUE_FILE)
            for entry in entries
            if not entry.name.startswith(".") and (entry / ISSUE_FILE).is_file()
        ]
        return sorted(found, key=lambda issue: (issue.number, issue.slug))

    def featured_keys(self) -> set[str]:
        """Ids and urls of every item ever published, so no item is featured twice."""
        return {
            key for issue in self.issues() for item in issue.items for key in (item.id, item.url)
        }

    def next_number(self, first_number: int = 1) -> int:
        numbers = [issue.number for issue in self.issues()]
        return max(numbers) + 1 if numbers else first_number

    def find(self, ref: str) -> ArchivedIssue:
        """An issue by slug, number ("3" or "003"), folder path, or "latest"."""
        issues = self.issues()
        if not issues:
            raise ArchiveError(
                f"no issue matches {ref!r}: {self.directory} holds no issues yet",
                hint="build one first with 'newsletter build'",
            )
        wanted = ref.strip()
        if wanted == "latest":
            return issues[-1]
        for issue in issues:
            if _matches(issue, wanted):
                return issue
        listed = ", ".join(issue.slug for issue in issues[-10:])
        more = f" (and {len(issues) - 10} older)" if len(issues) > 10 else ""
        raise ArchiveError(
            f"no issue matches {ref!r} in {self.directory}; it holds {listed}{more}",
            hint="name an issue by number (3), slug (003-2026-11-24), folder or 'latest'",
        )

    def path_for(self, meta: IssueMeta) -> Path:
        return self.directory / meta.slug

    # --- writing ---------------------------------------------------------------------------

    def write_issue(self, rendered: RenderedIssue) -> ArchivedIssue:
        """Publish one issue into the archive, whole or not at all, and refresh index and feed.

        Never overwrites: an existing folder for the same number and date is an error. If
        anything fails, neither the issue folder nor a temporary folder is left behind, so
        numbering does not advance.
        """
        self._ensure_directory()
        target = self.path_for(rendered.meta)
        if target.exists():
            raise ArchiveError(
                f"{target}: issue {rendered.meta.number} already exists; "
                "a published issue is never overwritten",
                hint="remove that folder to rebuild it, or build for another --date",
            )
        import shutil  # writes only, as in atomic_write
        import tempfile

        self._remove_stale_temp_folders()
        record = _issue_record(rendered)
        try:
            staging = Path(
                tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{rendered.meta.slug}-", dir=self.directory)
            )
        except OSError as exc:
            raise self._write_error(exc) from None
        try:
            os.chmod(staging, 0o755)
            _write_synced(staging / HTML_FILE, rendered.html)
            _write_synced(staging / TEXT_FILE, rendered.text)
            _write_synced(staging / WEB_FILE, web_copy(rendered.html, self.newsletter))
            _write_synced(staging / ISSUE_FILE, _dump_json(record))
            os.rename(staging, target)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise self._write_error(exc) from None
        _sync_directory(self.directory)
        try:
            self.write_indexes()
        except ArchiveError as exc:
            # The indexes must list exactly what exists: take the issue back out.
            shutil.rmtree(target, ignore_errors=True)
            with contextlib.suppress(ArchiveError):
                self.write_indexes()
            raise ArchiveError(
                f"issue {rendered.meta.slug} was not archived: {exc.message}", hint=exc.hint
            ) from None
        return _to_archived(record, target)

    def write_indexes(self) -> None:
        """Rewrite index.html and feed.xml from the issues on disk."""
        issues = self.issues()
        self._ensure_directory()
        try:
            atomic_write(self.directory / INDEX_FILE, self._index_html(issues))
            atomic_write(self.directory / FEED_FILE, self._feed_xml(issues))
        except OSError as exc:
            raise self._write_error(exc) from None

    # --- derived files ---------------------------------------------------------------------

    def _index_html(self, issues: list[ArchivedIssue]) -> str:
        return _index_template().render(
            language=self.newsletter.language,
            name=self.newsletter.name,
            description=self.newsletter.description,
            issues=list(reversed(issues)),
        )

    def _feed_xml(self, issues: list[ArchivedIssue]) -> bytes:
        import xml.etree.ElementTree as ET  # written with an issue; reading needs none of it

        base = self.newsletter.public_archive_url.rstrip("/")
        feed = ET.Element("feed", xmlns=ATOM_NS)
        ET.SubElement(feed, "id").text = f"{base}/"
        ET.SubElement(feed, "title").text = self.newsletter.name
        if self.newsletter.description:
            ET.SubElement(feed, "subtitle").text = self.newsletter.description
        # The newest issue's date, not the clock: the same issues give the same bytes.
        newest = max((issue.date for issue in issues), default=date(1970, 1, 1))
        ET.SubElement(feed, "updated").text = _atom_date(newest)
        ET.SubElement(feed, "link", rel="self", href=f"{base}/{FEED_FILE}")
        ET.SubElement(feed, "link", rel="alternate", type="text/html", href=f"{base}/")
        author = ET.SubElement(feed, "author")
        ET.SubElement(author, "name").text = self.newsletter.name
        for issue in reversed(issues):
            entry = ET.SubElement(feed, "entry")
            ET.SubElement(entry, "id").text = f"{base}/{issue.slug}/"
            ET.SubElement(entry, "title").text = issue.subject
            ET.SubElement(entry, "updated").text = _atom_date(issue.date)
            ET.SubElement(
                entry,
                "link",
                rel="alternate",
                type="text/html",
                href=f"{base}/{issue.slug}/",
            )
            ET.SubElement(entry, "summary").text = issue.preheader
        ET.indent(feed)
        document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
        return document + b"\n"

    # --- helpers ---------------------------------------------------------------------------

    def _ensure_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._write_error(exc) from None
        if not os.access(self.directory, os.W_OK):
            raise self._write_error(PermissionError("permission denied"))

    def _write_error(self, exc: OSError) -> ArchiveError:
        reason = exc.strerror or str(exc)
        if isinstance(exc, NotADirectoryError | FileExistsError):
            reason = "the path (or a folder above it) is a file, not a folder"
        return ArchiveError(
            f"{self.directory}: cannot write to the issues folder: {reason}",
            hint="make the folder writable and check that its disk has free space, or point "
            "output.directory in newsletter.yml "
            "at a folder you can write to",
        )

    def _remove_stale_temp_folders(self) -> None:
        """Clear what a crashed build left behind; recent ones may belong to a running build."""
        import shutil  # writes only, as in atomic_write

        cutoff = time.time() - STALE_TEMP_SECONDS
        for entry in self.directory.glob(f"{TEMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                if entry.is_dir() and entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry)


def _issue_record(rendered: RenderedIssue) -> dict[str, Any]:
    meta = rendered.meta
    return {
        "number": meta.number,
        "date": meta.date.isoformat(),
        "subject": meta.subject,
        "preheader": meta.preheader,
        "slug": meta.slug,
        "view_url": rendered.view_url,
        "content_hash": content_hash(rendered.html, rendered.text),
        "items": [
            {"id": post.id, "url": post.url, "title": post.title, "kind": str(post.kind)}
            for post in rendered.selection.items
        ],
    }


def _dump_json(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


_REQUIRED: dict[str, tuple[type, str]] = {
    "number": (int, "a whole number"),
    "date": (str, "a date string"),
    "subject": (str, "a string"),
    "preheader": (str, "a string"),
    "slug": (str, "a string"),
    "content_hash": (str, "a string"),
    "items": (list, "a list"),
}
_ITEM_KEYS = ("id", "url", "title", "kind")


def _read_issue(path: Path) -> ArchivedIssue:
    """One issue.json, checked, so a hand-edited file fails with its name and the bad key."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise _corrupt(path, f"cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise _corrupt(path, f"line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise _corrupt(path, "expected a JSON object")
    for key, (kind, expected) in _REQUIRED.items():
        value = record.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            shown = "nothing" if key not in record else repr(value)
            raise _corrupt(path, f"'{key}': expected {expected}, got {shown}")
    for index, item in enumerate(record["items"]):
        if not isinstance(item, dict) or not all(
            isinstance(item.get(key), str) for key in _ITEM_KEYS
        ):
            raise _corrupt(
                path, f"'items[{index}]': expected an object with {', '.join(_ITEM_KEYS)}"
            )
    try:
        date.fromisoformat(record["date"])
    except ValueError:
        raise _corrupt(path, f"'date': expected YYYY-MM-DD, got {record['date']!r}") from None
    return _to_archived(record, path.parent)


def _to_archived(record: dict[str, Any], folder: Path) -> ArchivedIssue:
    known = {*_REQUIRED, "view_url"}
    return ArchivedIssue(
        number=record["number"],
        date=date.fromisoformat(record["date"]),
        subject=record["subject"],
        preheader=record["preheader"],
        slug=record["slug"],
        items=tuple(
            ArchivedItem(**{key: item[key] for key in _ITEM_KEYS}) for item in record["items"]
        ),
        content_hash=record["content_hash"],
        path=str(folder),
        view_url=str(record.get("view_url") or ""),
        extra={key: value for key, value in record.items() if key not in known},
    )


def _corrupt(path: Path, problem: str) -> ArchiveError:
    return ArchiveError(
        f"{path}: corrupt issue record: {problem}",
        hint="restore the file from your backup or version control, or remove that issue folder",
    )


def _matches(issue: ArchivedIssue, ref: str) -> bool:
    if ref.isdigit():
        return int(ref) == issue.number
    if ref in (issue.slug, Path(issue.path).name):
        return True
    if re.search(r"[/\\]", ref) or Path(ref).exists():
        with contextlib.suppress(OSError):
            return Path(ref).resolve() == Path(issue.path).resolve()
    return False


def _atom_date(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable; a no-op where folders cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def message_parts(issue: ArchivedIssue) -> tuple[str, str]:
    """The archived HTML and text of an issue, as send and check read them; ArchiveError
    naming the file when one is missing or not UTF-8."""
    return _archived_text(issue, Path(issue.html_path)), _archived_text(
        issue, Path(issue.text_path)
    )


def _archived_text(issue: ArchivedIssue, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, UnicodeDecodeError):
            reason = f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        else:
            reason = exc.strerror or str(exc)
        raise ArchiveError(
            f"issue {issue.slug} is incomplete: {path}: {reason}",
            hint="rebuild it: remove its folder and run `newsletter build` again",
        ) from None
