"""Subscribers, their lists and the history of their consent.

Consent is one-way unless a person asks again: an address that unsubscribed, bounced or
complained is never put back on a list by an add or an import without ``force``. Every
change of status is kept in ``status_events`` with where it came from, so "why did this
person get (or not get) the newsletter" always has an answer; being added, the first event,
is the person's own row (its source and created_at).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson

from ..addresses import check_attributes, check_recipient, normalise_address
from ..errors import InvalidAddress, StoreError
from ..send_models import Subscriber, SubscriberStatus
from . import upsert
from .db import StoreDatabase, StoreLocation, open_database, utc_now
from .upsert import (
    INACTIVE,
    STREAM_CHUNK,
    NewSubscriber,
    OnDuplicate,
    StagedRow,
    UpsertCounts,
    address_key,
)

__all__ = ["INACTIVE", "NewSubscriber", "StagedRow", "Store", "UpsertCounts", "address_key"]

CHUNK = 1000
LIST_STATUSES = frozenset(
    {SubscriberStatus.PENDING, SubscriberStatus.SUBSCRIBED, SubscriberStatus.UNSUBSCRIBED}
)
SUBSCRIBER_COLUMNS = "s.id, s.email, s.name, s.status, s.attributes"
ADDED = "added"
"""The detail of a person's first event, which their own row holds (``Store.events``)."""
LIST_STATUS = "CASE WHEN s.status = 'subscribed' THEN m.status ELSE s.status END"
"""Someone's status on a list: their own, unless that is subscribed, then the membership's."""
MEMBER_COLUMNS = f"s.id, s.email, s.name, {LIST_STATUS}, s.attributes"


@dataclass(frozen=True)
class MailingList:
    id: int
    name: str
    description: str
    created_at: str


@dataclass(frozen=True)
class StatusEvent:
    status: SubscriberStatus
    source: str
    detail: str
    at: str
    list_name: str | None = None
    """The list whose membership changed; None for the person's own status."""


def subscriber_from_row(row: tuple[Any, ...]) -> Subscriber:
    attributes = orjson.loads(row[4]) if row[4] and row[4] != "{}" else {}
    return Subscriber(
        id=row[0],
        email=row[1],
        name=row[2],
        status=SubscriberStatus(row[3]),
        attributes=attributes,
    )


