"""Results of slow, pure steps of a build, kept in ``.newsletter/cache/`` beside newsletter.yml.

Checking the config, reading the sources and rendering an issue give the same output for
the same input, yet they cost most of a command's start-up (pydantic's validators, Babel,
Markdown, feedparser, Jinja, MJML and premailer must first be loaded). A step's result is
kept under a digest of everything the step reads: the settings, the content of the files
it reads, the issue's data, and the files of this package and of the libraries that do
the work, so editing a post, the template or the config, or upgrading a library, makes
the next command do the step again. Content, not
change times, stands for a post or a template: a file rewritten within the same tick of
the file system's clock, at the same size, would otherwise look unchanged.

Entries are JSON written whole or not at all; one that cannot be read or decoded counts
as absent, and a folder that cannot be written only means the next build does the step
again. The cache never changes what a build writes: it only saves doing a step twice.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from . import __version__
from .lock import LOCK_DIR

CACHE_DIR = "cache"
KEPT_ENTRIES = 16
"""Per kind of step; the entries used least recently (a source before its latest edits,
say) are deleted, since a folder of long posts makes entries of megabytes."""
LIBRARIES = (
    "babel", "croniter", "cssselect", "cssutils", "dateutil", "email_validator", "feedparser",
    "idna", "jinja2", "lxml", "markdown", "markupsafe", "mjml", "nh3", "premailer", "pydantic",
    "pydantic_core", "sgmllib", "yaml",
)  # fmt: skip
"""Whose output a cached step holds; an upgrade changes their files, and so the digest. A
library a cached step starts to use belongs here."""
FORMAT = 1
"""Raised when what an entry holds changes shape, so older entries are not misread."""


def cache_dir(base_dir: Path) -> Path:
    return base_dir / LOCK_DIR / CACHE_DIR


class Memo:
    """One kind of step's kept results, each a JSON value under a digest of its inputs."""

    def __init__(self, base_dir: Path, kind: str) -> None:
        self.folder = cache_dir(base_dir) / kind

    def get(self, key: str) -> Any:
        """The value kept under ``key``; None when there is none or it cannot be read."""
        entry = self.folder / f"{key}.json"
        try:
            value = json.loads(entry.read_bytes())
        except (OSError, ValueError):
            return None
        with contextlib.suppress(OSError):
            os.utime(entry)  # used now: the last an unchanged source's entry to be pruned
        return value

    def put(self, key: str, value: Any) -> None:
        """Keep ``value``; a folder that cannot be written is left as it is."""
        import tempfile  # only a miss writes: a command answered from the cache starts without it

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
        except OSError:
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(value, handle, ensure_ascii=False, separators=(",", ":"))
            os.replace(temporary, self.folder / f"{key}.json")
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            return
        self._prune()

    def _prune(self) -> None:
        with contextlib.suppress(OSError):
            entries = sorted(self.folder.glob("*.json"), key=lambda path: path.stat().st_mtime_ns)
            for stale in entries[:-KEPT_ENTRIES]:
                stale.unlink(missing_ok=True)


def settings_stamp(value: Any) -> Any:
    """Settings as plain JSON values, read field by field: pydantic's own dump would first
    build the serialisers that a config read back from the cache goes without."""
    fields = getattr(type(value), "model_fields", None)
    if fields is not None:
        return {name: settings_stamp(getattr(value, name)) for name in fields}
    if isinstance(value, list | tuple):
        return [settings_stamp(item) for item in value]
    return value


def digest(*parts: Any) -> str:
    """A key for ``parts`` (JSON values): equal parts, equal keys; anything else, another."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_stamp(path: Path) -> str | None:
    """A digest of the file's bytes; None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def files_stamp(folder: Path, paths: Iterable[Path]) -> list[Any]:
    return [[path.relative_to(folder).as_posix(), file_stamp(path)] for path in sorted(paths)]


def folder_stamp(folder: Path) -> list[Any]:
    """Every file under ``folder``, hidden ones too, with its stamp."""
    return files_stamp(folder, (path for path in folder.rglob("*") if path.is_file()))


def _installed_stamp(path: Path) -> list[int] | None:
    """What an install or an edit of a code file changes: size, change time and inode."""
    try:
        found = path.stat()
    except OSError:
        return None
    return [found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_ino]


def _code_files(folder: str, prefix: str) -> Iterator[list[Any]]:
    """Each code file under ``folder`` as [relative path, stamp]: a walk by ``os.scandir``
    that skips ``__pycache__``, a third of the time ``Path.rglob`` takes, on every command."""
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            if entry.name != "__pycache__":
                yield from _code_files(entry.path, f"{prefix}{entry.name}/")
        elif entry.name.endswith((".py", ".po")):
            yield [prefix + entry.name, _installed_stamp(Path(entry.path))]


@functools.cache
def code_stamp() -> list[Any]:
    """This package's files and the libraries' own, so new code never reads old results."""
    own = sorted(_code_files(str(Path(__file__).resolve().parent), ""))
    libraries = []
    for name in LIBRARIES:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        libraries.append([name, origin, _installed_stamp(Path(origin)) if origin else None])
    return [FORMAT, __version__, sys.version, own, libraries]
