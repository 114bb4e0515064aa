"""The send side's plain data: subscribers, what one send shares, recipients, outcomes.

Apart from ``models`` (posts, selections, issues) so that a build, which never sends,
never creates these classes: each frozen dataclass costs start-up time.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import NewsletterError


class SubscriberStatus(enum.StrEnum):
    """A person's status, or their status on one list.

    A person is ``subscribed`` (reachable), ``unsubscribed`` (left everything), ``bounced``
    or ``complained``: the last two are about the address, whatever the list. On a list,
    a membership is ``pending`` (signed up, not yet confirmed), ``subscribed`` or
    ``unsubscribed``; what a list shows for someone is their own status unless that is
    ``subscribed``, and then the membership's.
    """

    PENDING = "pending"
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
    SubscriberStatus.PENDING: -1,
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
    unsubscribe_base: str = ""
    """What comes before a recipient's token in their unsubscribe link, e.g.
    'https://example.org/unsubscribe/'; empty when the links are made elsewhere."""

    def unsubscribe_url(self, token: str) -> str:
        return self.unsubscribe_base + token if self.unsubscribe_base and token else ""


@dataclass(frozen=True)
class Recipient:
    """One addressee of a send, with the values for the issue's merge placeholders."""

    subscriber_id: int
    email: str
    name: str
    merge_values: dict[str, str] = field(default_factory=dict, compare=False)
    """Placeholder name -> value, e.g. first_name, email, unsubscribe_url, attributes."""
    unsubscribe_url: str = ""


class Outcome(enum.StrEnum):
    """What became of one recipient in one attempt: exactly one of four.

    Only ``NOT_DELIVERED`` is ever retried on its own. ``UNKNOWN`` means the request (or
    the final "." of an SMTP message) went out and no answer came: the provider may have
    taken it, so sending again could give the person a second copy.
    """

    ACCEPTED = "accepted"
    REFUSED = "refused"
    """This recipient only: a rejected RCPT, an address or name the transport cannot carry."""
    NOT_DELIVERED = "not_delivered"
    """Certainly not delivered: refused before the message, 4xx, 429, 5xx, not fully written."""
    UNKNOWN = "unknown"


RecipientRow = tuple[int, str, str, dict[str, str], str]
"""One recipient of a batch as plain values: subscriber id, address, name, merge values
(attributes) and unsubscribe token. A big send makes a million, and a tuple costs a
fraction of a ``Recipient``."""


@dataclass(frozen=True)
class Delivery:
    """What came of one batch, per recipient, as data: the send loop decides what follows.

    Everyone in ``subscriber_ids`` had ``outcome`` except those in ``exceptions``; a batch
    is usually all one outcome, so a million recipients cost a thousand of these.
    """

    subscriber_ids: tuple[int, ...]
    outcome: Outcome
    reason: str = ""
    exceptions: dict[int, tuple[Outcome, str]] = field(default_factory=dict)
    provider_id: str | None = None
    """The provider's id for the request (SendGrid's X-Message-Id), for the ledger."""
    retry_after: float | None = None
    """Seconds the provider asked us to wait before trying again (a 429's reset time)."""
    halt: NewsletterError | None = None
    """A failure retrying cannot mend (a refused key, a refused sender, a request the
    provider cannot parse): the send stops once this batch is recorded."""

    def outcome_of(self, subscriber_id: int) -> tuple[Outcome, str]:
        return self.exceptions.get(subscriber_id, (self.outcome, self.reason))

    def counts(self) -> dict[Outcome, int]:
        counts = dict.fromkeys(Outcome, 0)
        counts[self.outcome] = len(self.subscriber_ids) - len(self.exceptions)
        for outcome, _ in self.exceptions.values():
            counts[outcome] += 1
        return counts

    def with_refused(self, refused: dict[int, str], ids: Sequence[int]) -> Delivery:
        """This delivery for the whole batch ``ids``, with ``refused`` turned away before it."""
        if not refused:
            return self
        exceptions = {sid: (Outcome.REFUSED, why) for sid, why in refused.items()}
        exceptions.update(self.exceptions)
        return replace(self, subscriber_ids=tuple(ids), exceptions=exceptions)

    @classmethod
    def of_all(
        cls, ids: Sequence[int], outcome: Outcome, reason: str = "", **extra: Any
    ) -> Delivery:
        return cls(tuple(ids), outcome, reason, **extra)
