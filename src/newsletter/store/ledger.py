"""The send ledger: who has been sent which issue, and who holds the right to send it.

The ledger never lies. A recipient is marked ``in_flight`` (and committed) before the
batch is handed to the provider and ``sent`` only after the provider accepted it, so
after a crash ``in_flight`` rows are exactly the ones whose fate is unknown and every
``sent`` row really went out. A resumed send starts from ``queued`` and never repeats
a ``sent`` one.
"""

from __future__ import annotations

import enum
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ..errors import SendInProgressError
from ..models import Subscriber
from .db import parse_time, utc_now
from .subscribers import CHUNK, SUBSCRIBER_COLUMNS, Store, subscriber_from_row

STALE_AFTER = timedelta(minutes=10)
_BATCH = 1000
"""Ids per statement: far below SQLite's limit of 32,766 parameters, one batch at once."""


class LedgerState(enum.StrEnum):
    QUEUED = "queued"
    IN_FLIGHT = "in_flight"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Queued, but the person left the list before their turn came."""


@dataclass(frozen=True)
class LedgerEntry:
    issue_id: str
    subscriber_id: int
    email: str
    list_name: str
    state: LedgerState
    batch_id: str | None
    provider_id: str | None
    error: str | None
    updated_at: str


@dataclass(frozen=True)
class PendingPage:
    """Queued recipients of one stretch of subscriber ids, read for one batch."""

    rows: list[tuple[int, str, str, str, str, str]]
    """Subscriber id, address, name, attributes (JSON), list name, status: still subscribed."""
    held: list[int]
    """Queued ids in the same stretch whose subscriber left: a batch must not claim them."""

    @property
    def span(self) -> PageSpan:
        return PageSpan(self.rows[0][0], self.rows[-1][0], self.held)


@dataclass(frozen=True)
class PageSpan:
    """What a claim needs of a page: its first and last id, and the ids it leaves out."""

    first: int
    last: int
    held: list[int]


@dataclass(frozen=True)
class ClaimedBatch:
    """Recipients marked in flight together, numbered per issue, in subscriber id order."""

    issue_id: str
    batch_no: int
    subscriber_ids: list[int]


@dataclass(frozen=True)
class SendLock:
    issue_id: str
    owner: str
    acquired_at: str
    heartbeat_at: str
    replaced: str | None = None
    """The owner of a dead or stale lock this one took over, for the log."""


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    except OSError:
        return False
    return True


def _chunks(ids: Iterable[int], size: int = _BATCH) -> Iterator[list[int]]:
    part: list[int] = []
    for value in ids:
        part.append(int(value))
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class Ledger:
    """Per-issue delivery state on top of a ``Store``; every method commits before returning."""

    def __init__(self, store: Store, *, owner: str | None = None) -> None:
        self.store = store
        self.db = store.db
        self.owner = owner or default_owner()

    # --- states ----------------------------------------------------------------------------

    def queue(self, issue_id: str, list_name: str, subscriber_ids: Iterable[int]) -> int:
        """Add recipients to an issue's send; ones already in the ledger are left as they are.

        Returns how many were newly queued, so a second call for the same issue adds 0.
        """
        added = 0
        now = utc_now()
        with self.db.transaction():
            for part in _chunks(subscriber_ids):
                added += self.db.executemany(
                    "INSERT INTO send_ledger (issue_id, subscriber_id, list_name, state, "
                    "updated_at) VALUES (?, ?, ?, 'queued', ?) "
                    "ON CONFLICT (issue_id, subscriber_id) DO NOTHING",
                    [(issue_id, sid, list_name, now) for sid in part],
                )
        return added

    def queue_list(self, issue_id: str, list_name: str) -> int:
        """Queue every current subscriber of a list in one statement (fast for big lists)."""
        with self.db.transaction():
            list_id = self.store.list_id(list_name)
            # The WHERE is required: without it SQLite reads ON CONFLICT as a join condition.
            return self.db.execute(
                "INSERT INTO send_ledger (issue_id, subscriber_id, list_name, state, updated_at) "
                "SELECT ?, s.id, ?, 'queued', ? FROM memberships m "
                "JOIN subscribers s ON s.id = m.subscriber_id "
                "WHERE m.list_id = ? AND s.status = 'subscribed' "
                "ON CONFLICT (issue_id, subscriber_id) DO NOTHING",
                (issue_id, list_name, utc_now(), list_id),
            )

    def claim(self, issue_id: str, subscriber_ids: Iterable[int], batch_id: str) -> list[int]:
        """Mark queued recipients in_flight for one batch; returns the ids actually claimed.

        Only ``queued`` rows are claimed, so a recipient already sent (or claimed by another
        batch) is never handed to the provider twice. ``batch_id`` is the batch's label in
        ``entries``. One statement per thousand ids.
        """
        claimed: list[int] = []
        now = utc_now()
        with self.db.transaction():
            batch_no = self._new_batch(issue_id, batch_id, now)
            for part in _chunks(subscriber_ids):
                rows = self.db.all(
                    "UPDATE send_ledger SET state = 'in_flight', batch_no = ?, error = NULL, "
                    "updated_at = NULL WHERE issue_id = ? AND state = 'queued' "
                    f"AND subscriber_id IN ({_marks(len(part))}) RETURNING subscriber_id",
                    (batch_no, issue_id, *part),
                )
                claimed.extend(row[0] for row in rows)
        claimed.sort()
        return claimed

    def claim_batch(
        self, issue_id: str, page: PendingPage | PageSpan, *, heartbeat: bool = False
    ) -> ClaimedBatch:
        """Mark one page's recipients in_flight in one range statement; commits before returning.

        The page was read in id order under the send lock, so the queued rows between its
        first and last id are its rows and its ``held`` ones: one ``BETWEEN`` claims them
        without a list of a thousand ids. The claimed ids are read back, so a row that
        changed since the page was read (a subscriber deleted) is never posted unclaimed.
        Whoever left the list since the page was read is not claimed either: the page may
        have been read well before (by a builder running ahead), and a claim is the last
        word on who is sent. With ``heartbeat`` the send lock is checked in the same
        transaction, first.
        """
        span = page.span if isinstance(page, PendingPage) else page
        first, last = span.first, span.last
        held = [sid for sid in span.held if first < sid < last]
        sql = (
            "UPDATE send_ledger SET state = 'in_flight', batch_no = ?, error = NULL, "
            "updated_at = NULL WHERE issue_id = ? AND subscriber_id BETWEEN ? AND ? "
            "AND state = 'queued' AND subscriber_id NOT IN (SELECT id FROM subscribers "
            "WHERE id BETWEEN ? AND ? AND status <> 'subscribed')"
        )
        if held:
            sql += f" AND subscriber_id NOT IN ({_marks(len(held))})"
        now = utc_now()
        with self.db.transaction():
            if heartbeat:
                self.heartbeat(issue_id)
            batch_no = self._new_batch(issue_id, None, now)
            self.db.execute(sql, (batch_no, issue_id, first, last, first, last, *held))
            # One row, not a thousand: each row read hands the GIL over and back, and the
            # thread that builds the next batch holds it meanwhile.
            listed = self.db.scalar(
                "SELECT group_concat(subscriber_id) FROM (SELECT subscriber_id FROM send_ledger "
                "WHERE issue_id = ? AND subscriber_id BETWEEN ? AND ? AND batch_no = ? "
                "ORDER BY subscriber_id)",
                (issue_id, first, last, batch_no),
            )
        claimed = list(map(int, listed.split(","))) if listed else []
        return ClaimedBatch(issue_id, batch_no, claimed)

    def settle_batch(
        self,
        batch: ClaimedBatch,
        provider_id: str | None,
        failed: Mapping[int, str] | None = None,
    ) -> int:
        """The provider's answer for a whole batch: ``failed`` refused, the rest sent.

        One range statement marks the batch sent; its provider id and time are written
        once, on the batch. Returns how many were marked sent.
        """
        now = utc_now()
        ids = batch.subscriber_ids
        with self.db.transaction():
            if failed:
                self.db.executemany(
                    "UPDATE send_ledger SET state = 'failed', error = ?, updated_at = ? "
                    "WHERE issue_id = ? AND subscriber_id = ? AND batch_no = ? "
                    "AND state = 'in_flight'",
                    [
                        (str(error), now, batch.issue_id, int(sid), batch.batch_no)
                        for sid, error in failed.items()
                    ],
                )
            sent = self.db.execute(
                "UPDATE send_ledger SET state = 'sent', error = NULL, provider_id = NULL "
                "WHERE issue_id = ? AND subscriber_id BETWEEN ? AND ? AND batch_no = ? "
                "AND state = 'in_flight'",
                (batch.issue_id, ids[0], ids[-1], batch.batch_no),
            )
            self.db.execute(
                "UPDATE send_batches SET provider_id = ?, finished_at = ? "
                "WHERE issue_id = ? AND batch_no = ?",
                (provider_id, now, batch.issue_id, batch.batch_no),
            )
        return sent

    def settle_and_claim(
        self,
        batch: ClaimedBatch,
        provider_id: str | None,
        failed: Mapping[int, str] | None,
        page: PendingPage | PageSpan,
    ) -> tuple[int, ClaimedBatch]:
        """Record one batch's answer and claim the next page, with one commit.

        A commit waits for the disk; one per batch instead of two. The next batch is in
        flight only once this one is settled, so at most one batch's fate is ever unknown.
        The send lock is checked in the same transaction; when it was lost, the answer is
        still recorded (it is true whoever holds the lock) and nothing more is claimed.
        """
        lost: SendInProgressError | None = None
        with self.db.transaction():
            sent = self.settle_batch(batch, provider_id, failed)
            try:
                self.heartbeat(batch.issue_id)
            except SendInProgressError as exc:
                lost = exc
            else:
                claimed = self.claim_batch(batch.issue_id, page)
        if lost is not None:
            raise lost
        return sent, claimed

    def _new_batch(self, issue_id: str, label: str | None, now: str) -> int:
        """The next batch number of an issue, recorded with its start time."""
        batch_no = int(
            self.db.scalar(
                "SELECT COALESCE(MAX(batch_no), 0) + 1 FROM send_batches WHERE issue_id = ?",
                (issue_id,),
            )
        )
        self.db.execute(
            "INSERT INTO send_batches (issue_id, batch_no, label, started_at) VALUES (?, ?, ?, ?)",
            (issue_id, batch_no, label or str(batch_no), now),
        )
        return batch_no

    def mark_sent(
        self, issue_id: str, subscriber_ids: Iterable[int], provider_id: str | None = None
    ) -> int:
        now = utc_now()
        changed = 0
        with self.db.transaction():
            for part in _chunks(subscriber_ids):
                changed += self.db.execute(
                    "UPDATE send_ledger SET state = 'sent', provider_id = ?, error = NULL, "
                    "updated_at = ? WHERE issue_id = ? "
                    f"AND subscriber_id IN ({_marks(len(part))})",
                    (provider_id, now, issue_id, *part),
                )
        return changed

    def mark_failed(
        self, issue_id: str, errors: Mapping[int, str] | Iterable[tuple[int, str]]
    ) -> int:
        """Record recipients the provider refused, each with the provider's reason."""
        pairs = errors.items() if isinstance(errors, Mapping) else errors
        now = utc_now()
        with self.db.transaction():
            return self.db.executemany(
                "UPDATE send_ledger SET state = 'failed', error = ?, updated_at = ? "
                "WHERE issue_id = ? AND subscriber_id = ?",
                [(str(error), now, issue_id, int(sid)) for sid, error in pairs],
            )

    def requeue_in_flight(self, issue_id: str) -> int:
        """After a crash: put recipients whose fate is unknown back in the queue."""
        return self._move(issue_id, LedgerState.IN_FLIGHT, LedgerState.QUEUED)

    def requeue_failed(self, issue_id: str) -> int:
        """Give refused recipients another try (after fixing what made them fail)."""
        return self._move(issue_id, LedgerState.FAILED, LedgerState.QUEUED)

    def _move(self, issue_id: str, old: LedgerState, new: LedgerState) -> int:
        with self.db.transaction():
            return self.db.execute(
                "UPDATE send_ledger SET state = ?, updated_at = ? WHERE issue_id = ? AND state = ?",
                (str(new), utc_now(), issue_id, str(old)),
            )

    def skip_unsubscribed(self, issue_id: str) -> int:
        """Mark queued recipients who left since they were queued as skipped."""
        with self.db.transaction():
            return self.db.execute(
                "UPDATE send_ledger SET state = 'skipped', updated_at = ? "
                "WHERE issue_id = ? AND state = 'queued' AND subscriber_id IN "
                "(SELECT id FROM subscribers WHERE status <> 'subscribed')",
                (utc_now(), issue_id),
            )

    # --- reading ---------------------------------------------------------------------------

    def pending(
        self, issue_id: str, *, limit: int | None = None, chunk: int = CHUNK
    ) -> Iterator[list[Subscriber]]:
        """Queued recipients still subscribed, in id order, ``chunk`` at a time."""
        for part in self.pending_with_lists(issue_id, limit=limit, chunk=chunk):
            yield [subscriber for subscriber, _ in part]

    def pending_with_lists(
        self, issue_id: str, *, limit: int | None = None, chunk: int = CHUNK
    ) -> Iterator[list[tuple[Subscriber, str]]]:
        """Like ``pending``, each with the list it was queued from (its unsubscribe target).

        Reads by keyset, so the caller may claim and mark rows between chunks.
        """
        sql = (
            f"SELECT {SUBSCRIBER_COLUMNS}, l.list_name FROM send_ledger l "
            "JOIN subscribers s ON s.id = l.subscriber_id "
            "WHERE l.issue_id = ? AND l.state = 'queued' AND s.status = 'subscribed' "
            "AND l.subscriber_id > ? ORDER BY l.subscriber_id LIMIT ?"
        )
        for rows in self.db.pages(sql, (issue_id,), chunk=chunk, limit=limit):
            yield [(subscriber_from_row(row), row[5]) for row in rows]

    def pending_pages(
        self, issue_id: str, *, limit: int | None = None, chunk: int = CHUNK
    ) -> Iterator[PendingPage]:
        """Queued recipients as plain rows, up to ``chunk`` still subscribed per page.

        Plain tuples, not ``Subscriber`` objects: a big send reads a million of them. The
        queued ones who left are returned too (``held``), so ``claim_batch`` can leave
        them out of its range. Reads by keyset; no cursor stays open between pages.
        """
        return read_pending_pages(self.db.scalar, issue_id, limit=limit, chunk=chunk)

    def release(self, issue_id: str, subscriber_ids: Iterable[int]) -> int:
        """Put claimed recipients back in the queue: the provider refused their whole batch."""
        now = utc_now()
        with self.db.transaction():
            return self.db.executemany(
                "UPDATE send_ledger SET state = 'queued', batch_no = NULL, updated_at = ? "
                "WHERE issue_id = ? AND subscriber_id = ? AND state = 'in_flight'",
                [(now, issue_id, int(sid)) for sid in subscriber_ids],
            )

    def count_unsent(self, issue_id: str, list_names: Iterable[str]) -> int:
        """How many subscribed members of these lists a send would reach now."""
        names = list(list_names)
        marks = ", ".join("?" * len(names))
        return int(
            self.db.scalar(
                "SELECT COUNT(DISTINCT s.id) FROM memberships m "
                "JOIN lists li ON li.id = m.list_id "
                "JOIN subscribers s ON s.id = m.subscriber_id "
                f"WHERE li.name IN ({marks}) AND s.status = 'subscribed' "
                "AND NOT EXISTS (SELECT 1 FROM send_ledger l WHERE l.issue_id = ? "
                "AND l.subscriber_id = s.id AND l.state IN ('sent', 'in_flight', 'failed'))",
                (*names, issue_id),
            )
            or 0
        )

    def entries(self, issue_id: str, state: LedgerState | str | None = None) -> list[LedgerEntry]:
        # A batch's provider id and times are kept once, on the batch.
        sql = (
            "SELECT l.issue_id, l.subscriber_id, s.email, l.list_name, l.state, b.label, "
            "COALESCE(l.provider_id, CASE WHEN l.state = 'sent' THEN b.provider_id END), "
            "l.error, COALESCE(l.updated_at, CASE WHEN l.state = 'in_flight' THEN b.started_at "
            "ELSE COALESCE(b.finished_at, b.started_at) END) FROM send_ledger l "
            "JOIN subscribers s ON s.id = l.subscriber_id "
            "LEFT JOIN send_batches b ON b.issue_id = l.issue_id AND b.batch_no = l.batch_no "
            "WHERE l.issue_id = ?"
        )
        params: tuple[str, ...] = (issue_id,)
        if state is not None:
            sql += " AND l.state = ?"
            params += (str(LedgerState(state)),)
        rows = self.db.all(sql + " ORDER BY l.subscriber_id", params)
        return [LedgerEntry(*row[:4], LedgerState(row[4]), *row[5:]) for row in rows]

    def in_flight(self, issue_id: str) -> list[LedgerEntry]:
        return self.entries(issue_id, LedgerState.IN_FLIGHT)

    def counts(self, issue_id: str) -> dict[str, int]:
        """Recipients of an issue per state; every state is present, zero if none."""
        counts = {str(state): 0 for state in LedgerState}
        rows = self.db.all(
            "SELECT state, COUNT(*) FROM send_ledger WHERE issue_id = ? GROUP BY state",
            (issue_id,),
        )
        counts.update({row[0]: int(row[1]) for row in rows})
        return counts

    def issues(self) -> list[str]:
        """Issue ids that have a ledger, oldest id first."""
        return [
            row[0]
            for row in self.db.all("SELECT DISTINCT issue_id FROM send_ledger ORDER BY issue_id")
        ]

    # --- the send lock ---------------------------------------------------------------------

    def acquire_lock(self, issue_id: str, owner: str | None = None) -> SendLock:
        """Take the right to send an issue, or raise SendInProgressError naming the holder.

        A lock is taken over when its owner is a process on this host that no longer exists,
        or when its heartbeat is older than ``STALE_AFTER`` (an owner on another host, or a
        hung one). The check and the write share one ``BEGIN IMMEDIATE`` transaction, so two
        processes cannot both win.
        """
        me = owner or self.owner
        now = utc_now()
        with self.db.transaction():
            row = self.db.one(
                "SELECT owner, acquired_at, heartbeat_at FROM send_locks WHERE issue_id = ?",
                (issue_id,),
            )
            replaced = None
            if row is not None:
                holder, since, beat = row
                if holder != me and not self._abandoned(holder, beat):
                    raise SendInProgressError(
                        f"issue {issue_id} is already being sent by {holder} since {since} "
                        f"(last heartbeat {beat})",
                        hint="wait for it to finish, or if that process is gone, run again: "
                        f"its lock is taken over once the heartbeat is older than "
                        f"{int(STALE_AFTER.total_seconds() // 60)} minutes",
                    )
                replaced = holder if holder != me else None
                self.db.execute("DELETE FROM send_locks WHERE issue_id = ?", (issue_id,))
            self.db.execute(
                "INSERT INTO send_locks (issue_id, owner, acquired_at, heartbeat_at) "
                "VALUES (?, ?, ?, ?)",
                (issue_id, me, now, now),
            )
        return SendLock(issue_id, me, now, now, replaced)

    @staticmethod
    def _abandoned(holder: str, heartbeat_at: str) -> bool:
        host, _, pid = holder.rpartition(":")
        if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
            return True
        return datetime.now(UTC) - parse_time(heartbeat_at) > STALE_AFTER

    def heartbeat(self, issue_id: str, owner: str | None = None) -> None:
        """Say the send is alive; raises SendInProgressError if the lock was taken over."""
        me = owner or self.owner
        with self.db.transaction():
            changed = self.db.execute(
                "UPDATE send_locks SET heartbeat_at = ? WHERE issue_id = ? AND owner = ?",
                (utc_now(), issue_id, me),
            )
            if not changed:
                holder = self.db.scalar(
                    "SELECT owner FROM send_locks WHERE issue_id = ?", (issue_id,)
                )
                raise SendInProgressError(
                    f"lost the send lock of issue {issue_id}"
                    + (f": {holder} took it over" if holder else ""),
                    hint="this send stops so two processes never send the same issue",
                )

    def release_lock(self, issue_id: str, owner: str | None = None) -> bool:
        """Give the lock up; only its owner can. Returns whether a lock was released."""
        me = owner or self.owner
        with self.db.transaction():
            return bool(
                self.db.execute(
                    "DELETE FROM send_locks WHERE issue_id = ? AND owner = ?", (issue_id, me)
                )
            )

    def lock_holder(self, issue_id: str) -> SendLock | None:
        row = self.db.one(
            "SELECT issue_id, owner, acquired_at, heartbeat_at FROM send_locks WHERE issue_id = ?",
            (issue_id,),
        )
        return SendLock(*row) if row else None


