"""Double opt-in: a sign-up makes someone pending on public lists; a signed, expiring link
sent to the address confirms them, and only then do they get issues.

The confirm link names the sign-up request (``consents.request``), so it confirms exactly
the lists asked for then, once: used again it changes nothing, and it does not bring back
someone who left a list after asking for it. Its layout before base64 (url-safe)::

    version (1 byte, 1) | subscriber id (LEB128) | issued, Unix seconds (LEB128)
    | request (8 bytes) | MAC (16 bytes)

    MAC = HMAC-SHA256(secret, context | everything before it | address)[:16]

As with unsubscribe tokens, the address is signed but not carried.
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .addresses import check_name, normalise_address
from .errors import InvalidAddress, InvalidRecipient, NewsletterError, TokenError
from .send_models import SubscriberStatus
from .store import Store
from .store.consents import Consents
from .store.erasure import lift
from .tokens import decode_token, read_varint, varint

_CONTEXT = b"newsletter/confirm/v1\x00"
_VERSION = 1
_MAC_SIZE = 16
_REQUEST_SIZE = 8
INVALID_LINK = "this confirmation link is not valid; it may be incomplete or altered"
EXPIRED_LINK = "this confirmation link has expired"
IP_SALT = "ip-salt"
"""The store secret that salts the hashes of sign-up IP addresses."""

DISPOSABLE_DOMAINS = frozenset(
    {
        "mailinator.com", "guerrillamail.com", "guerrillamail.net", "sharklasers.com",
        "10minutemail.com", "10minutemail.net", "temp-mail.org", "tempmail.com",
        "tempmail.net", "yopmail.com", "yopmail.fr", "trashmail.com", "trashmail.de",
        "dispostable.com", "maildrop.cc", "getnada.com", "throwawaymail.com",
        "fakeinbox.com", "mintemail.com", "mohmal.com", "emailondeck.com", "spamgourmet.com",
        "mailnesia.com", "tempail.com", "burnermail.io", "discard.email", "moakt.com",
        "tempr.email", "33mail.com", "mailcatch.com", "inboxkitten.com", "emailfake.com",
    }
)  # fmt: skip
"""Throwaway mail services: an address there is gone before the next issue."""
_DISPOSABLE_WORDS = ("tempmail", "temp-mail", "throwaway", "trashmail", "disposable",
                     "10minute", "guerrillamail", "mailinator", "yopmail", "fakeinbox")  # fmt: skip


class SignupRefused(NewsletterError, ValueError):
    """A sign-up the form cannot take; the message says why, for the reader."""

    exit_code = 2


class ConfirmLinkExpired(TokenError):
    """A genuine confirmation link, past ``signup.confirm_within_hours``."""


def disposable(address: str, blocked: Sequence[str] = ()) -> bool:
    """Whether the address is at a throwaway mail service (or a domain under one)."""
    domain = address.rpartition("@")[2].lower().rstrip(".")
    parts = domain.split(".")
    known = _known_disposable(tuple(blocked))
    return any(".".join(parts[i:]) in known for i in range(len(parts) - 1)) or any(
        word in domain for word in _DISPOSABLE_WORDS
    )


@functools.lru_cache(maxsize=8)
def _known_disposable(blocked: tuple[str, ...]) -> frozenset[str]:
    """The built-in domains and the config's own, joined once per config, not per sign-up."""
    return DISPOSABLE_DOMAINS | {d.lower().strip(".") for d in blocked}


def checked_signup(
    email: str, name: str, lists: Sequence[str], public: Sequence[str], blocked: Sequence[str]
) -> tuple[str, str, list[str]]:
    """The address, name and lists of a sign-up, or SignupRefused saying what to fix."""
    wanted = list(dict.fromkeys(name.strip() for name in lists if name.strip()))
    if not wanted:
        raise SignupRefused("Choose at least one list to subscribe to.")
    closed = [name for name in wanted if name not in public]
    if closed:
        raise SignupRefused(f"“{closed[0]}” is not a list you can join here.")
    try:
        address = normalise_address(email.strip())
    except InvalidAddress as exc:
        raise SignupRefused(
            f"“{email.strip()[:100]}” is not an e-mail address we can send to: {exc.message}"
        ) from None
    if disposable(address, blocked):
        raise SignupRefused(
            "Addresses of throwaway mail services are not accepted: use an address you read, "
            "so the issues reach you."
        )
    try:
        checked_name = check_name(name.strip())
    except InvalidRecipient as exc:
        raise SignupRefused(f"That name cannot be used: {exc.message}") from None
    return address, checked_name, wanted


def ip_hash(salt: str, ip: str) -> str:
    """sha256 of the IP address with a secret salt (the store's ``IP_SALT``): enough to tell
    one source of many sign-ups from many, nothing to recover the address from."""
    return hashlib.sha256(f"{salt}\x00{ip}".encode()).hexdigest()


