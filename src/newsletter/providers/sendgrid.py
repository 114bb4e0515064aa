"""Delivery through SendGrid's v3 Mail Send API: one request carries up to 1,000 recipients.

The issue's bodies go once per request with their placeholders intact; each recipient is a
personalization with its own substitutions, list headers and ``custom_args`` (issue and
subscriber ids, so SendGrid's events can be matched back to the send ledger). SendGrid
substitutes the same value into every part, so the HTML part carries its own copy of each
placeholder (``%%html:name%%``) whose value is HTML-escaped: a subscriber's name can never
become markup.

The request body is serialised with orjson and handed to the official client as text with
an explicit JSON content type, which the client then sends as it is.
"""

from __future__ import annotations

import html
import http.client
import time
import urllib.error
from dataclasses import dataclass
from typing import Any

import orjson
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from .. import merge
from ..config import SendgridSettings, resolve_secret
from ..errors import AuthenticationError, ProviderError, TransientProviderError
from ..message import ONE_CLICK, PreparedIssue, list_unsubscribe, one_click_ready
from ..models import DeliveryResult
from .base import Checked, Provider

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
MAX_CATEGORIES = 10


def html_key(placeholder: str) -> str:
    """The HTML part's name for a placeholder; never a substring of the plain one or back."""
    return "%%html:" + placeholder[2:]


@dataclass(frozen=True)
class _Request:
    body: str
    subscriber_ids: tuple[int, ...]


@dataclass(frozen=True)
class _Shared:
    """The parts of a request that are the same for every batch of an issue."""

    json_tail: bytes
    """The serialised message-level fields, without the opening brace."""
    plain_tokens: tuple[str, ...]
    html_tokens: tuple[str, ...]


