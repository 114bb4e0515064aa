"""SendGrid's Event Webhook: bounces, complaints and unsubscribes flow back into the store.

SendGrid posts a JSON array of events and retries for up to 24 hours on any non-2xx
answer, so an event we cannot use (an address we do not know, an event kind we do not
act on) is acknowledged, never refused; only a request that is not SendGrid's (bad
signature, stale timestamp) or not an event batch at all is turned away. The answer says
how many events arrived and how many were seen before, never what they did: whether an
address is on a list is nobody's business but ours. What they did goes to the log, by
subscriber id.

Unsigned events are refused: with no verification key (``web.sendgrid_webhook_key``) the
route is off and says which key to set, unless ``web.accept_unsigned_webhook_events``
opts in. An event SendGrid delivers twice (same ``sg_event_id``) is applied once.

Events also settle the send ledger: a recipient whose request went out with no answer
(unconfirmed) is sent once SendGrid reports that it processed, delivered, deferred or
bounced the message, and refused when it reports it dropped it. Each event carries our
subscriber id (``custom_args``) and the issue id (the request's first category).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..config import ENV_REFERENCE, LoadedConfig, resolve_secret
from ..errors import ConfigError
from ..send_models import Outcome, SubscriberStatus
from ..store import Ledger, Store
from ..store.seen_events import SeenEvents
from .common import escalate, in_store_thread, read_body, store_for_request

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_AGE_SECONDS = 600
"""A signed request older (or further in the future) than this is a replay, not a retry:
SendGrid signs each delivery attempt afresh."""
SOURCE = "sendgrid-webhook"
_DROPPED_REASONS = (
    ("Bounced Address", SubscriberStatus.BOUNCED),
    ("Spam Reporting Address", SubscriberStatus.COMPLAINED),
    ("Unsubscribed Address", SubscriberStatus.UNSUBSCRIBED),
)
_log = logging.getLogger("newsletter.web")


@dataclass(frozen=True)
class WebhookResult:
    received: int = 0
    """Events in the batch."""
    repeated: int = 0
    """Events applied before (the same ``sg_event_id``), skipped this time."""
    updated: int = 0
    """Subscribers whose status changed."""
    ignored: int = 0
    """Events that called for a change but named no subscriber we know."""
    settled: int = 0
    """Unconfirmed recipients whose outcome the events settled in the send ledger."""

    def public(self) -> dict[str, int]:
        """What the sender is told: nothing that depends on who is in the store."""
        return {"received": self.received, "repeated": self.repeated}


_TAKEN = frozenset(
    {"processed", "delivered", "deferred", "bounce", "open", "click", "spamreport",
     "unsubscribe", "group_unsubscribe", "group_resubscribe"}
)  # fmt: skip
"""Events that can only follow a message SendGrid accepted."""


def outcome_for(event: Mapping[str, Any]) -> Outcome | None:
    """What an event says about the delivery of our request, if anything."""
    kind = event.get("event")
    if kind in _TAKEN:
        return Outcome.ACCEPTED
    if kind == "dropped":
        return Outcome.REFUSED
    return None


def _ledger_key(event: Mapping[str, Any], sends: Callable[[str], bool]) -> tuple[str, int] | None:
    """(issue id, subscriber id) of the recipient an event is about, if it is one of ours."""
    # "sid" since requests carry it so; "subscriber_id" in events of earlier sends.
    raw = event.get("sid", event.get("subscriber_id"))
    try:
        subscriber_id = int(str(raw))
    except ValueError:
        return None
    categories = event.get("category")
    names = [categories] if isinstance(categories, str) else list(categories or [])
    candidates = [event.get("issue_id"), *names]
    issue = next((c for c in candidates if isinstance(c, str) and sends(c)), None)
    return None if issue is None else (issue, subscriber_id)


def status_for(event: Mapping[str, Any]) -> SubscriberStatus | None:
    """The status an event calls for; None for events that only inform (or are temporary)."""
    kind = event.get("event")
    if kind == "bounce":
        # "blocked" is a temporary refusal (throttling, a blocklist): the address is fine.
        return None if event.get("type") == "blocked" else SubscriberStatus.BOUNCED
    if kind == "dropped":
        reason = str(event.get("reason") or "")
        return next((status for text, status in _DROPPED_REASONS if text in reason), None)
    if kind == "spamreport":
        return SubscriberStatus.COMPLAINED
    if kind in ("unsubscribe", "group_unsubscribe"):
        return SubscriberStatus.UNSUBSCRIBED
    return None


def _detail(event: Mapping[str, Any]) -> str:
    parts = [f"event={event.get('event')}"]
    for key in ("type", "reason", "sg_event_id"):
        if event.get(key):
            parts.append(f"{key}={str(event[key])[:200]}")
    return " ".join(parts)


def apply_events(store: Store, events: Sequence[Mapping[str, Any]]) -> WebhookResult:
    """Apply a batch to the store; a status only gets stronger (``SubscriberStatus.strength``).

    The ledger is settled first: an event that also changes a status (a bounce) settles
    its recipient too. The batch is one transaction with the record of its event ids, so
    an event is either applied and remembered or neither; one seen before is skipped, and
    one without an id changes nothing twice anyway (statuses only get stronger, only an
    unconfirmed recipient is settled).
    """
    repeated = updated = ignored = settled = 0
    ledger = Ledger(store)
    seen = SeenEvents(store.db)
    known: dict[str, bool] = {}

    def is_send(issue_id: str) -> bool:
        if issue_id not in known:
            known[issue_id] = ledger.find_send(issue_id) is not None
        return known[issue_id]

    with store.db.transaction():
        seen.prune()
        for event in events:
            event_id = event.get("sg_event_id")
            if isinstance(event_id, str) and event_id and not seen.first_time(event_id):
                repeated += 1
                continue
            changed, unknown, confirmed = _apply_event(store, ledger, event, is_send)
            updated += changed
            ignored += unknown
            settled += confirmed
    return WebhookResult(len(events), repeated, updated, ignored, settled)


def _apply_event(
    store: Store, ledger: Ledger, event: Mapping[str, Any], is_send: Callable[[str], bool]
) -> tuple[bool, bool, bool]:
    """(status changed, subscriber unknown, recipient settled) for one event."""
    settled = False
    outcome = outcome_for(event)
    key = _ledger_key(event, is_send) if outcome is not None else None
    if outcome is not None and key is not None:
        settled = ledger.confirm(*key, outcome, _detail(event))
    status = status_for(event)
    if status is None:
        if event.get("event") == "bounce":
            _log.info("temporary bounce (%s), status unchanged", _detail(event))
        return False, False, settled
    email = event.get("email")
    subscriber = store.get(email) if isinstance(email, str) else None
    if subscriber is None:
        return False, True, settled
    return escalate(store, subscriber, status, SOURCE, _detail(event)), False, settled


def parse_events(body: bytes) -> list[dict[str, Any]]:
    """The event batch, or ValueError with what a sender needs to know."""
    try:
        events = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("malformed JSON: expected an array of event objects") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ValueError("expected a JSON array of event objects")
    return events


class SignatureCheck:
    """Verifies SendGrid's ECDSA signature with the official helper, and refuses replays."""

    def __init__(self, public_key: str, clock: Callable[[], float] = time.time) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec
        from sendgrid.helpers.eventwebhook import EventWebhook

        try:
            self.webhook = EventWebhook(public_key)
        except ValueError as exc:
            raise ValueError(f"not a valid public key: {exc}") from None
        if not isinstance(self.webhook.public_key, ec.EllipticCurvePublicKey):
            raise ValueError("not an elliptic-curve (ECDSA) public key")
        self.clock = clock

    def problem(self, body: bytes, signature: str | None, timestamp: str | None) -> str | None:
        """Why the request is not authentic, or None when it is."""
        from cryptography.exceptions import InvalidSignature

        if not signature or not timestamp:
            return "missing signature headers"
        if (
            not (timestamp.isascii() and timestamp.isdigit())
            or abs(self.clock() - int(timestamp)) > MAX_AGE_SECONDS
        ):
            return "timestamp missing, malformed or too old"
        try:
            valid = self.webhook.verify_signature(body.decode("utf-8"), signature, timestamp)
        except (ValueError, InvalidSignature):  # undecodable body or signature
            valid = False
        return None if valid else "bad signature"


