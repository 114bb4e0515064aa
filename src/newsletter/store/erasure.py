"""Erasure and access: forgetting a person, and showing everything held about one.

Forgetting deletes the subscriber with everything that names them (memberships, history,
consent, their rows in send ledgers) and keeps one thing: a keyed hash of the address
(HMAC-SHA256 with a secret of the store), so a later import cannot silently put the person
back, while the store no longer says who they were to anyone without that secret. The
person may come back by their own confirmed sign-up, or an editor with ``--force`` when
they asked.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ..addresses import normalise_address
from ..errors import InvalidAddress, StoreError
from .consents import Consents
from .db import utc_now
from .subscribers import StagedRow, Store, address_key

KEY_SETTING = "erasure"
"""The store secret keying the hashes of erased addresses."""
CHUNK = 1000
ERASED_REASON = (
    "was erased at their request on {} and is not added back; they can return by "
    "signing up themselves, or by 'subscribers add --force' if they asked you"
)


class AddressHasher:
    """The keyed hash of addresses, keyed once per store."""

    def __init__(self, store: Store) -> None:
        self._keyed = hmac.new(store.get_secret(KEY_SETTING).encode(), digestmod="sha256")

    def __call__(self, email: str) -> str:
        try:
            key = address_key(normalise_address(email))
        except InvalidAddress:
            key = address_key(email.strip())
        mac = self._keyed.copy()
        mac.update(key.encode("utf-8"))
        return mac.hexdigest()


@dataclass(frozen=True)
class Forgotten:
    email: str
    was_stored: bool
    """Whether the store held anyone under this address (an erasure is kept either way)."""
    erased_at: str


def forget(store: Store, email: str) -> Forgotten:
    """Delete everything about ``email`` and remember only that it was erased."""
    digest = AddressHasher(store)(email)
    with store.db.scrubbing(), store.db.transaction():
        found = store.get(email)
        store.db.execute(
            "INSERT INTO erasures (address_hash, erased_at) VALUES (?, ?) "
            "ON CONFLICT (address_hash) DO NOTHING",
            (digest, utc_now()),
        )
        if found is not None:
            # Memberships, history and consent go by cascade, ledger rows by trigger.
            store.db.execute("DELETE FROM subscribers WHERE id = ?", (found.id,))
        erased_at = str(
            store.db.scalar("SELECT erased_at FROM erasures WHERE address_hash = ?", (digest,))
        )
    return Forgotten(found.email if found else email.strip(), found is not None, erased_at)


def erased_at(store: Store, email: str) -> str | None:
    """When ``email`` was erased, or None."""
    value = store.db.scalar(
        "SELECT erased_at FROM erasures WHERE address_hash = ?", (AddressHasher(store)(email),)
    )
    return None if value is None else str(value)


def lift(store: Store, email: str) -> None:
    """The person came back of their own accord: their erasure no longer stands."""
    with store.db.transaction():
        store.db.execute(
            "DELETE FROM erasures WHERE address_hash = ?", (AddressHasher(store)(email),)
        )


def refuse_erased(
    store: Store,
    records: Iterable[StagedRow],
    on_erased: Callable[[StagedRow, str], None],
) -> Iterator[StagedRow]:
    """The records whose address was never erased; ``on_erased`` gets each other one with
    the time of its erasure. Looked up a thousand at a time, and not at all when nobody
    was ever erased."""
    if not store.db.scalar("SELECT EXISTS (SELECT 1 FROM erasures)"):
        yield from records
        return
    hasher = AddressHasher(store)
    chunk: list[StagedRow] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == CHUNK:
            yield from _unerased(store, hasher, chunk, on_erased)
            chunk = []
    yield from _unerased(store, hasher, chunk, on_erased)


def _unerased(
    store: Store,
    hasher: AddressHasher,
    chunk: list[StagedRow],
    on_erased: Callable[[StagedRow, str], None],
) -> Iterator[StagedRow]:
    if not chunk:
        return
    digests = [hasher(record.email) for record in chunk]
    marks = ", ".join("?" * len(digests))
    erased: dict[str, str] = dict(
        store.db.all(
            f"SELECT address_hash, erased_at FROM erasures WHERE address_hash IN ({marks})",
            digests,
        )
    )
    for record, digest in zip(chunk, digests, strict=True):
        if digest in erased:
            on_erased(record, str(erased[digest]))
        else:
            yield record


def everything_held(store: Store, email: str) -> dict[str, Any]:
    """Every record the store holds about the person with this address (for an access
    request); StoreError when there is none, not even an erasure."""
    found = store.get(email)
    if found is None:
        when = erased_at(store, email)
        if when is None:
            raise StoreError(
                f"no subscriber {email!r} in the store",
                hint="'newsletter subscribers list' shows who is in it",
            )
        return {"email": email.strip(), "erased_at": when, "held": "a keyed hash only"}
    row = store.db.one(
        "SELECT attributes, source, created_at, updated_at FROM subscribers WHERE id = ?",
        (found.id,),
    )
    assert row is not None
    lists = store.db.all(
        "SELECT l.name, m.status, m.created_at, m.updated_at FROM memberships m "
        "JOIN lists l ON l.id = m.list_id WHERE m.subscriber_id = ? ORDER BY l.name",
        (found.id,),
    )
    sends = store.db.all(
        "SELECT s.issue_id, li.name, COALESCE(l.state, b.state, 'queued'), l.attempts, "
        "COALESCE(l.updated_at, b.finished_at, b.sending_at, b.claimed_at) "
        "FROM send_ledger l JOIN sends s ON s.id = l.send_id "
        "LEFT JOIN lists li ON li.id = l.list_id "
        "LEFT JOIN send_batches b ON b.send_id = l.send_id AND b.batch_no = l.batch_no "
        "WHERE l.subscriber_id = ? ORDER BY s.id",
        (found.id,),
    )
    return {
        "id": found.id,
        "email": found.email,
        "name": found.name,
        "status": str(found.status),
        "attributes": orjson.loads(row[0]) if row[0] else {},
        "source": row[1],
        "created_at": row[2],
        "updated_at": row[3],
        "lists": [
            {"list": r[0], "status": r[1], "joined_at": r[2], "changed_at": r[3]} for r in lists
        ],
        "history": [
            {
                "status": str(e.status),
                "list": e.list_name,
                "source": e.source,
                "detail": e.detail,
                "at": e.at,
            }
            for e in store.events(found.id)
        ],
        "consents": [
            {
                "list": c.list_name,
                "source": c.source,
                "ip_sha256": c.ip_hash,
                "requested_at": c.requested_at,
                "confirmed_at": c.confirmed_at,
            }
            for c in Consents(store).of_subscriber(found.id)
        ],
        "sends": [
            {"issue": r[0], "list": r[1], "state": r[2], "attempts": r[3], "at": r[4]}
            for r in sends
        ],
        "erased_at": erased_at(store, found.email),
    }
