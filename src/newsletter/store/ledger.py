"""The send ledger: what became of each recipient of each issue, and who may send it.

The ledger tells the truth. Every recipient of a send is, at any moment, in one state:

- ``queued``: not yet tried, or certainly not delivered and waiting for another run;
- ``sending``: in the batch being posted right now;
- ``retry``: certainly not delivered, waiting for its next attempt time (``retry_at``);
- ``sent``: the provider accepted it;
- ``unconfirmed``: the request went out and no answer came; never re-sent unless asked;
- ``refused``: the provider (or a check before it) refused this recipient alone;
- ``skipped``: waiting, but they left the list before their turn.

A batch is written ``queued`` when it is claimed, ``sending`` (committed) right before its
request goes out, and settled after the answer; so after a crash only batches that were
being posted can become ``unconfirmed`` (one per open connection), claimed batches that
never went out go back to the queue, and so does everyone waiting to retry.

Members of a send's lists are queued without a row of their own: a claim inserts the next
ones, in subscriber id order, straight into a batch. A batch's state is the state of each
of its recipients who has none of their own, so a batch the provider took whole is
recorded by changing one row, not a thousand; a recipient whose outcome differs (refused,
deferred, confirmed later by a webhook) gets a state of their own, which nothing else
overwrites.
"""

from __future__ import annotations

import enum
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from ..errors import SendInProgressError
from ..send_models import Delivery, Outcome
from .db import parse_time, process_name, utc_now
from .subscribers import Store

STALE_AFTER = timedelta(minutes=10)
SESSIONS_END_WITHIN_S = 10.0
"""How long a takeover waits for a dead sender's store sessions to end (PostgreSQL); a
server that takes longer leaves its batches to the run after."""


