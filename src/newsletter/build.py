"""Compose one issue: config -> sources -> select -> render -> archive.

This is the library entry point the CLI, the scheduler and the benchmark share. Each
stage is timed separately so a slow build can be pinned on the stage that caused it.
The renderer (Jinja, MJML, premailer) is imported only when the build's cache
(``render_cache``) has not rendered the same issue before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from .archive import Archive
from .config import LoadedConfig
from .errors import HeaderInjectionError, TemplateError
from .lock import RunLock, default_lock_path
from .models import ArchivedIssue, IssueMeta, ItemWarning, Post, RenderedIssue, Selection
from .render_cache import remembered_issue
from .select import select_items
from .sources import read_sources

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class StageTimer:
    """Wall time per pipeline stage, in seconds, in the order the stages ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


@dataclass(frozen=True)
class BuildResult:
    rendered: RenderedIssue
    path: Path
    """Where the issue is (or, on a dry run, would be) filed."""
    archived: ArchivedIssue | None
    """None on a dry run: nothing was written."""
    warnings: tuple[ItemWarning, ...]
    timings: dict[str, float]

    @property
    def dry_run(self) -> bool:
        return self.archived is None

    @property
    def html_bytes(self) -> int:
        return len(self.rendered.html.encode("utf-8"))

    @property
    def text_bytes(self) -> int:
        return len(self.rendered.text.encode("utf-8"))


def build_time(loaded: LoadedConfig, on: date | None, now: datetime | None) -> datetime:
    """The moment the build stands at: posts after it count as not yet published.

    Building for a given date (``--date``) stands at the end of that day in the
    newsletter's zone, so an issue can be rebuilt for a past date reproducibly.
    """
    zone = ZoneInfo(loaded.settings.newsletter.timezone)
    if on is not None:
        return datetime.combine(on, clock_time(23, 59, 59), tzinfo=zone)
    return (now or datetime.now(zone)).astimezone(zone)


def meta_context(
    loaded: LoadedConfig, number: int, on: date, selection: Selection
) -> dict[str, Any]:
    """What the subject and preheader templates may use."""
    from .language import translations_for

    return {
        "newsletter": loaded.settings.newsletter,
        "issue": {"number": number, "date": on},
        "lead": selection.lead,
        "posts": selection.posts,
        "guests": selection.guests,
        "others": [item.title for item in (*selection.posts, *selection.guests)],
        "_": translations_for(loaded.settings.newsletter.language).gettext,
    }


def compose_meta(loaded: LoadedConfig, number: int, on: date, selection: Selection) -> IssueMeta:
    """The issue's subject and preheader; a subject no header can carry fails the build."""
    from .message import check_subject
    from .render import render_meta_text

    context = meta_context(loaded, number, on, selection)
    settings = loaded.settings.issue
    subject = render_meta_text(loaded, settings.subject, field="issue.subject", context=context)
    try:
        check_subject(subject)
    except HeaderInjectionError as exc:
        raise TemplateError(
            f"{loaded.path.name}: issue.subject: {exc.message}",
            hint="remove the character from the post title or text the subject uses, "
            f"or change issue.subject in {loaded.path}",
        ) from None
    preheader = render_meta_text(
        loaded, settings.preheader, field="issue.preheader", context=context
    )
    return IssueMeta(number=number, date=on, subject=subject, preheader=preheader)


def view_url_for(loaded: LoadedConfig, meta: IssueMeta) -> str:
    return f"{loaded.settings.newsletter.public_archive_url}/{meta.slug}/"


def render_new_issue(
    loaded: LoadedConfig, number: int, on: date, selection: Selection
) -> RenderedIssue:
    from .render import render_issue

    meta = compose_meta(loaded, number, on, selection)
    return render_issue(loaded, meta, selection, view_url_for(loaded, meta))


def build_issue(
    loaded: LoadedConfig,
    *,
    on: date | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    strict: bool = False,
    on_warning: Callable[[ItemWarning], None] | None = None,
    lock_held: bool = False,
) -> BuildResult:
    """Build the next issue and file it in the archive (unless ``dry_run``).

    A real build holds the run lock from reading the sources to filing the issue, so a
    build by hand and a timer's run cannot both number and file an issue at once;
    ``lock_held`` says the caller (``run``) holds it already. Raises LockedError when
    another process holds it, and NothingNewError when no content qualifies, both
    before anything is written.
    """
    if dry_run or lock_held:
        return _build(loaded, on, now, dry_run, strict, on_warning)
    with RunLock(default_lock_path(loaded.base_dir), command="build"):
        return _build(loaded, on, now, dry_run, strict, on_warning)


def _build(
    loaded: LoadedConfig,
    on: date | None,
    now: datetime | None,
    dry_run: bool,
    strict: bool,
    on_warning: Callable[[ItemWarning], None] | None,
) -> BuildResult:
    timer = StageTimer()
    settings = loaded.settings
    moment = build_time(loaded, on, now)
    issue_date = on or moment.date()

    with timer.stage("sources"):
        results = read_sources(loaded, strict=strict)
    for result in results:
        log.info(
            "source %(source)s: %(items)d item(s) read, %(skipped)d skipped",
            {"event": "source-read", "source": result.name, "items": len(result.posts),
             "skipped": len(result.warnings)},
        )  # fmt: skip
    warnings = tuple(w for result in results for w in result.warnings)
    if on_warning is not None:
        for warning in warnings:
            on_warning(warning)
    posts: list[Post] = [post for result in results for post in result.posts]

    archive = Archive(loaded.issues_dir, newsletter=settings.newsletter)
    with timer.stage("select"):
        selection = select_items(
            posts, featured=archive.featured_keys(), settings=settings.selection, now=moment
        )
        number = archive.next_number(settings.issue.first_number)
    log.info(
        "issue %(number)d: %(posts)d post(s) and %(guests)d guest column(s) selected, "
        "lead %(lead)r",
        {"event": "items-selected", "number": number,
         "posts": sum(not item.is_guest for item in selection.items),
         "guests": sum(item.is_guest for item in selection.items), "lead": selection.lead.title,
         "ids": [item.id for item in selection.items]},
    )  # fmt: skip

    with timer.stage("render"):
        rendered = remembered_issue(
            loaded,
            number,
            issue_date,
            selection,
            lambda: render_new_issue(loaded, number, issue_date, selection),
        )

    archived: ArchivedIssue | None = None
    if not dry_run:
        with timer.stage("archive"):
            archived = archive.write_issue(rendered)
    path = archive.path_for(rendered.meta)
    log.info(
        "issue %(number)d %(done)s %(path)s (%(seconds).2f s: %(stages)s)",
        {"event": "issue-filed" if archived else "issue-dry-run", "number": number,
         "done": "filed at" if archived else "would be filed at", "path": str(path),
         "seconds": round(sum(timer.seconds.values()), 3),
         "stages": ", ".join(f"{name} {spent:.2f} s" for name, spent in timer.seconds.items())},
    )  # fmt: skip
    return BuildResult(
        rendered=rendered,
        path=path,
        archived=archived,
        warnings=warnings,
        timings=dict(timer.seconds),
    )