class Store:
    """The subscriber store; open with ``Store.open(location)`` and use as a context manager."""

    def __init__(self, db: StoreDatabase) -> None:
        self.db = db

    @classmethod
    def open(cls, location: StoreLocation) -> Store:
        """The store at a SQLite path or a ``postgresql://`` URL, migrated to this version."""
        db = open_database(location)
        try:
            db.migrate()
        except BaseException:
            db.close()
            raise
        return cls(db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- lists -----------------------------------------------------------------------------

    def ensure_list(self, name: str, description: str = "") -> MailingList:
        """Create the list if needed; a changed description in the config is taken over."""
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO lists (name, description, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, description, utc_now()),
            )
            if description:
                self.db.execute(
                    "UPDATE lists SET description = ? WHERE name = ?", (description, name)
                )
        found = self.find_list(name)
        assert found is not None
        return found

    def find_list(self, name: str) -> MailingList | None:
        row = self.db.one(
            "SELECT id, name, description, created_at FROM lists WHERE name = ?", (name,)
        )
        return MailingList(*row) if row else None

    def find_list_by_id(self, list_id: int) -> MailingList | None:
        row = self.db.one(
            "SELECT id, name, description, created_at FROM lists WHERE id = ?", (list_id,)
        )
        return MailingList(*row) if row else None

    def lists(self) -> list[MailingList]:
        rows = self.db.all("SELECT id, name, description, created_at FROM lists ORDER BY name")
        return [MailingList(*row) for row in rows]

    def list_id(self, name: str) -> int:
        found = self.find_list(name)
        if found is None:
            known = ", ".join(lst.name for lst in self.lists()) or "none yet"
            raise StoreError(
                f"there is no list named {name!r} (lists: {known})",
                hint="add it under 'lists:' in newsletter.yml, or check the spelling",
            )
        return found.id

    # --- reading ---------------------------------------------------------------------------

    def get(self, email: str) -> Subscriber | None:
        """The subscriber with this address, however its case or domain is written.

        Rows stored before addresses were kept in ASCII form (a domain in Unicode, a
        non-ASCII mailbox) are found by the address as typed too, so a send's advice to
        remove or unsubscribe them can be followed.
        """
        typed = address_key((email or "").strip())
        try:
            key = address_key(normalise_address(email))
        except InvalidAddress:
            key = typed
        row = self.db.one(
            f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers s WHERE s.email_key IN (?, ?) "
            "ORDER BY s.email_key = ? DESC LIMIT 1",
            (key, typed, key),
        )
        return subscriber_from_row(row) if row else None

    def get_by_id(self, subscriber_id: int) -> Subscriber | None:
        row = self.db.one(
            f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers s WHERE s.id = ?", (subscriber_id,)
        )
        return subscriber_from_row(row) if row else None

    def _require(self, email_or_id: str | int) -> Subscriber:
        found = (
            self.get_by_id(email_or_id) if isinstance(email_or_id, int) else self.get(email_or_id)
        )
        if found is None:
            raise StoreError(
                f"no subscriber {email_or_id!r} in the store",
                hint="'newsletter subscribers list' shows who is in it",
            )
        return found

    def subscribers_of(
        self,
        list_name: str,
        status: SubscriberStatus | None = SubscriberStatus.SUBSCRIBED,
        *,
        chunk: int = CHUNK,
    ) -> Iterator[Subscriber]:
        """Members of a list, ordered by id, read ``chunk`` rows at a time.

        Keyset paging (``id > last``) keeps memory flat for a million members and lets the
        caller write to the store between chunks: no cursor stays open across a ``yield``.
        """
        condition, extra = (f"AND {LIST_STATUS} = ?", (str(status),)) if status else ("", ())
        sql = (
            f"SELECT {MEMBER_COLUMNS} FROM memberships m "
            "JOIN subscribers s ON s.id = m.subscriber_id "
            f"WHERE m.list_id = ? {condition} "
            "AND m.subscriber_id > ? ORDER BY m.subscriber_id LIMIT ?"
        )
        for rows in self.db.pages(sql, (self.list_id(list_name), *extra), chunk=chunk):
            yield from map(subscriber_from_row, rows)

    def all_subscribers(self, status: SubscriberStatus | None = None) -> Iterator[Subscriber]:
        """Everyone in the store, on a list or not, ordered by id."""
        condition, extra = ("WHERE s.status = ?", (str(status),)) if status else ("WHERE 1 = 1", ())
        sql = (
            f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers s "
            f"{condition} AND s.id > ? ORDER BY s.id LIMIT ?"
        )
        for rows in self.db.pages(sql, extra, chunk=CHUNK):
            yield from map(subscriber_from_row, rows)

    def count(self, list_name: str | None = None, status: SubscriberStatus | None = None) -> int:
        """How many subscribers (of one list, with one status); None means all."""
        where: list[str] = []
        params: list[object] = []
        if status is not None:
            where.append(f"{'s.status' if list_name is None else LIST_STATUS} = ?")
            params.append(str(status))
        if list_name is None:
            sql = "SELECT COUNT(*) FROM subscribers s"
        else:
            sql = "SELECT COUNT(*) FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id"
            where.append("m.list_id = ?")
            params.append(self.list_id(list_name))
        if where:
            sql += " WHERE " + " AND ".join(where)
        return int(self.db.scalar(sql, params))

    def memberships(self, email_or_id: str | int) -> list[str]:
        """The lists the subscriber was ever put on, whatever their status there."""
        return list(self.list_statuses(email_or_id))

    def list_statuses(self, email_or_id: str | int) -> dict[str, SubscriberStatus]:
        """List name -> the membership's own status (pending, subscribed, unsubscribed)."""
        subscriber = self._require(email_or_id)
        rows = self.db.all(
            "SELECT l.name, m.status FROM memberships m JOIN lists l ON l.id = m.list_id "
            "WHERE m.subscriber_id = ? ORDER BY l.name",
            (subscriber.id,),
        )
        return {row[0]: SubscriberStatus(row[1]) for row in rows}

    def membership_status(self, subscriber_id: int, list_name: str) -> SubscriberStatus | None:
        """The membership's own status on the list; None if never on it."""
        value = self.db.scalar(
            "SELECT m.status FROM memberships m JOIN lists l ON l.id = m.list_id "
            "WHERE m.subscriber_id = ? AND l.name = ?",
            (subscriber_id, list_name),
        )
        return None if value is None else SubscriberStatus(value)

    def status_on(self, email_or_id: str | int, list_name: str) -> SubscriberStatus | None:
        """The subscriber's status as the list sees it (``LIST_STATUS``); None if never on it."""
        subscriber = self._require(email_or_id)
        value = self.db.scalar(
            f"SELECT {LIST_STATUS} FROM memberships m JOIN subscribers s "
            "ON s.id = m.subscriber_id WHERE m.subscriber_id = ? AND m.list_id = ?",
            (subscriber.id, self.list_id(list_name)),
        )
        return None if value is None else SubscriberStatus(value)

    def events(self, email_or_id: str | int) -> list[StatusEvent]:
        """The subscriber's status history, their own and per list, oldest first.

        The first event, being added, is the subscriber's own row (its source and when it
        was made), not a row of ``status_events``: a store from before kept a copy there
        only where the copy says something else (migration 8), and then it stands in.
        """
        subscriber = self._require(email_or_id)
        rows = self.db.all(
            "SELECT e.status, e.source, e.detail, e.at, l.name FROM status_events e "
            "LEFT JOIN lists l ON l.id = e.list_id WHERE e.subscriber_id = ? ORDER BY e.id",
            (subscriber.id,),
        )
        events = [StatusEvent(SubscriberStatus(r[0]), r[1], r[2], r[3], r[4]) for r in rows]
        if any(e.detail == ADDED and e.list_name is None for e in events):
            return events
        source, created_at = self.db.one(
            "SELECT source, created_at FROM subscribers WHERE id = ?", (subscriber.id,)
        ) or ("", "")
        return [StatusEvent(SubscriberStatus.SUBSCRIBED, source, ADDED, created_at), *events]

    # --- writing ---------------------------------------------------------------------------

    def add(
        self,
        email: str,
        name: str = "",
        list_name: str | None = None,
        attributes: Mapping[str, str] | None = None,
        source: str = "cli",
        force: bool = False,
    ) -> Subscriber:
        """Add an address (and put it on ``list_name``), or update a known one.

        A known address that left keeps its status: re-adding it raises StoreError unless
        ``force`` (the person asked to come back), which is recorded as a status event.
        The address, name and attributes get the import's checks (``addresses``): what
        no transport can carry raises InvalidRecipient, and nothing is stored.
        """
        address, checked_name = check_recipient(email, name)
        record = NewSubscriber(address, checked_name, check_attributes(attributes or {}))
        counts = self.upsert_many([record], list_name, force=force, source=source)
        found = self.get(record.email)
        assert found is not None
        if counts.skipped_unsubscribed:
            raise StoreError(
                f"{found.email} is {found.status} and is not added back",
                hint="only if they asked to rejoin, run again with --force",
            )
        return found

    def upsert_many(
        self,
        records: Iterable[NewSubscriber],
        list_name: str | None,
        *,
        force: bool = False,
        source: str = "import",
    ) -> UpsertCounts:
        """Insert or update subscribers (on ``list_name``, if given) in one transaction.

        Addresses must already be normalised and unique (see ``normalise_address``). Given
        attributes are merged into the stored ones; a non-empty name replaces the stored one.
        """
        return self.upsert_stream(
            records, list_name, force=force, source=source, on_duplicate=_ignore_duplicate
        )

    def upsert_stream(
        self,
        records: Iterable[NewSubscriber],
        list_name: str | None,
        *,
        force: bool = False,
        source: str = "import",
        on_duplicate: OnDuplicate,
        chunk: int = STREAM_CHUNK,
    ) -> UpsertCounts:
        """``upsert_many`` over a stream of any length, ``chunk`` records at a time.

        All chunks share one transaction, so a failure anywhere leaves the store as it was.
        A record whose address came earlier in the stream is not stored; ``on_duplicate``
        gets it with the line of the first one.
        """
        return self.upsert_rows(
            upsert.staged(records),
            list_name,
            force=force,
            source=source,
            on_duplicate=on_duplicate,
            chunk=chunk,
        )

    def upsert_rows(
        self,
        rows: Iterable[StagedRow],
        list_name: str | None,
        *,
        force: bool = False,
        source: str = "import",
        on_duplicate: OnDuplicate,
        chunk: int = STREAM_CHUNK,
        binding: AbstractContextManager[object] | None = None,
    ) -> UpsertCounts:
        """``upsert_stream`` of rows already in the staging table's form, which an import
        makes in the thread that reads the file, so that the writing thread only writes.

        Its memberships and events go in without the store checking their references:
        each id in them was read from the store in the same transaction, which holds the
        write lock. SQLite spent about a tenth of a million-row import on those checks.
        """
        with self.db.unchecked_references(), self.db.transaction():
            list_id = self.list_id(list_name) if list_name is not None else None
            return upsert.upsert_stream(
                self.db,
                rows,
                list_id,
                force=force,
                source=source,
                on_duplicate=on_duplicate,
                chunk=chunk,
                binding=binding,
            )

    def remove(self, email_or_id: str | int) -> Subscriber:
        """Delete a person entirely: memberships, history and ledger rows go with them."""
        subscriber = self._require(email_or_id)
        with self.db.transaction():
            self.db.execute("DELETE FROM subscribers WHERE id = ?", (subscriber.id,))
        return subscriber

    def set_status(
        self,
        email_or_id: str | int,
        status: SubscriberStatus | str,
        source: str,
        detail: str = "",
    ) -> Subscriber:
        """Change a status and record the event; setting the status it has changes nothing."""
        new = SubscriberStatus(status)
        with self.db.transaction():
            subscriber = self._require(email_or_id)
            if subscriber.status is new:
                return subscriber
            now = utc_now()
            self.db.execute(
                "UPDATE subscribers SET status = ?, updated_at = ? WHERE id = ?",
                (str(new), now, subscriber.id),
            )
            self.db.execute(
                "INSERT INTO status_events (subscriber_id, status, source, detail, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (subscriber.id, str(new), source, detail, now),
            )
            if new is SubscriberStatus.UNSUBSCRIBED:
                # Leaving everything is leaving each list: joining one again later is then
                # one list, not every list the person ever left.
                self.db.execute(
                    "UPDATE memberships SET status = 'unsubscribed', updated_at = ? "
                    "WHERE subscriber_id = ? AND status <> 'unsubscribed'",
                    (now, subscriber.id),
                )
        return self._require(subscriber.id)

    def rename(self, email_or_id: str | int, name: str) -> Subscriber:
        """Correct a subscriber's name (already checked with ``check_recipient``)."""
        with self.db.transaction():
            subscriber = self._require(email_or_id)
            self.db.execute(
                "UPDATE subscribers SET name = ?, updated_at = ? WHERE id = ?",
                (name, utc_now(), subscriber.id),
            )
        return self._require(subscriber.id)

    def unsubscribe(
        self,
        email_or_id: str | int,
        source: str = "cli",
        detail: str = "",
        *,
        list_name: str | None = None,
    ) -> Subscriber:
        """Leave one list, or (``list_name`` None) everything."""
        if list_name is None:
            return self.set_status(email_or_id, SubscriberStatus.UNSUBSCRIBED, source, detail)
        return self.set_membership(
            email_or_id, list_name, SubscriberStatus.UNSUBSCRIBED, source, detail
        )

    def set_membership(
        self,
        email_or_id: str | int,
        list_name: str,
        status: SubscriberStatus,
        source: str,
        detail: str = "",
    ) -> Subscriber:
        """Put the subscriber on a list with ``status`` (pending, subscribed, unsubscribed),
        recording the change; the status it has already changes nothing.

        Joining is the person's own request (a confirmed sign-up, the preferences page),
        so someone who had left everything becomes reachable again for this list alone; a
        bounce or complaint stays, since it is about the address.
        """
        if status not in LIST_STATUSES:
            raise ValueError(f"{status} is not a status on a list")
        with self.db.transaction():
            subscriber = self._require(email_or_id)
            list_id = self.list_id(list_name)
            now = utc_now()
            self._set_membership(subscriber.id, list_id, status, source, detail, now)
            if (
                status is SubscriberStatus.SUBSCRIBED
                and subscriber.status is SubscriberStatus.UNSUBSCRIBED
            ):
                self.db.execute(
                    "UPDATE subscribers SET status = 'subscribed', updated_at = ? WHERE id = ?",
                    (now, subscriber.id),
                )
                self.db.execute(
                    "INSERT INTO status_events (subscriber_id, status, source, detail, at) "
                    "VALUES (?, 'subscribed', ?, ?, ?)",
                    (subscriber.id, source, f"joined list {list_name}", now),
                )
        return self._require(subscriber.id)

    def add_one(self, email: str, name: str, source: str) -> Subscriber:
        """A new address, normalised and not in the store, inside the caller's
        transaction, as ``upsert_many`` adds one without a list: a sign-up adds one at a
        time, and the import's staging tables cost it ten statements more."""
        now = utc_now()
        # all(), not one(): a RETURNING statement is finished only once its rows are read.
        [(subscriber_id,)] = self.db.all(
            "INSERT INTO subscribers (email, email_key, name, attributes, status, source, "
            "created_at, updated_at) VALUES (?, ?, ?, '{}', 'subscribed', ?, ?, ?) RETURNING id",
            (email, address_key(email), name, source, now, now),
        )
        return self._require(int(subscriber_id))

    def set_pending(
        self, subscriber_id: int, list_ids: Iterable[int], source: str, detail: str
    ) -> None:
        """``set_membership(..., PENDING, ...)`` on lists known by id, inside the caller's
        transaction, for someone just read: pending changes nothing else, so nothing is
        looked up again."""
        now = utc_now()
        for list_id in list_ids:
            self._set_membership(
                subscriber_id, list_id, SubscriberStatus.PENDING, source, detail, now
            )

    def _set_membership(
        self,
        subscriber_id: int,
        list_id: int,
        status: SubscriberStatus,
        source: str,
        detail: str,
        now: str,
        *,
        record: bool = True,
    ) -> bool:
        """Write one membership's status and (if ``record``) its event, inside the
        caller's transaction; whether it changed."""
        before = self.db.scalar(
            "SELECT status FROM memberships WHERE list_id = ? AND subscriber_id = ?",
            (list_id, subscriber_id),
        )
        if before == str(status):
            return False
        self.db.execute(
            "INSERT INTO memberships (list_id, subscriber_id, created_at, status, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (list_id, subscriber_id) "
            "DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
            (list_id, subscriber_id, now, str(status), now),
        )
        if not record:
            return True
        self.db.execute(
            "INSERT INTO status_events (subscriber_id, status, source, detail, at, list_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (subscriber_id, str(status), source, detail, now, list_id),
        )
        return True

    # --- settings --------------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        """A value the tool keeps between runs (not configuration); None if never set."""
        value = self.db.scalar("SELECT value FROM settings WHERE key = ?", (key,))
        return None if value is None else str(value)

    def set_setting(self, key: str, value: str) -> None:
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def get_secret(self, name: str) -> str:
        """A random secret kept in the store, made on first use, so no credential is needed."""
        key = f"secret:{name}"
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (key, secrets.token_urlsafe(32)),
            )
            return str(self.db.scalar("SELECT value FROM settings WHERE key = ?", (key,)))


def _ignore_duplicate(record: StagedRow, first_line: int) -> None:
    """``upsert_many``'s records are unique by contract; a repeat is simply not written."""
