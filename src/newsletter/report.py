"""What became of an issue's send, read from the ledger: counts per state, and who needs a
look (unconfirmed, refused, still waiting).

The shape of ``IssueReport.as_dict`` is what ``newsletter report --json`` prints; it is
documented in docs/operating.md and kept stable: fields may be added, never renamed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from .archive import Archive
from .config import LoadedConfig
from .spreadsheet import write_row
from .store import Ledger, LedgerState, open_store

ATTENTION = (
    LedgerState.UNCONFIRMED,
    LedgerState.REFUSED,
    LedgerState.QUEUED,
    LedgerState.RETRY,
    LedgerState.SENDING,
)
"""The states listed by default: everyone not simply sent or skipped."""
CSV_FIELDS = ("email", "state", "list", "error", "updated_at", "subscriber_id", "batch")


@dataclass(frozen=True)
class ReportedRecipient:
    subscriber_id: int
    email: str
    list: str
    state: str
    error: str | None
    updated_at: str | None
    batch: int | None
    attempts: int
    retry_at: str | None


@dataclass(frozen=True)
class IssueReport:
    issue_id: str
    lists: tuple[str, ...]
    status: str
    """not-sent; complete; complete-with-unconfirmed; incomplete (recipients still to send)."""
    counts: dict[str, int]
    not_yet_reached: int
    """Subscribed members of the lists without a ledger row: a run would claim them."""
    completed_at: str | None
    last_run: dict[str, Any] | None
    recipients: list[ReportedRecipient] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "issue_id": self.issue_id,
            "lists": list(self.lists),
            "status": self.status,
            "completed_at": self.completed_at,
            "counts": self.counts,
            "not_yet_reached": self.not_yet_reached,
            "last_run": self.last_run,
            "recipients": [vars(recipient) for recipient in self.recipients],
        }


def issue_report(
    loaded: LoadedConfig,
    issue_ref: str,
    *,
    states: Sequence[str] | None = None,
    everyone: bool = False,
) -> IssueReport:
    """The report of one issue; ``states`` (or ``everyone``) chooses who is listed."""
    archive = Archive(loaded.issues_dir, newsletter=loaded.settings.newsletter)
    issue = archive.find(issue_ref)
    with open_store(loaded) as store:
        ledger = Ledger(store)
        send = ledger.find_send(issue.slug)
        lists = send.lists if send is not None else tuple(loaded.settings.schedule.lists)
        counts = ledger.counts(issue.slug)
        fresh = ledger.not_reached(issue.slug, lists)
        wanted = None if everyone else list(states or ATTENTION)
        entries = ledger.entries(issue.slug, wanted)
    if send is None:
        status = "not-sent"
    elif send.completed_at is None or counts["queued"] or counts["retry"]:
        status = "incomplete"
    elif counts["unconfirmed"] or counts["sending"]:
        status = "complete-with-unconfirmed"
    else:
        status = "complete"
    return IssueReport(
        issue_id=issue.slug,
        lists=lists,
        status=status,
        counts=counts,
        not_yet_reached=fresh,
        completed_at=send.completed_at if send else None,
        last_run=send.summary if send else None,
        recipients=[
            ReportedRecipient(
                e.subscriber_id,
                e.email,
                e.list_name,
                str(e.state),
                e.error,
                e.updated_at,
                e.batch_no,
                e.attempts,
                e.retry_at,
            )
            for e in entries
        ],
    )


def write_csv(report: IssueReport, out: TextIO) -> int:
    """The listed recipients as CSV, one row each, safe to open in a spreadsheet."""
    write_row(out, CSV_FIELDS)
    for item in report.recipients:
        write_row(out, (item.email, item.state, item.list, item.error or "",
                        item.updated_at or "", item.subscriber_id, item.batch))  # fmt: skip
    return len(report.recipients)