def signature_check(loaded: LoadedConfig) -> SignatureCheck | None:
    """The check for ``web.sendgrid_webhook_key``, or None when no key is configured.

    A key that is set but unusable stops the server from starting: silently accepting
    unsigned events would be worse than not running.
    """
    reference = loaded.settings.web.sendgrid_webhook_key
    if not reference:
        return None
    field = "web.sendgrid_webhook_key"
    key = resolve_secret(reference, field=field) if ENV_REFERENCE.match(reference) else reference
    try:
        return SignatureCheck(key.strip())
    except ValueError as exc:
        raise ConfigError(
            [
                f"{field}: {exc}; copy the verification key from SendGrid "
                "(Settings > Mail Settings > Event Webhook > Signature Verification)"
            ],
            path=str(loaded.path),
        ) from None


OFF_MESSAGE = (
    "SendGrid's Event Webhook is off: set web.sendgrid_webhook_key in newsletter.yml to the "
    "verification key SendGrid shows (Settings > Mail Settings > Event Webhook > Signature "
    "Verification), or web.accept_unsigned_webhook_events: true to take unsigned events\n"
)


class SendgridWebhook:
    """``POST /webhooks/sendgrid``: off, unsigned (opted in) or verified, as configured."""

    def __init__(self, loaded: LoadedConfig, check: SignatureCheck | None) -> None:
        self.loaded = loaded
        self.check = check
        self.off = loaded.settings.web.webhook_mode == "off"
        self.limit = loaded.settings.web.max_body_bytes

    async def receive(self, request: Request) -> Response:
        if self.off:
            # 503, not 404: SendGrid retries for a day, so events sent before the key is
            # set still arrive once it is.
            return PlainTextResponse(OFF_MESSAGE, status_code=503)
        body = await read_body(request, self.limit)
        if self.check is not None:
            problem = self.check.problem(
                body, request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER)
            )
            if problem:
                return PlainTextResponse(f"forbidden: {problem}\n", status_code=403)
        try:
            events = parse_events(body)
        except ValueError as exc:
            return PlainTextResponse(f"{exc}\n", status_code=400)
        result = await in_store_thread(self._apply, events)
        _log.info(
            "webhook: %d events (%d repeated); %d statuses changed, %d for unknown addresses, "
            "%d unconfirmed recipients settled",
            result.received,
            result.repeated,
            result.updated,
            result.ignored,
            result.settled,
        )
        return JSONResponse(result.public())

    def _apply(self, events: list[dict[str, Any]]) -> WebhookResult:
        with store_for_request(self.loaded) as store:
            return apply_events(store, events)
