"""Unsubscribing with the token of a link: who it names, as the store knows them now.

The web endpoint and ``newsletter unsubscribe --token`` both resolve tokens here, so they
accept and refuse exactly the same links.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import TokenError
from .models import Subscriber
from .store import Store
from .tokens import verify_token


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
    payload = verify_token(secret, token)
    subscriber = store.get_by_id(payload.subscriber_id)
    if subscriber is None or subscriber.email != payload.email:
        raise TokenError("this unsubscribe link is not valid; it may be incomplete or altered")
    return TokenHolder(subscriber, payload.list_name)


def unsubscribe_by_token(store: Store, secret: str, token: str) -> TokenHolder:
    """Unsubscribe whoever ``token`` names; TokenError if it names nobody."""
    holder = token_holder(store, secret, token)
    store.unsubscribe(holder.subscriber.id, source="token", detail=holder.detail)
    return holder