class SendgridProvider(Provider):
    name = "sendgrid"

    def __init__(self, settings: SendgridSettings, *, message_id_domain: str | None = None) -> None:
        super().__init__(message_id_domain=message_id_domain)
        self.settings = settings
        self.max_batch_size = settings.batch_size
        self._client: SendGridAPIClient | None = None
        self._shared: tuple[PreparedIssue, _Shared] | None = None

    def open(self) -> None:
        if self._opened:
            return
        api_key = resolve_secret(self.settings.api_key, field="provider.sendgrid.api_key")
        self._client = SendGridAPIClient(api_key, host=self.settings.host)
        # Not exactly 'application/json', so the client sends our serialised text as it is.
        self._client.client.request_headers["Content-Type"] = JSON_CONTENT_TYPE
        super().open()

    def close(self) -> None:
        self._client = None
        super().close()

    # --- hooks ---------------------------------------------------------------------------

    def build_payload(self, prepared: PreparedIssue, checked: Checked) -> _Request:
        shared = self._shared_for(prepared)
        issue_id = prepared.issue.issue_id
        personalizations = []
        for recipient, values in checked:
            substitutions = {}
            for token in shared.plain_tokens:
                substitutions[token] = merge.value_for(token, values)
            for token in shared.html_tokens:
                substitutions[html_key(token)] = html.escape(merge.value_for(token, values))
            to = {"email": recipient.email}
            if recipient.name:
                to["name"] = recipient.name
            personalization: dict[str, Any] = {
                "to": [to],
                "custom_args": {
                    "issue_id": issue_id,
                    "subscriber_id": str(recipient.subscriber_id),
                },
            }
            if substitutions:
                personalization["substitutions"] = substitutions
            unsubscribe = list_unsubscribe(prepared.issue, recipient)
            if unsubscribe:
                headers = {"List-Unsubscribe": unsubscribe}
                if one_click_ready(recipient):
                    headers["List-Unsubscribe-Post"] = ONE_CLICK
                personalization["headers"] = headers
            personalizations.append(personalization)
        body = b'{"personalizations":' + orjson.dumps(personalizations) + b"," + shared.json_tail
        return _Request(
            body=body.decode("utf-8"),
            subscriber_ids=tuple(recipient.subscriber_id for recipient, _ in checked),
        )

    def post(self, payload: _Request) -> Any:
        assert self._client is not None
        return self._client.client.mail.send.post(
            request_body=payload.body, timeout=self.settings.timeout
        )

    def parse_results(self, payload: _Request, reply: Any) -> list[DeliveryResult]:
        message_id = reply.headers.get("X-Message-Id")
        return [
            DeliveryResult(subscriber_id, ok=True, provider_id=message_id)
            for subscriber_id in payload.subscriber_ids
        ]

    def map_error(self, exc: Exception) -> ProviderError | None:
        where = f"sendgrid {self.settings.host}"
        if isinstance(exc, HTTPError):
            return _http_error(where, exc)
        if isinstance(exc, urllib.error.URLError | OSError | http.client.HTTPException):
            reason = getattr(exc, "reason", None) or exc
            return TransientProviderError(
                f"{where}: no answer ({type(exc).__name__}: {reason}); retry later"
            )
        return None

    # --- the constant part of every request of one issue ---------------------------------

    def _shared_for(self, prepared: PreparedIssue) -> _Shared:
        if self._shared is not None and self._shared[0] is prepared:
            return self._shared[1]
        issue = prepared.issue
        plain = sorted(merge.placeholders_in(issue.subject + prepared.text))
        in_html = sorted(merge.placeholders_in(prepared.html))
        html = merge.PLACEHOLDER.sub(lambda match: html_key(match.group(0)), prepared.html)
        message: dict[str, Any] = {
            "from": {"email": issue.from_address, "name": issue.from_name}
            if issue.from_name
            else {"email": issue.from_address},
            "subject": issue.subject,
            "content": [
                part
                for part in (
                    {"type": "text/plain", "value": prepared.text},
                    {"type": "text/html", "value": html},
                )
                if part["value"]
            ],
            "headers": {"List-Id": issue.list_id, "X-Newsletter-Issue": issue.issue_id},
            "categories": _categories(issue.issue_id, *self.settings.categories, *issue.categories),
        }
        if issue.reply_to:
            message["reply_to"] = {"email": issue.reply_to}
        if self.settings.asm_group_id is not None:
            message["asm"] = {"group_id": self.settings.asm_group_id}
        if self.settings.sandbox:
            message["mail_settings"] = {"sandbox_mode": {"enable": True}}
        shared = _Shared(orjson.dumps(message)[1:], tuple(plain), tuple(in_html))
        self._shared = (prepared, shared)
        return shared


def _categories(*names: str) -> list[str]:
    unique = list(dict.fromkeys(name[:255] for name in names if name))
    return unique[:MAX_CATEGORIES]


def _http_error(where: str, exc: HTTPError) -> ProviderError:
    status = int(exc.status_code)
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body)
    text = _error_text(body)
    if status == 429:
        return TransientProviderError(
            f"{where}: rate limit reached (429): {text}",
            retry_after=_retry_after(exc.headers),
            status=status,
            body=body,
        )
    if status >= 500:
        return TransientProviderError(
            f"{where}: server error ({status}): {text}", status=status, body=body
        )
    if status in (401, 403):
        return AuthenticationError(
            f"{where}: the API key was refused ({status}): {text}",
            status=status,
            body=body,
            hint="check the key in the environment variable named by provider.sendgrid.api_key "
            "and that it has the Mail Send permission",
        )
    return ProviderError(
        f"{where}: the request was refused ({status}): {text}", status=status, body=body
    )


def _error_text(body: str) -> str:
    """SendGrid's own words: every ``errors[].message``, with the field it concerns."""
    try:
        errors = orjson.loads(body).get("errors") or []
        messages = [
            f"{error.get('message')}" + (f" (field {error['field']})" if error.get("field") else "")
            for error in errors
            if isinstance(error, dict)
        ]
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        messages = []
    return "; ".join(messages) if messages else (body.strip()[:500] or "no details given")


def _retry_after(headers: Any) -> float | None:
    try:
        reset = float(headers.get("X-RateLimit-Reset"))
    except (TypeError, ValueError, AttributeError):
        return None
    return max(0.0, reset - time.time())