class LedgerState(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    RETRY = "retry"
    SENT = "sent"
    UNCONFIRMED = "unconfirmed"
    REFUSED = "refused"
    SKIPPED = "skipped"


_OWN_STATE = {
    Outcome.ACCEPTED: LedgerState.SENT,
    Outcome.REFUSED: LedgerState.REFUSED,
    Outcome.NOT_DELIVERED: LedgerState.RETRY,
    Outcome.UNKNOWN: LedgerState.UNCONFIRMED,
}
_BATCH_STATE = {Outcome.ACCEPTED: "sent", Outcome.UNKNOWN: "unconfirmed"}
"""A batch state its recipients inherit; other outcomes give every recipient their own."""

_OWN = "INDEXED BY send_ledger_own_state"
"""Recipients with a state of their own are few; without this a query with conditions the
index does not hold (a retry time) reads every row of the send instead."""

EFFECTIVE_STATE = (
    "COALESCE(l.state, CASE b.state WHEN 'settled' THEN NULL ELSE b.state END, 'queued')"
)
"""A recipient's state in SQL: their own, else their batch's."""

_FROM_LEDGER = (
    "FROM send_ledger l JOIN sends d ON d.id = l.send_id "
    "LEFT JOIN send_batches b ON b.send_id = l.send_id AND b.batch_no = l.batch_no"
)


@dataclass(frozen=True)
class SendRecord:
    """One issue's send across all its runs."""

    id: int
    issue_id: str
    lists: tuple[str, ...]
    started_at: str
    completed_at: str | None
    summary: dict[str, object] | None


@dataclass(frozen=True)
class Claim:
    """A batch claimed for delivery: numbered per send, recipients in subscriber id order.

    The ids, addresses and lists, for signing the unsubscribe tokens, and (from a claim of
    new members) what the worker needs besides, read by the same query.
    """

    send_id: int
    batch_no: int
    subscriber_ids: list[int]
    emails: list[str]
    """Each recipient's address, as the unsubscribe token is signed with it."""
    list_ids: list[int]
    details: Details | None = None
    """The addresses, names and attributes (JSON) as the claim read them, each column
    joined by ``\x1e``: the worker delivers from these unless someone left the store since
    (``batch_intact``). None when the claim did not read them, or a value holds ``\x1e``:
    the worker then reads the batch itself (``batch_columns``)."""

    def __len__(self) -> int:
        return len(self.subscriber_ids)


Details = tuple[str, str, str]
"""A batch's addresses, names and attributes, each column joined by ``\x1e``."""
BatchRow = tuple[int, str, str, str, int]
"""Subscriber id, address, name, attributes (JSON) and list id of a claimed recipient."""
BatchColumns = tuple[list[int], list[str], list[str], list[str], list[int]]
SEPARATOR = "\x1e"
_JOINED = (
    "COUNT(*), group_concat(subscriber_id), group_concat(email, char(30)), "
    "group_concat(name, char(30)), group_concat(attributes, char(30))"
)
_BATCH_COLUMNS = "l.subscriber_id, s.email, s.name, s.attributes, l.list_id"
_BATCH_FROM = (
    "FROM send_ledger l JOIN subscribers s ON s.id = l.subscriber_id "
    "WHERE l.send_id = ? AND l.subscriber_id BETWEEN ? AND ? AND l.batch_no = ?"
)


@dataclass(frozen=True)
class LedgerEntry:
    issue_id: str
    subscriber_id: int
    email: str
    list_name: str
    state: LedgerState
    batch_no: int | None
    provider_id: str | None
    error: str | None
    updated_at: str | None
    attempts: int = 0
    retry_at: str | None = None


@dataclass(frozen=True)
class Recovery:
    """What a send found left by an earlier run that stopped without finishing."""

    unconfirmed: int = 0
    """Recipients of batches that were being posted: their outcome is unknown."""
    requeued: int = 0
    """Claimed but never posted, or waiting to retry: certainly not delivered."""


@dataclass(frozen=True)
class SendLock:
    issue_id: str
    owner: str
    acquired_at: str
    heartbeat_at: str
    replaced: str | None = None
    """The owner of a dead or stale lock this one took over, for the log."""


def _gone_from_here(owner: str) -> bool:
    """Whether ``owner`` (host:pid) was a process on this host that no longer exists."""
    host, _, pid = owner.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


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


def _later(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Ledger:
    """Per-issue delivery state on top of a ``Store``; every method commits before returning
    (or joins the transaction it is called in)."""

    def __init__(self, store: Store, *, owner: str | None = None, joined: bool = False) -> None:
        self.store = store
        self.db = store.db
        self.owner = owner or process_name()
        self.joined = joined
        """A sender that joined a send others may be running (``send --join``): it takes
        no send lock, and settles only the batches of senders that are gone."""
        self._held: set[tuple[int, int]] = set()

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        """Several steps in one commit (see ``Database.transaction`` for ``durable``);
        serialised, as a claim reads before it writes."""
        with self.db.transaction(durable=durable):
            yield

    # --- sends -----------------------------------------------------------------------------

    def open_send(self, issue_id: str, lists: Sequence[str]) -> SendRecord:
        """The issue's send, made on its first run; the lists are those of the latest run."""
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO sends (issue_id, lists, started_at) VALUES (?, ?, ?) "
                "ON CONFLICT (issue_id) DO UPDATE SET lists = excluded.lists",
                (issue_id, orjson.dumps(list(lists)).decode(), utc_now()),
            )
        found = self.find_send(issue_id)
        assert found is not None
        return found

    def find_send(self, issue_id: str) -> SendRecord | None:
        row = self.db.one(
            "SELECT id, issue_id, lists, started_at, completed_at, summary FROM sends "
            "WHERE issue_id = ?",
            (issue_id,),
        )
        if row is None:
            return None
        return SendRecord(
            row[0],
            row[1],
            tuple(orjson.loads(row[2])),
            row[3],
            row[4],
            orjson.loads(row[5]) if row[5] else None,
        )

    def finish_run(self, send_id: int, summary: dict[str, object], *, complete: bool) -> None:
        """Keep the run's summary; a run that left nobody waiting completes the send."""
        with self.db.transaction():
            self.db.execute(
                "UPDATE sends SET summary = ?, completed_at = CASE WHEN ? THEN "
                "COALESCE(completed_at, ?) ELSE completed_at END WHERE id = ?",
                (orjson.dumps(summary).decode(), complete, utc_now(), send_id),
            )

    # --- after a stop ----------------------------------------------------------------------

    def recover(self, send_id: int, *, waiting: bool = True) -> Recovery:
        """Settle what a run that stopped without finishing left behind.

        Batches that were being posted become unconfirmed: their requests may have been
        taken. Claimed batches that never went out, and (unless not ``waiting``)
        recipients waiting to retry, go back to the queue: they certainly got nothing.
        Where senders share sends, only the batches of senders that are gone are settled.
        """
        now = utc_now()
        with self.db.transaction():
            gone = self._abandoned_batches(send_id)
            only, only_b = (f"AND batch_no {gone}", f"AND b.batch_no {gone}") if gone else ("", "")
            unconfirmed = int(
                self.db.scalar(
                    "SELECT COUNT(*) FROM send_ledger l JOIN send_batches b "
                    "ON b.send_id = l.send_id AND b.batch_no = l.batch_no "
                    f"WHERE b.send_id = ? AND b.state = 'sending' AND l.state IS NULL {only_b}",
                    (send_id,),
                )
            )
            self.db.execute(
                "UPDATE send_batches SET state = 'unconfirmed', finished_at = ?, "
                "error = 'the send stopped while this batch was being delivered' "
                f"WHERE send_id = ? AND state = 'sending' {only}",
                (now, send_id),
            )
            requeued = self.db.execute(
                "UPDATE send_ledger SET state = 'queued', updated_at = ? "
                "WHERE send_id = ? AND state IS NULL AND batch_no IN "
                f"(SELECT batch_no FROM send_batches WHERE send_id = ? AND state = 'queued' "
                f"{only})",
                (now, send_id, send_id),
            )
            self.db.execute(
                "UPDATE send_batches SET state = 'settled', finished_at = ? "
                f"WHERE send_id = ? AND state = 'queued' {only}",
                (now, send_id),
            )
            if waiting:
                requeued += self.requeue_waiting(send_id)
        return Recovery(unconfirmed=unconfirmed, requeued=requeued)

    def _abandoned_batches(self, send_id: int) -> str:
        """``IN (...)`` the open batches no live sender holds; empty where one sender has
        the whole send, so every batch is its to settle."""
        if not self.db.shares_sends:
            return ""
        open_batches = self.db.all(
            "SELECT batch_no FROM send_batches WHERE send_id = ? "
            "AND state IN ('queued', 'sending')",
            (send_id,),
        )
        gone = [
            int(no)
            for (no,) in open_batches
            if (send_id, no) not in self._held and not self.db.held_elsewhere(send_id, no)
        ]
        return f"IN ({', '.join(map(str, gone))})" if gone else "IN (NULL)"

    # --- claims ----------------------------------------------------------------------------

    def claim_new(
        self, send_id: int, list_id: int, after: int, limit: int, *, fresh: bool = False
    ) -> Claim | None:
        """The next members of a list who have no row in this send yet, still subscribed,
        after subscriber id ``after``: inserted as one claimed batch.

        ``fresh`` says no row of this send lies beyond ``after`` (see ``last_row``), so
        nobody there needs to be looked for in the ledger first.
        """
        # On PostgreSQL, NOT EXISTS becomes an anti-join that the planner, with statistics
        # taken before the send grew, runs as a merge over every row of the send, and the
        # join with subscribers is merged from their first row unless told where they
        # start: each claim then reads the whole send so far (75 ms at 40,000 rows, and
        # growing). As a subquery per member it is one index probe each (3 ms).
        bounded = self.db.dialect.name == "postgresql"
        row_of = (
            "(SELECT 1 FROM send_ledger l WHERE l.send_id = ? "
            "AND l.subscriber_id = m.subscriber_id)"
        )
        unclaimed = (
            "" if fresh else f"AND {row_of} IS NULL " if bounded else f"AND NOT EXISTS {row_of} "
        )
        with self.db.transaction():
            # One row of long strings, cut apart here: a thousand rows of values cost more
            # to turn into Python objects than the query itself (as in ``batch_columns``).
            row = self.db.one(
                f"SELECT {_JOINED} FROM (SELECT m.subscriber_id, s.email, s.name, "
                "s.attributes FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id "
                "WHERE m.list_id = ? AND m.subscriber_id > ? AND s.status = 'subscribed' "
                "AND m.status = 'subscribed' "
                f"{'AND s.id > ? ' if bounded else ''}{unclaimed}"
                "ORDER BY m.subscriber_id LIMIT ?) AS batch",
                (list_id, after, *((after,) if bounded else ()),
                 *(() if fresh else (send_id,)), limit),
            )  # fmt: skip
            count = int(row[0]) if row else 0
            if row is None or not count:
                return None
            ids = list(map(int, row[1].split(",")))
            emails = row[2].split(SEPARATOR)
            batch_no = self._next_batch_no(send_id)
            # The ids go in as one JSON array: one statement, no Python per row.
            self.db.execute(
                "INSERT INTO send_ledger (send_id, subscriber_id, list_id, batch_no) "
                "SELECT ?, value, ?, ? FROM json_each(?)",
                (send_id, list_id, batch_no, "[" + row[1] + "]"),
            )
            joined: Details = (row[2], row[3], row[4])
            details: Details | None = joined
            if any(text.count(SEPARATOR) != count - 1 for text in joined):
                # A value holds the separator (stored before values were checked): the
                # addresses are read one row at a time, and the worker reads the batch.
                details = None
                emails = [found[1] for found in self.batch_rows(send_id, batch_no, ids[0], ids[-1])]
            return self._claimed(send_id, batch_no, ids, emails, [list_id] * count, details=details)

    def last_row(self, send_id: int) -> int:
        """The highest subscriber id with a row in this send (0 if none)."""
        return int(
            self.db.scalar(
                "SELECT COALESCE(MAX(subscriber_id), 0) FROM send_ledger WHERE send_id = ?",
                (send_id,),
            )
        )

    def has_waiting(self, send_id: int) -> bool:
        """Whether anyone of the send is queued or waits to retry with a row of their own."""
        return bool(
            self.db.scalar(
                f"SELECT EXISTS (SELECT 1 FROM send_ledger {_OWN} WHERE send_id = ? "
                "AND state IN ('queued', 'retry'))",
                (send_id,),
            )
        )

    def claim_retries(self, send_id: int, *, max_attempts: int, limit: int) -> Claim | None:
        """Recipients whose retry is due (and who have attempts left in this run)."""
        return self._claim_own(
            send_id,
            "l.state = 'retry' AND l.retry_at <= ? AND l.attempts < ?",
            (utc_now(), max_attempts),
            limit,
        )

    def claim_queued(self, send_id: int, *, limit: int) -> Claim | None:
        """Recipients an earlier run or attempt put back in the queue."""
        return self._claim_own(send_id, "l.state = 'queued'", (), limit)

    def _claim_own(
        self, send_id: int, condition: str, params: tuple[object, ...], limit: int
    ) -> Claim | None:
        """Recipients with a waiting state of their own, as one batch; whoever left the
        list meanwhile is marked skipped instead."""
        now = utc_now()
        with self.db.transaction():
            self.db.execute(
                "UPDATE send_ledger SET state = 'skipped', retry_at = NULL, updated_at = ? "
                "WHERE send_id = ? AND subscriber_id IN (SELECT l.subscriber_id "
                f"FROM send_ledger l {_OWN} JOIN subscribers s ON s.id = l.subscriber_id "
                f"WHERE l.send_id = ? AND {condition} AND (s.status <> 'subscribed' "
                "OR NOT EXISTS (SELECT 1 FROM memberships m WHERE m.list_id = l.list_id "
                "AND m.subscriber_id = l.subscriber_id AND m.status = 'subscribed')))",
                (now, send_id, send_id, *params),
            )
            batch_no = self._next_batch_no(send_id)
            ids = self.db.all(
                "UPDATE send_ledger SET batch_no = ?, state = NULL, retry_at = NULL, "
                "updated_at = NULL WHERE send_id = ? AND subscriber_id IN "
                f"(SELECT l.subscriber_id FROM send_ledger l {_OWN} WHERE l.send_id = ? "
                f"AND {condition} ORDER BY l.subscriber_id LIMIT ?) RETURNING subscriber_id",
                (batch_no, send_id, send_id, *params, limit),
            )
            if not ids:
                return None
            first, last = min(ids)[0], max(ids)[0]
            rows = self.batch_rows(send_id, batch_no, first, last)
            return self._claimed(
                send_id,
                batch_no,
                [row[0] for row in rows],
                [row[1] for row in rows],
                [row[4] for row in rows],
            )

    def next_retry_at(self, send_id: int, *, max_attempts: int) -> str | None:
        """When the earliest recipient waiting to retry is due; None if nobody waits."""
        value = self.db.scalar(
            f"SELECT MIN(retry_at) FROM send_ledger {_OWN} WHERE send_id = ? "
            "AND state = 'retry' AND attempts < ?",
            (send_id, max_attempts),
        )
        return None if value is None else str(value)

    def _next_batch_no(self, send_id: int) -> int:
        return int(
            self.db.scalar(
                "SELECT COALESCE(MAX(batch_no), 0) + 1 FROM send_batches WHERE send_id = ?",
                (send_id,),
            )
        )

    def _claimed(
        self,
        send_id: int,
        batch_no: int,
        ids: list[int],
        emails: list[str],
        list_ids: list[int],
        *,
        details: Details | None = None,
    ) -> Claim:
        self.db.execute(
            "INSERT INTO send_batches (send_id, batch_no, state, size, claimed_at) "
            "VALUES (?, ?, 'queued', ?, ?)",
            (send_id, batch_no, len(ids), utc_now()),
        )
        if self.db.shares_sends:  # held before the claim commits: never seen unowned
            self.db.hold(send_id, batch_no)
            self._held.add((send_id, batch_no))
        return Claim(send_id, batch_no, ids, emails, list_ids, details)

    def batch_rows(self, send_id: int, batch_no: int, first: int, last: int) -> list[BatchRow]:
        """The recipients of a claimed batch, whose ids lie from ``first`` to ``last``."""
        return self.db.all(
            f"SELECT {_BATCH_COLUMNS} {_BATCH_FROM} ORDER BY l.subscriber_id",
            (send_id, first, last, batch_no),
        )

    def batch_columns(self, send_id: int, batch_no: int, first: int, last: int) -> BatchColumns:
        """``batch_rows`` as five columns (ids, addresses, names, attributes, list ids).

        Read as one row of five long strings, cut apart in Python: a thousand rows of five
        values each cost more to turn into Python objects than the query itself. A value
        that holds the separator (a name stored before names were checked) makes the read
        fall back to ``batch_rows``.
        """
        params = (send_id, first, last, batch_no)
        row = self.db.one(
            f"SELECT {_JOINED}, group_concat(list_id) FROM (SELECT {_BATCH_COLUMNS} {_BATCH_FROM} "
            "ORDER BY l.subscriber_id) AS batch",
            params,
        )
        if row is None or not int(row[0]):
            return ([], [], [], [], [])
        count = int(row[0])
        ids = list(map(int, row[1].split(",")))
        emails, names, attributes = (row[i].split(SEPARATOR) for i in (2, 3, 4))
        list_ids = list(map(int, row[5].split(",")))
        if count == len(emails) == len(names) == len(attributes):
            return (ids, emails, names, attributes, list_ids)
        ids, emails, names, attributes, list_ids = map(
            list, zip(*self.batch_rows(send_id, batch_no, first, last), strict=True)
        )
        return (ids, emails, names, attributes, list_ids)

    def batch_intact(self, send_id: int, batch_no: int, first: int, last: int, size: int) -> bool:
        """Whether each of the ``size`` recipients claimed in the batch still has their row:
        nobody left the store since the claim (a subscriber's removal deletes their rows)."""
        return size == int(
            self.db.scalar(
                "SELECT COUNT(*) FROM send_ledger WHERE send_id = ? "
                "AND subscriber_id BETWEEN ? AND ? AND batch_no = ?",
                (send_id, first, last, batch_no),
            )
        )

    # --- delivery --------------------------------------------------------------------------

    def mark_sending(self, send_id: int, batch_no: int) -> bool:
        """Commit that a claimed batch is about to be posted; False if it may not be (the
        send released it, so it must not go out).

        Not serialised with other writers: the one row's condition decides, under its
        row lock, between this mark and a release, and a claim elsewhere need not wait
        for this commit to reach the disk."""
        with self.db.transaction(serialised=False):
            return bool(
                self.db.execute(
                    "UPDATE send_batches SET state = 'sending', sending_at = ? "
                    "WHERE send_id = ? AND batch_no = ? AND state = 'queued'",
                    (utc_now(), send_id, batch_no),
                )
            )

    def unmark_sending(self, send_id: int, batch_no: int) -> None:
        """A batch marked ``sending`` whose request did not go out after all: claimed again."""
        with self.db.transaction(serialised=False):
            self.db.execute(
                "UPDATE send_batches SET state = 'queued', sending_at = NULL "
                "WHERE send_id = ? AND batch_no = ? AND state = 'sending'",
                (send_id, batch_no),
            )

    def release(self, send_id: int, batch_no: int) -> bool:
        """A claimed batch that will not go out (the send stops): back to the queue.

        Only a batch still ``queued`` is released; one a worker already marked ``sending``
        is left for its answer. Returns whether it was released.
        """
        now = utc_now()
        with self.db.transaction():
            if not self.db.execute(
                "UPDATE send_batches SET state = 'settled', finished_at = ? "
                "WHERE send_id = ? AND batch_no = ? AND state = 'queued'",
                (now, send_id, batch_no),
            ):
                return False
            self.db.execute(
                "UPDATE send_ledger SET state = 'queued', updated_at = ? "
                "WHERE send_id = ? AND batch_no = ? AND state IS NULL",
                (now, send_id, batch_no),
            )
        self._let_go(send_id, batch_no)
        return True

    def _let_go(self, send_id: int, batch_no: int) -> None:
        if (send_id, batch_no) in self._held:
            self._held.discard((send_id, batch_no))
            self.db.let_go(send_id, batch_no)

    def batch_state(self, send_id: int, batch_no: int) -> str | None:
        value = self.db.scalar(
            "SELECT state FROM send_batches WHERE send_id = ? AND batch_no = ?",
            (send_id, batch_no),
        )
        return None if value is None else str(value)

    def requeue_waiting(self, send_id: int) -> int:
        """At the end of a run: whoever still waits to retry goes back to the queue (with
        no attempt time), for the next run."""
        with self.db.transaction():
            return self.db.execute(
                f"UPDATE send_ledger {_OWN} SET state = 'queued', retry_at = NULL, "
                "attempts = 0, updated_at = ? WHERE send_id = ? AND state = 'retry'",
                (utc_now(), send_id),
            )

    def settle(self, claim: Claim, delivery: Delivery, *, retry_in: float) -> None:
        """Record a batch's answer: one row for what everyone shares, one per exception.

        ``retry_in`` is when those not delivered may be tried again, in seconds. A
        recipient who already has a state of their own (a webhook confirmed them while the
        request was out) keeps it.

        Not serialised with other writers: it changes only the rows of a batch that its
        sender holds, named by key, from no state of their own to one, which no claim
        takes. The recipients' rows are written before the batch's, in the order a
        removal of a subscriber locks them (their row, then their batch's size), so the
        two never wait for each other in a circle.
        """
        now = utc_now()
        retry_at = _later(retry_in)
        send_id, batch_no = claim.send_id, claim.batch_no
        batch_state = _BATCH_STATE.get(delivery.outcome)
        with self.db.transaction(serialised=False):
            if delivery.exceptions:
                self.db.executemany(
                    "UPDATE send_ledger SET state = ?, error = ?, updated_at = ?, "
                    "retry_at = CASE WHEN ? = 'retry' THEN ? END, "
                    "attempts = attempts + CASE WHEN ? = 'retry' THEN 1 ELSE 0 END "
                    "WHERE send_id = ? AND subscriber_id = ? AND batch_no = ? "
                    "AND state IS NULL",
                    [
                        (
                            str(_OWN_STATE[outcome]),
                            reason or None,
                            now,
                            str(_OWN_STATE[outcome]),
                            retry_at,
                            str(_OWN_STATE[outcome]),
                            send_id,
                            sid,
                            batch_no,
                        )
                        for sid, (outcome, reason) in delivery.exceptions.items()
                    ],
                )
            if batch_state is None:
                own = str(_OWN_STATE[delivery.outcome])
                ids = claim.subscriber_ids
                self.db.execute(
                    "UPDATE send_ledger SET state = ?, error = ?, updated_at = ?, "
                    "retry_at = CASE WHEN ? = 'retry' THEN ? END, "
                    "attempts = attempts + CASE WHEN ? = 'retry' THEN 1 ELSE 0 END "
                    "WHERE send_id = ? AND subscriber_id BETWEEN ? AND ? AND batch_no = ? "
                    "AND state IS NULL",
                    (own, delivery.reason or None, now, own, retry_at, own, send_id,
                     ids[0], ids[-1], batch_no),
                )  # fmt: skip
            self.db.execute(
                "UPDATE send_batches SET state = ?, provider_id = ?, error = ?, "
                "finished_at = ? WHERE send_id = ? AND batch_no = ?",
                (
                    batch_state or "settled",
                    delivery.provider_id,
                    delivery.reason or None,
                    now,
                    send_id,
                    batch_no,
                ),
            )
        self._let_go(send_id, batch_no)

    # --- what an operator asks for --------------------------------------------------------

    def requeue_unconfirmed(self, send_id: int, *, older_than: timedelta | None = None) -> int:
        """Put unconfirmed recipients back in the queue (``--resend-unconfirmed``).

        ``older_than`` keeps the recent ones, whose webhook events may still be on their
        way.
        """
        cutoff = (
            (datetime.now(UTC) - older_than).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if older_than
            else "9999"
        )
        now = utc_now()
        with self.db.transaction():
            own = self.db.execute(
                f"UPDATE send_ledger {_OWN} SET state = 'queued', updated_at = ? "
                "WHERE send_id = ? AND state = 'unconfirmed' AND COALESCE(updated_at, '') < ?",
                (now, send_id, cutoff),
            )
            inherited = self.db.execute(
                "UPDATE send_ledger SET state = 'queued', updated_at = ? "
                "WHERE send_id = ? AND state IS NULL AND batch_no IN (SELECT batch_no "
                "FROM send_batches WHERE send_id = ? AND state = 'unconfirmed' "
                "AND COALESCE(finished_at, '') < ?)",
                (now, send_id, send_id, cutoff),
            )
            self.db.execute("UPDATE sends SET completed_at = NULL WHERE id = ?", (send_id,))
        return own + inherited

    def requeue_refused(self, send_id: int) -> int:
        """Give refused recipients another try (``--retry-refused``, once the cause is fixed)."""
        with self.db.transaction():
            moved = self.db.execute(
                f"UPDATE send_ledger {_OWN} SET state = 'queued', attempts = 0, updated_at = ? "
                "WHERE send_id = ? AND state = 'refused'",
                (utc_now(), send_id),
            )
            if moved:
                self.db.execute("UPDATE sends SET completed_at = NULL WHERE id = ?", (send_id,))
        return moved

    def confirm(self, issue_id: str, subscriber_id: int, outcome: Outcome, detail: str) -> bool:
        """A provider's event says what became of a recipient whose outcome we did not know.

        Only ``unconfirmed`` (or still ``sending``) recipients change: to sent when the
        provider took the message (processed, delivered, even bounced), to refused when it
        dropped it. Returns whether the ledger changed; the same event twice changes it once.
        """
        state = _OWN_STATE[outcome]
        with self.db.transaction():
            row = self.db.one(
                f"SELECT l.send_id, {EFFECTIVE_STATE} {_FROM_LEDGER} "
                "WHERE d.issue_id = ? AND l.subscriber_id = ?",
                (issue_id, subscriber_id),
            )
            if row is None or row[1] not in ("unconfirmed", "sending"):
                return False
            self.db.execute(
                "UPDATE send_ledger SET state = ?, error = ?, updated_at = ? "
                "WHERE send_id = ? AND subscriber_id = ?",
                (str(state), detail[:500], utc_now(), row[0], subscriber_id),
            )
        return True

    # --- reading ---------------------------------------------------------------------------

    def counts(self, issue_id: str) -> dict[str, int]:
        """Recipients of an issue with a ledger row, per state; every state present.

        Counted from the batches (each knows its size) and the recipients with a state of
        their own, so a million-recipient send is counted without reading a million rows.
        Members not yet claimed have no row: ``unsent`` counts them.
        """
        counts = {str(state): 0 for state in LedgerState}
        send = self.find_send(issue_id)
        if send is None:
            return counts
        for state, size in self.db.all(
            "SELECT state, SUM(size) FROM send_batches WHERE send_id = ? "
            "AND state IN ('queued', 'sending', 'sent', 'unconfirmed') GROUP BY state",
            (send.id,),
        ):
            counts[state] += int(size)
        for own, inherited, number in self.db.all(
            f"SELECT l.state, b.state, COUNT(*) FROM send_ledger l {_OWN} "
            "LEFT JOIN send_batches b ON b.send_id = l.send_id AND b.batch_no = l.batch_no "
            "WHERE l.send_id = ? AND l.state IS NOT NULL GROUP BY l.state, b.state",
            (send.id,),
        ):
            counts[own] += int(number)
            if inherited in counts:
                counts[inherited] -= int(number)
        return counts

    def unsent(self, issue_id: str, list_names: Sequence[str]) -> int:
        """Subscribed members of these lists a send of the issue would still reach: those
        not reached yet, and those queued or waiting to retry."""
        send = self.find_send(issue_id)
        waiting = 0
        if send is not None:
            waiting = int(
                self.db.scalar(
                    f"SELECT COUNT(*) FROM send_ledger l {_OWN} JOIN subscribers s "
                    "ON s.id = l.subscriber_id WHERE l.send_id = ? "
                    "AND l.state IN ('queued', 'retry') AND s.status = 'subscribed'",
                    (send.id,),
                )
                or 0
            )
        return self.not_reached(issue_id, list_names) + waiting

    def not_reached(self, issue_id: str, list_names: Sequence[str]) -> int:
        """Subscribed members of these lists with no row in the issue's send yet."""
        names = list(list_names)
        if not names:
            return 0
        marks = ", ".join("?" * len(names))
        send = self.find_send(issue_id)
        return int(
            self.db.scalar(
                "SELECT COUNT(DISTINCT m.subscriber_id) FROM memberships m "
                "JOIN lists li ON li.id = m.list_id JOIN subscribers s ON s.id = m.subscriber_id "
                f"WHERE li.name IN ({marks}) AND s.status = 'subscribed' "
                "AND m.status = 'subscribed' AND NOT EXISTS "
                "(SELECT 1 FROM send_ledger l WHERE l.send_id = ? AND l.subscriber_id = s.id)",
                (*names, send.id if send is not None else -1),
            )
            or 0
        )

    def has_members(self, list_names: Sequence[str]) -> bool:
        """Whether any of these lists has a subscribed member at all."""
        marks = ", ".join("?" * len(list_names))
        return bool(
            self.db.scalar(
                "SELECT EXISTS (SELECT 1 FROM memberships m JOIN lists li ON li.id = m.list_id "
                "JOIN subscribers s ON s.id = m.subscriber_id "
                f"WHERE li.name IN ({marks}) AND s.status = 'subscribed' "
                "AND m.status = 'subscribed')",
                tuple(list_names),
            )
        )

    def entries(
        self, issue_id: str, state: LedgerState | str | Sequence[str] | None = None
    ) -> list[LedgerEntry]:
        """Every recipient with a row, or those in the given state(s), by subscriber id."""
        sql = (
            f"SELECT d.issue_id, l.subscriber_id, s.email, COALESCE(li.name, ''), "
            f"{EFFECTIVE_STATE}, l.batch_no, b.provider_id, COALESCE(l.error, b.error), "
            "COALESCE(l.updated_at, b.finished_at, b.sending_at, b.claimed_at), "
            f"l.attempts, l.retry_at {_FROM_LEDGER} "
            "JOIN subscribers s ON s.id = l.subscriber_id "
            "LEFT JOIN lists li ON li.id = l.list_id WHERE d.issue_id = ?"
        )
        params: list[object] = [issue_id]
        if state is not None:
            wanted = [state] if isinstance(state, str) else list(state)
            sql += f" AND {EFFECTIVE_STATE} IN ({', '.join('?' * len(wanted))})"
            params += [str(LedgerState(s)) for s in wanted]
        rows = self.db.all(sql + " ORDER BY l.subscriber_id", params)
        return [
            LedgerEntry(issue_id, subscriber_id, email, list_name, LedgerState(shown), *rest)
            for issue_id, subscriber_id, email, list_name, shown, *rest in rows
        ]

    def issues(self) -> list[str]:
        """Issue ids that have a send, oldest id first."""
        return [row[0] for row in self.db.all("SELECT issue_id FROM sends ORDER BY issue_id")]

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
        if replaced is not None and _gone_from_here(replaced):
            # Its claims are free once the server has ended its sessions; settled before
            # that, they would look held by a live sender and stay open.
            self.db.sessions_ended(replaced, SESSIONS_END_WITHIN_S)
        return SendLock(issue_id, me, now, now, replaced)

    @staticmethod
    def _abandoned(holder: str, heartbeat_at: str) -> bool:
        if _gone_from_here(holder):
            return True
        return datetime.now(UTC) - parse_time(heartbeat_at) > STALE_AFTER

    def heartbeat(self, issue_id: str, owner: str | None = None) -> None:
        """Say the send is alive; raises SendInProgressError if the lock was taken over."""
        me = owner or self.owner
        if self.joined:
            return
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
        if self.joined:
            return False
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
