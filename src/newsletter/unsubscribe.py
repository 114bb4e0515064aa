"""Unsubscribing with the token of a link: who it names, as the store knows them now.

The web endpoint and ``newsletter unsubscribe --token`` both resolve tokens here, so they
accept and refuse exactly the same links.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from weakref import WeakKeyDictionary

from .send_models import Subscriber, SubscriberStatus
from .store import Store
from .store.db import parse_time
from .tokens import TokenPayload, verify_token

LEGACY_LINKS_FOR = timedelta(days=365)
"""How long links of version 1 (which carried the address) keep working."""
LEGACY_LINKS_MIGRATION = 3
"""The store migration that came with tokens of version 2: the period counts from it."""


@dataclass(frozen=True)
class TokenHolder:
    """The subscriber a genuine token names, and the list the link was sent for."""

    subscriber: Subscriber
    list_name: str
    leaves_everything: bool = False
    """A link from before statuses per list: it stops every issue, as it said it would."""
    list_status: SubscriberStatus | None = None
    """The membership's own status on the token's list, None if not on it."""

    @property
    def receives(self) -> bool:
        """Whether the link's unsubscribe would change anything."""
        if self.subscriber.status is not SubscriberStatus.SUBSCRIBED:
            return False
        return self.leaves_everything or self.list_status is not SubscriberStatus.UNSUBSCRIBED

    @property
    def detail(self) -> str:
        """What the change of status records about the request."""
        return f"list {self.list_name}"

    @property
    def list_left(self) -> str | None:
        """The list an unsubscribe with this token leaves; None for every list."""
        return None if self.leaves_everything else self.list_name


def token_holder(store: Store, secret: str, token: str) -> TokenHolder:
    """Who ``token`` names, if it is genuine and their address is still the one signed.

    Raises TokenError, with one message whatever the reason, for any other token.
    """
    found: dict[int, Subscriber] = {}

    def email_of(subscriber_id: int) -> str | None:
        subscriber = store.get_by_id(subscriber_id)
        if subscriber is None:
            return None
        found[subscriber_id] = subscriber
        return subscriber.email

    accept_v1 = datetime.now(UTC) < legacy_links_until(store)
    payload = verify_token(secret, token, email_of, accept_v1=accept_v1)
    list_name, known = _list_name(store, payload)
    # A list that is gone cannot be left alone; leaving everything is what is left to do.
    leaves_everything = payload.leaves_everything or not known
    subscriber = found[payload.subscriber_id]
    status = store.membership_status(subscriber.id, list_name) if known else None
    return TokenHolder(subscriber, list_name, leaves_everything, status)


def legacy_links_until(store: Store) -> datetime:
    """When links of version 1 stop working: a year after this store moved to version 2.

    An unsubscribe link has to outlive the issue that carried it (people unsubscribe from
    an issue months old), and the mark of the move is in the store itself, so the period
    is the same for every deployment whatever day it upgraded.
    """
    moved = _moved.get(store)
    if moved is None:
        applied = store.db.scalar(
            "SELECT applied_at FROM schema_migrations WHERE version = ?",
            (LEGACY_LINKS_MIGRATION,),
        )
        moved = _moved[store] = parse_time(applied) if applied else datetime.now(UTC)
    return moved + LEGACY_LINKS_FOR


_moved: WeakKeyDictionary[Store, datetime] = WeakKeyDictionary()
"""The move's time, read once per open store: the web app keeps its stores open, and a
migration's time never changes."""


def unsubscribe_by_token(store: Store, secret: str, token: str) -> TokenHolder:
    """Unsubscribe whoever ``token`` names; TokenError if it names nobody."""
    holder = token_holder(store, secret, token)
    store.unsubscribe(
        holder.subscriber.id, source="token", detail=holder.detail, list_name=holder.list_left
    )
    return holder


def _list_name(store: Store, payload: TokenPayload) -> tuple[str, bool]:
    """The token's list by name, and whether the store knows it."""
    if payload.list_id is None:  # a version 1 token carries the name
        name = payload.list_name or ""
        return name, store.find_list(name) is not None
    mailing_list = store.find_list_by_id(payload.list_id)
    # Lists are not deleted, but a link to one that is gone should still work.
    return (mailing_list.name, True) if mailing_list else (f"#{payload.list_id}", False)
