"""An issue and recipients shaped like a real send, shared by the provider tests."""

from __future__ import annotations

from collections.abc import Sequence

from newsletter.message import PreparedIssue
from newsletter.providers import Provider
from newsletter.send_models import Delivery, Outcome, OutgoingIssue, Recipient, RecipientRow
from newsletter.tokens import TokenSigner

SECRET = "test-secret-for-unsubscribe-links"
LIST = "members"
BASE = "https://leading-together.example.org/unsubscribe/"
LIST_ID = 1


def sample_issue(**changes: object) -> OutgoingIssue:
    fields: dict[str, object] = {
        "issue_id": "001-2026-11-24",
        "subject": "Issue #1 for %%first_name|friends%%: leading together",
        "html": (
            "<html><body><p>Dear %%first_name|reader%%,</p>\n"
            "<p>This week: teams that listen.</p>\n"
            '<p><a href="%%unsubscribe_url%%">Unsubscribe</a></p></body></html>'
        ),
        "text": (
            "Dear %%first_name|reader%%,\n\nThis week: teams that listen.\n\n"
            "Unsubscribe: %%unsubscribe_url%%\n"
        ),
        "from_name": "Leading Together",
        "from_address": "news@leading-together.example.org",
        "reply_to": "editor@leading-together.example.org",
        "list_id": "Leading Together <members.leading-together.example.org>",
        "unsubscribe_mailto": "unsubscribe@leading-together.example.org",
        "categories": ("weekly",),
        "unsubscribe_base": BASE,
    }
    fields.update(changes)
    return OutgoingIssue(**fields)  # type: ignore[arg-type]


def row(subscriber_id: int, email: str, name: str = "", **merge: str) -> RecipientRow:
    """One recipient as the send loop hands them to a provider, with a genuine token."""
    token = TokenSigner(SECRET).make(subscriber_id, email, LIST_ID)
    return (subscriber_id, email, name, dict(merge), token)


def recipient(subscriber_id: int, email: str, name: str = "", **merge: str) -> Recipient:
    """The same recipient as ``row`` gives, as the message writer takes them."""
    _, _, _, values, token = row(subscriber_id, email, name, **merge)
    return Recipient(subscriber_id, email, name, values, BASE + token)


def url_of(recipient: RecipientRow) -> str:
    return BASE + recipient[4]


def many(count: int) -> list[RecipientRow]:
    return [row(n, f"reader{n}@example.com", f"Reader {n}") for n in range(1, count + 1)]


def deliver(
    provider: Provider, rows: Sequence[RecipientRow], issue: OutgoingIssue | None = None
) -> Delivery:
    """One batch through a provider, as a worker of the send loop delivers it."""
    return provider.deliver(PreparedIssue(issue or sample_issue()), rows)


def outcomes(delivery: Delivery) -> dict[int, Outcome]:
    """Each recipient's outcome, by subscriber id."""
    return {sid: delivery.outcome_of(sid)[0] for sid in delivery.subscriber_ids}
