"""`newsletter run`: the one idempotent command a timer calls.

It works out the latest due slot of the schedule and brings that slot's issue one step
closer to done: build it if it is not built, send or resume it if it is not fully sent,
and otherwise do nothing. Calling it every few minutes is safe: a run lock keeps two runs
apart, the archive and the send ledger remember what was done, and missed slots collapse
into the latest one (a machine that was off for a week sends one issue, not a backlog).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime

from .archive import Archive
from .build import BuildResult, build_issue
from .config import LoadedConfig
from .dispatch import ProgressCallback
from .errors import NothingNewError
from .lock import LockHolder, RunLock, default_lock_path
from .models import ArchivedIssue
from .providers import Provider
from .schedule import Schedule, Slot, schedule_of
from .send import SendOptions, SendReport, send_issue
from .store import Ledger, open_store

NOTHING_NEW_STATUS = NothingNewError.exit_code


@dataclass(frozen=True)
class RunOutcome:
    action: str
    """nothing-due, already-sent, nothing-new, sent or resumed."""
    message: str
    slot: Slot | None = None
    issue: ArchivedIssue | None = None
    built: BuildResult | None = None
    report: SendReport | None = None
    took_over_from: LockHolder | None = None
    next_slot: Slot | None = None

    @property
    def exit_code(self) -> int:
        if self.action == "nothing-new":
            return NOTHING_NEW_STATUS
        return self.report.exit_status if self.report is not None else 0


def issue_for_slot(
    archive: Archive, schedule: Schedule, slot: Slot, begun: Callable[[str], bool]
) -> ArchivedIssue | None:
    """The issue that serves ``slot``: among those dated after the previous slot, the
    newest whose send has begun, else the newest.

    An issue the comms team built ahead of time to preview (dated the day before a
    Tuesday slot, say) is the one the slot sends; it is not built a second time. Once a
    send of one of them has begun, that one stays the slot's issue (``begun`` asks the
    ledger): a newer one built by hand meanwhile must not go to the people who have the
    first already.
    """
    previous = schedule.previous_slot(slot)
    after: date | None = previous.date() if previous is not None else None
    candidates = sorted(
        (
            issue
            for issue in archive.issues()
            if issue.date <= slot.date() and (after is None or issue.date > after)
        ),
        key=lambda issue: issue.number,
        reverse=True,
    )
    started = next((issue for issue in candidates if begun(issue.slug)), None)
    return started or next(iter(candidates), None)


def run_due(
    loaded: LoadedConfig,
    *,
    now: datetime | None = None,
    provider: Provider | None = None,
    progress: ProgressCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunOutcome:
    """Do what is due at ``now`` (default: the current time), once."""
    schedule = schedule_of(loaded)
    moment = now or datetime.now(UTC)
    with RunLock(default_lock_path(loaded.base_dir)) as lock, _store_run_lock(loaded, lock):
        outcome = _run_locked(loaded, schedule, moment, provider, progress, sleep)
        if lock.took_over_from is not None:
            outcome = _with(outcome, took_over_from=lock.took_over_from)
        return outcome


@contextmanager
def _store_run_lock(loaded: LoadedConfig, lock: RunLock) -> Iterator[None]:
    """On a PostgreSQL store, the run lock on the server too: runs on other hosts share it."""
    location = loaded.store_location
    if not isinstance(location, str):
        yield
        return
    from .store.postgres import hold_run_lock

    assert lock.holder is not None
    held = hold_run_lock(location, lock.holder)
    try:
        yield
    finally:
        held.close()


def _with(outcome: RunOutcome, **changes: object) -> RunOutcome:
    from dataclasses import replace

    return replace(outcome, **changes)  # type: ignore[arg-type]


def _run_locked(
    loaded: LoadedConfig,
    schedule: Schedule,
    now: datetime,
    provider: Provider | None,
    progress: ProgressCallback | None,
    sleep: Callable[[float], None],
) -> RunOutcome:
    upcoming = schedule.next_due(now, count=1)
    next_slot = upcoming[0] if upcoming else None
    slot = schedule.due_now(now)
    if slot is None:
        when = f"; next at {next_slot}" if next_slot else ""
        return RunOutcome("nothing-due", f"nothing is due{when}", next_slot=next_slot)

    archive = Archive(loaded.issues_dir, newsletter=loaded.settings.newsletter)
    with open_store(loaded) as store:
        ledger = Ledger(store)
        issue = issue_for_slot(
            archive, schedule, slot, lambda slug: ledger.find_send(slug) is not None
        )
    built: BuildResult | None = None
    if issue is None:
        try:
            built = build_issue(loaded, on=slot.date(), now=now, lock_held=True)
        except NothingNewError as exc:
            return RunOutcome(
                "nothing-new",
                f"slot {slot}: {exc.message}",
                slot=slot,
                next_slot=next_slot,
            )
        issue = built.archived
        assert issue is not None  # not a dry run

    with open_store(loaded) as store:
        earlier = Ledger(store).find_send(issue.slug)
    if earlier is not None and earlier.completed_at is not None:
        return RunOutcome(
            "already-sent",
            f"slot {slot}: issue {issue.slug} was already sent; nothing to do",
            slot=slot,
            issue=issue,
            next_slot=next_slot,
        )
    lists = tuple(loaded.settings.schedule.lists)
    report = send_issue(
        loaded,
        issue.slug,
        SendOptions(lists=lists),
        provider=provider,
        progress=progress,
        sleep=sleep,
    )
    action = "resumed" if earlier is not None else "sent"
    verb = "resumed and finished" if action == "resumed" else "sent"
    if report.status not in ("complete", "unconfirmed"):
        verb = "resumed" if action == "resumed" else "sent in part"
    return RunOutcome(
        action,
        f"slot {slot}: issue {issue.slug} {verb}: {report.sent} sent, "
        f"{report.refused} refused, {report.unconfirmed} unconfirmed, "
        f"{report.already_sent} sent earlier",
        slot=slot,
        issue=issue,
        built=built,
        report=report,
        next_slot=next_slot,
    )
