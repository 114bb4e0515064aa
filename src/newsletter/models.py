"""Plain data that flows between the content stages: posts, selections, issues.

The send side's data (subscribers, recipients, outcomes) is in ``send_models``.

Frozen dataclasses, so a stage cannot change what an earlier stage produced and the
same inputs always give the same outputs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime


class PostKind(enum.StrEnum):
    POST = "post"
    GUEST = "guest"


@dataclass(frozen=True)
class Post:
    """One article from a source, already sanitised and with absolute links."""

    id: str
    """Stable across runs: the archive remembers featured items by it."""
    source: str
    title: str
    url: str
    published: datetime
    """Always timezone-aware."""
    kind: PostKind = PostKind.POST
    author: str | None = None
    author_role: str | None = None
    author_organisation: str | None = None
    author_url: str | None = None
    author_photo: str | None = None
    summary: str = ""
    """Plain text, no markup."""
    body_html: str = ""
    """Sanitised HTML: no scripts, styles, iframes, event handlers or javascript: links."""
    image: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def is_guest(self) -> bool:
        return self.kind is PostKind.GUEST


@dataclass(frozen=True)
class ItemWarning:
    """A problem with one item that did not stop the build."""

    source: str
    item: str
    message: str

    def __str__(self) -> str:
        return f"source '{self.source}', item '{self.item}': {self.message}"


@dataclass(frozen=True)
class SourceResult:
    """What one source gave: its posts, and the items it had to skip."""

    name: str
    posts: tuple[Post, ...]
    warnings: tuple[ItemWarning, ...] = ()


@dataclass(frozen=True)
class Selection:
    """The items chosen for one issue, in display order."""

    lead: Post
    posts: tuple[Post, ...]
    """The other posts, after the lead."""
    guests: tuple[Post, ...]

    @property
    def items(self) -> tuple[Post, ...]:
        return (self.lead, *self.posts, *self.guests)


@dataclass(frozen=True)
class IssueMeta:
    """What identifies an issue before it is rendered."""

    number: int
    date: date
    subject: str
    preheader: str

    @property
    def slug(self) -> str:
        return f"{self.number:03d}-{self.date.isoformat()}"


@dataclass(frozen=True)
class RenderedIssue:
    """An issue's two bodies, rendered once; per-recipient merge fields are still placeholders."""

    meta: IssueMeta
    selection: Selection
    html: str
    text: str
    view_url: str


@dataclass(frozen=True)
class ArchivedItem:
    id: str
    url: str
    title: str
    kind: str


@dataclass(frozen=True)
class ArchivedIssue:
    """An issue as read back from ``issues/NNN-YYYY-MM-DD/issue.json``."""

    number: int
    date: date
    subject: str
    preheader: str
    slug: str
    items: tuple[ArchivedItem, ...]
    content_hash: str
    path: str
    """Folder of the issue on disk."""
    view_url: str = ""
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def html_path(self) -> str:
        return f"{self.path}/email.html"

    @property
    def text_path(self) -> str:
        return f"{self.path}/email.txt"
