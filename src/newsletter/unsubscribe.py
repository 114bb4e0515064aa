"""Unsubscribing with the token of a link: who it names, as the store knows them now.

The web endpoint and ``newsletter unsubscribe --token`` both resolve tokens here, so they
accept and refuse exactly the same links.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import Subscriber
from .store import Store
from .tokens import TokenPayload, verify_token


@dataclass(frozen=True)
class TokenHolder:
    """The subscriber a genuine token names, and the list the link was sent for."""

    subscriber: Subscriber
    list_name: str

    @property
    def detail(self) -> str:
        """What the change of status records about the request."""
        return f"list {self.list_name}"


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

    payload = verify_token(secret, token, email_of)
    return TokenHolder(found[payload.subscriber_id], _list_name(store, payload))


def unsubscribe_by_token(store: Store, secret: str, token: str) -> TokenHolder:
    """Unsubscribe whoever ``token`` names; TokenError if it names nobody."""
    holder = token_holder(store, secret, token)
    store.unsubscribe(holder.subscriber.id, source="token", detail=holder.detail)
    return holder


def _list_name(store: Store, payload: TokenPayload) -> str:
    if payload.list_id is None:  # a version 1 token carries the name
        return payload.list_name or ""
    mailing_list = store.find_list_by_id(payload.list_id)
    # Lists are not deleted, but a link to one that is gone should still work.
    return mailing_list.name if mailing_list else f"#{payload.list_id}"