@dataclass(frozen=True)
class SignupRequest:
    """A request that needs a confirmation e-mail."""

    subscriber_id: int
    email: str
    name: str
    lists: list[str]
    request: str


def request_signup(
    store: Store, email: str, name: str, lists: Sequence[str], source: str, hashed_ip: str
) -> SignupRequest | None:
    """Make the person pending on the lists they are not subscribed to yet and record the
    request; None when nothing needs confirming (already subscribed, or an address that
    bounced or complained), which the caller answers exactly like a request."""
    with store.db.transaction():
        found = store.get(email)
        if found is None:
            found = store.add_one(email, name, source=f"signup ({source})")
            current: dict[str, SubscriberStatus] = {}  # on no list yet
        elif found.status in (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED):
            return None
        else:
            current = store.list_statuses(found.id)
        reachable = found.status is SubscriberStatus.SUBSCRIBED
        needed = [
            n for n in lists if not (reachable and current.get(n) is SubscriberStatus.SUBSCRIBED)
        ]
        if not needed:
            return None
        list_ids = [store.list_id(list_name) for list_name in needed]
        store.set_pending(found.id, list_ids, "signup", source)
        request = Consents(store).request(found.id, list_ids, source, hashed_ip)
        return SignupRequest(found.id, found.email, found.name, needed, request)


class ConfirmOutcome(enum.Enum):
    CONFIRMED = "confirmed"
    ALREADY = "already confirmed"
    """The link was used before: nothing changes."""
    GONE = "left since"
    """The person left the list (or the address bounced) after asking: nothing changes."""


@dataclass(frozen=True)
class Confirmation:
    outcome: ConfirmOutcome
    email: str
    lists: list[str]


class ConfirmSigner:
    """Makes and reads confirmation links with one secret, keyed once."""

    def __init__(self, secret: str) -> None:
        self._keyed = hmac.new(secret.encode("utf-8"), _CONTEXT, digestmod="sha256")

    def make(self, request: SignupRequest, *, issued: float | None = None) -> str:
        when = int(time.time() if issued is None else issued)
        body = (
            bytes((_VERSION,))
            + varint(request.subscriber_id)
            + varint(when)
            + bytes.fromhex(request.request)
        )
        raw = body + self._mac(body, request.email)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def read(self, store: Store, token: str, max_age_s: float) -> tuple[int, str, str]:
        """(subscriber id, address, request) of a genuine, unexpired link.

        TokenError with one message for any link that is not genuine (including one for
        someone no longer in the store); ConfirmLinkExpired for a genuine one too old.
        """
        try:
            raw = decode_token(token)
            if raw[0] != _VERSION:
                raise ValueError("another version")
            subscriber_id, end = read_varint(raw, 1)
            issued, end = read_varint(raw, end)
        except (TokenError, ValueError):
            raise TokenError(INVALID_LINK) from None
        if len(raw) - end != _REQUEST_SIZE + _MAC_SIZE:
            raise TokenError(INVALID_LINK)
        body_end = end + _REQUEST_SIZE
        subscriber = store.get_by_id(subscriber_id)
        email = subscriber.email if subscriber else ""
        expected = self._mac(raw[:body_end], email)
        if not hmac.compare_digest(raw[body_end:], expected) or subscriber is None:
            raise TokenError(INVALID_LINK)
        if time.time() - issued > max_age_s:
            raise ConfirmLinkExpired(
                EXPIRED_LINK, hint="sign up again to get a new confirmation e-mail"
            )
        return subscriber_id, email, raw[end:body_end].hex()

    def _mac(self, body: bytes, email: str) -> bytes:
        mac = self._keyed.copy()
        mac.update(body + email.encode("utf-8"))
        return mac.digest()[:_MAC_SIZE]


def confirm_signup(
    store: Store, signer: ConfirmSigner, token: str, max_age_s: float
) -> Confirmation:
    """Subscribe the person to the lists of the request the link names, still pending."""
    with store.db.transaction():
        subscriber_id, email, request = signer.read(store, token, max_age_s)
        consents = Consents(store)
        rows = [row for row in consents.of_request(request) if row[0] == subscriber_id]
        if not rows:
            raise TokenError(INVALID_LINK)
        waiting = [name for _, name, confirmed in rows if confirmed is None]
        if not waiting:
            return Confirmation(ConfirmOutcome.ALREADY, email, [name for _, name, _ in rows])
        person = store.get_by_id(subscriber_id)
        current = store.list_statuses(subscriber_id)
        pending = [name for name in waiting if current.get(name) is SubscriberStatus.PENDING]
        unreachable = (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)
        if person is None or person.status in unreachable or not pending:
            return Confirmation(ConfirmOutcome.GONE, email, waiting)
        for name in pending:
            store.set_membership(subscriber_id, name, SubscriberStatus.SUBSCRIBED, "confirm")
        consents.confirm(request, pending)
        lift(store, email)  # they came back by their own confirmed request
        return Confirmation(ConfirmOutcome.CONFIRMED, email, pending)
