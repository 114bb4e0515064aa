"""An issue and recipients shaped like a real send, shared by the provider tests."""

from __future__ import annotations

from newsletter.models import OutgoingIssue, Recipient
from newsletter.tokens import make_token

SECRET = "test-secret-for-unsubscribe-links"
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
    }
    fields.update(changes)
    return OutgoingIssue(**fields)  # type: ignore[arg-type]


def recipient(subscriber_id: int, email: str, name: str = "", **merge: str) -> Recipient:
    token = make_token(SECRET, subscriber_id, email, LIST_ID)
    url = f"https://leading-together.example.org/unsubscribe?t={token}"
    return Recipient(
        subscriber_id=subscriber_id,
        email=email,
        name=name,
        merge_values=dict(merge),
        unsubscribe_url=url,
    )


def many(count: int) -> list[Recipient]:
    return [recipient(n, f"reader{n}@example.com", f"Reader {n}") for n in range(1, count + 1)]
