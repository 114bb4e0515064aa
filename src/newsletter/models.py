"""Plain data that flows between the pipeline's stages.

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


class SubscriberStatus(enum.StrEnum):
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"

    @property
    def strength(self) -> int:
        """Feedback only ever moves a status up this order.

        A complaint or a hard bounce says more than a click on "unsubscribe", and provider
        events arrive late and out of order, so an older or retried event must never
        soften (or undo) what is already known.
        """
        return _STRENGTH[self]


_STRENGTH = {
    SubscriberStatus.SUBSCRIBED: 0,
    SubscriberStatus.UNSUBSCRIBED: 1,
    SubscriberStatus.BOUNCED: 2,
    SubscriberStatus.COMPLAINED: 3,
}


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    """Normalised (lower-case domain, IDNA) by email-validator."""
    name: str = ""
    status: SubscriberStatus = SubscriberStatus.SUBSCRIBED
    attributes: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.strip() else ""


@dataclass(frozen=True)
class OutgoingIssue:
    """What every recipient of one send shares: rendered once, personalised per recipient."""

    issue_id: str
    """The issue's slug, e.g. 001-2026-11-24; carried to the provider for tracking."""
    subject: str
    html: str
    text: str
    from_name: str
    from_address: str
    reply_to: str | None
    list_id: str
    """RFC 2919 List-Id value, e.g. 'Leading Together <members.leading-together.example.org>'."""
    unsubscribe_mailto: str | None = None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipient:
    """One addressee of a send, with the values for the issue's merge placeholders."""

    subscriber_id: int
    email: str
    name: str
    merge_values: dict[str, str] = field(default_factory=dict, compare=False)
    """Placeholder name -> value, e.g. first_name, email, unsubscribe_url, attributes."""
    unsubscribe_url: str = ""


@dataclass(frozen=True)
class DeliveryResult:
    """What the provider said about one recipient of a batch."""

    subscriber_id: int
    ok: bool
    provider_id: str | None = None
    """The provider's message or batch id, for the ledger."""
    error: str | None = None