def read_pending_pages(
    scalar: Callable[[str, Sequence[Any]], Any],
    issue_id: str,
    *,
    limit: int | None = None,
    chunk: int = CHUNK,
) -> Iterator[PendingPage]:
    """``Ledger.pending_pages`` over any connection's ``scalar``: a builder in another
    process reads the same pages through a read-only connection of its own."""
    # A page comes back as one JSON value in one row: a row at a time, each read hands
    # the GIL to the thread posting the last batch and waits to get it back.
    sql = (
        "SELECT json_group_array(json_array(subscriber_id, email, name, attributes, "
        "list_name, status)) FROM (SELECT l.subscriber_id, s.email, s.name, s.attributes, "
        "l.list_name, s.status FROM send_ledger l JOIN subscribers s ON s.id = l.subscriber_id "
        "WHERE l.issue_id = ? AND l.state = 'queued' AND l.subscriber_id > ? "
        "ORDER BY l.subscriber_id LIMIT ?)"
    )
    last, left = 0, limit
    while left is None or left > 0:
        size = chunk if left is None else min(chunk, left)
        rows = list(map(tuple, orjson.loads(scalar(sql, (issue_id, last, size)))))
        if not rows:
            return
        sendable = [row for row in rows if row[5] == "subscribed"]
        if sendable:
            held = (
                []
                if len(sendable) == len(rows)
                else [row[0] for row in rows if row[5] != "subscribed"]
            )
            yield PendingPage(sendable, held)
        if len(rows) < size:
            return
        last = rows[-1][0]
        if left is not None:
            left -= len(sendable)
