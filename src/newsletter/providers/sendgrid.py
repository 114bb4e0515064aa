"""Delivery through SendGrid's v3 Mail Send API: one request carries up to 1,000 recipients.

The issue's bodies go once per request with their placeholders intact; each recipient is a
personalization with its own substitutions, list headers and ``custom_args`` (issue and
subscriber ids, so SendGrid's events can be matched back to the send ledger). SendGrid
substitutes the same value into every part, so the HTML part carries its own copy of each
placeholder (``%%html:name%%``) whose value is HTML-escaped: a subscriber's name can never
become markup.

The request body is serialised with orjson around a prebuilt constant part. The official
client supplies the endpoint and its headers (key, user agent); the request itself goes
over one kept-alive connection, because the client opens a new connection for every
request (a TLS handshake each time against the real API) and formats the whole body into
a debug log line whether or not anyone logs it: at a million recipients those two cost
more than building the bodies.
"""

from __future__ import annotations

import html
import http.client
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from .. import merge
from ..config import SendgridSettings, resolve_secret
from ..errors import AuthenticationError, NewsletterError, ProviderError, TransientProviderError
from ..message import ONE_CLICK, PreparedIssue
from ..models import DeliveryResult, OutgoingIssue, Recipient
from .base import BatchOutcome, Checked, PreparedBatch, Provider, RecipientRow

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
MAX_CATEGORIES = 10
MAIL_SEND_PATH = "/v3/mail/send"
MAIL_SEND_PERMISSION = "Mail Send"
IDLE_RECONNECT_S = 15.0
"""A connection idle this long is replaced before use rather than found closed mid-send."""
_UNSAFE = re.compile(r'["\\\x00-\x1f]')
"""What JSON would escape, CR and LF among it: text without any goes into a body as is."""
_HTML_SPECIAL = re.compile("[&<>\"']")
"""What ``html.escape`` changes: a batch whose values hold none of it needs no escaping."""
_BULK = "\x1f"
"""Joins a batch's texts for one search: itself unsafe, so it can be told apart (see _clean)."""


def _json(text: str) -> str:
    """``text`` as the inside of a JSON string."""
    return orjson.dumps(text).decode()[1:-1]


def html_key(placeholder: str) -> str:
    """The HTML part's name for a placeholder; never a substring of the plain one or back."""
    return "%%html:" + placeholder[2:]


@dataclass(frozen=True)
class _Request:
    body: bytes
    subscriber_ids: tuple[int, ...]


@dataclass(frozen=True)
class _Field:
    """One placeholder as the substitutions need it: key, merge field name and fallback."""

    key: str
    name: str
    fallback: str

    @property
    def json_prefix(self) -> str:
        return '"' + _json(self.key) + '":"'


@dataclass(frozen=True)
class _Shared:
    """The parts of a request that are the same for every batch of an issue."""

    json_tail: bytes
    """The serialised message-level fields, without the opening brace."""
    plain_fields: tuple[_Field, ...]
    html_fields: tuple[_Field, ...]
    custom_head: str
    """A personalization's JSON from after ``to`` up to its subscriber id."""
    slots: tuple[tuple[str, str, bool, str], ...]
    """Per substitution: JSON up to its value, field name, HTML-escaped, fallback as JSON."""
    mailto_json: str
    """What follows the URL in List-Unsubscribe, as JSON text ('' without a mailto)."""
    mailto_only: str
    """The headers member when there is no URL, as JSON ('' without a mailto)."""


class _Refused(Exception):
    """An error status read from our connection; the same fields as the client's HTTPError."""

    def __init__(self, status: int, body: bytes, headers: Any) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.body = body
        self.headers = headers


class SendgridProvider(Provider):
    name = "sendgrid"
    prepares_ahead = True

    def __init__(self, settings: SendgridSettings, *, message_id_domain: str | None = None) -> None:
        super().__init__(message_id_domain=message_id_domain)
        self.settings = settings
        self.max_batch_size = settings.batch_size
        self._client: SendGridAPIClient | None = None
        self._headers: dict[str, str] = {}
        self._connection: http.client.HTTPConnection | None = None
        self._path = MAIL_SEND_PATH
        self._last_used = 0.0
        self._shared: tuple[PreparedIssue, _Shared] | None = None

    def open(self) -> None:
        if self._opened:
            return
        api_key = resolve_secret(self.settings.api_key, field="provider.sendgrid.api_key")
        self._client = SendGridAPIClient(api_key, host=self.settings.host)
        self._headers = {
            **self._client.client.request_headers,
            "Content-Type": JSON_CONTENT_TYPE,
            "Connection": "keep-alive",
        }
        super().open()

    def close(self) -> None:
        self._disconnect()
        self._client = None
        super().close()

    # --- a batch in two steps, so the next is built while the last is on its way ---------

    def send(self, issue: OutgoingIssue, recipients: Sequence[Recipient]) -> list[DeliveryResult]:
        batch = self.prepare_rows(
            issue,
            [
                (r.subscriber_id, r.email, r.name, r.merge_values, r.unsubscribe_url)
                for r in recipients
            ],
        )
        outcome = self.deliver(batch)
        failed = {**batch.rejected, **outcome.failed}
        return [
            DeliveryResult(sid, ok=False, error=failed[sid])
            if sid in failed
            else DeliveryResult(sid, ok=True, provider_id=outcome.provider_id)
            for sid in batch.subscriber_ids
        ]

    def prepare_rows(self, issue: OutgoingIssue, rows: Sequence[RecipientRow]) -> PreparedBatch:
        """The checks of ``validate`` and the request of ``build_payload``, per row in a few
        string joins: a million recipients make this the hot loop of a send.

        A row whose texts hold nothing JSON must escape, and whose own merge values play
        no part in the issue, goes in through a template; any other row takes the exact
        path (``values_for`` and a serialised dict), so both give the same request.
        """
        self.check_size(len(rows))
        if not self._opened:
            self.open()
        prepared = self._prepare(issue)
        shared = self._shared_for(prepared)
        fields = prepared.fields
        texts = _BULK.join([r[1] + r[2] + r[4] for r in rows])
        clean = _UNSAFE.search(texts) is None
        if _HTML_SPECIAL.search(texts) is None:
            # Nothing in this batch changes when escaped: the HTML values are the plain ones.
            slots = tuple(
                (prefix, name, False, fallback) for prefix, name, _, fallback in shared.slots
            )
        else:
            slots = shared.slots
        pieces: list[str] = []
        posted: list[int] = []
        rejected: dict[int, str] = {}
        seen: set[str] = set()
        head, escape = shared.custom_head, html.escape
        mailto_json, mailto_only = shared.mailto_json, shared.mailto_only
        for sid, email, name, values, url in rows:
            address = email.lower()
            if address in seen:
                rejected[sid] = f"{email} appears twice in one batch; sent once only"
                continue
            seen.add(address)
            if (values and not fields.isdisjoint(values)) or not (
                clean or _UNSAFE.search(email + name + url) is None
            ):
                recipient = Recipient(sid, email, name, values, url)
                try:
                    checked = prepared.values_for(recipient)
                except NewsletterError as exc:
                    rejected[sid] = str(exc)
                    continue
                one = self._personalization(prepared, shared, recipient, checked)
                pieces.append(orjson.dumps(one).decode())
                posted.append(sid)
                continue
            words = name.split(None, 1)
            standard = {
                "email": email,
                "name": name,
                "first_name": words[0] if words else "",
                "unsubscribe_url": url,
            }
            parts = ['{"to":[{"email":"', email]
            if name:
                parts += ['","name":"', name]
            parts += ['"}]', head, str(sid), '"}']
            if slots:
                separator = ',"substitutions":{'
                for prefix, field_name, in_html, fallback in slots:
                    value = standard.get(field_name)
                    value = (escape(value) if in_html else value) if value else fallback
                    parts += [separator, prefix, value, '"']
                    separator = ","
                parts.append("}")
            if url:
                parts += [',"headers":{"List-Unsubscribe":"<', url, ">", mailto_json, '"']
                if url.startswith("https://"):
                    parts.append(',"List-Unsubscribe-Post":"' + ONE_CLICK + '"')
                parts.append("}}")
            else:
                parts.append(mailto_only + "}")
            pieces.append("".join(parts))
            posted.append(sid)
        payload = None
        if posted:
            body = b'{"personalizations":[' + ",".join(pieces).encode() + b"]," + shared.json_tail
            payload = _Request(body=body, subscriber_ids=tuple(posted))
        return PreparedBatch(payload, [row[0] for row in rows], rejected)

    def deliver(self, batch: PreparedBatch) -> BatchOutcome:
        if batch.payload is None:
            return BatchOutcome(None, {})
        try:
            reply = self.post(batch.payload)
        except NewsletterError:
            raise
        except Exception as exc:
            mapped = self.map_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return BatchOutcome(reply, {})

    # --- hooks ---------------------------------------------------------------------------

    def build_payload(self, prepared: PreparedIssue, checked: Checked) -> _Request:
        shared = self._shared_for(prepared)
        personalizations = [
            self._personalization(prepared, shared, recipient, values)
            for recipient, values in checked
        ]
        body = b'{"personalizations":' + orjson.dumps(personalizations) + b"," + shared.json_tail
        return _Request(
            body=body,
            subscriber_ids=tuple(recipient.subscriber_id for recipient, _ in checked),
        )

    @staticmethod
    def _personalization(
        prepared: PreparedIssue, shared: _Shared, recipient: Recipient, values: dict[str, str]
    ) -> dict[str, Any]:
        """One recipient's personalization as a dict: the path for rows out of the ordinary."""
        mailto = prepared.issue.unsubscribe_mailto
        mailto_link = f"<mailto:{mailto}?subject=unsubscribe>" if mailto else None
        substitutions = {}
        for field in shared.plain_fields:
            substitutions[field.key] = values.get(field.name) or field.fallback
        for field in shared.html_fields:
            substitutions[field.key] = html.escape(values.get(field.name) or field.fallback)
        to = (
            {"email": recipient.email, "name": recipient.name}
            if recipient.name
            else {"email": recipient.email}
        )
        personalization: dict[str, Any] = {
            "to": [to],
            "custom_args": {
                "issue_id": prepared.issue.issue_id,
                "subscriber_id": str(recipient.subscriber_id),
            },
        }
        if substitutions:
            personalization["substitutions"] = substitutions
        url = recipient.unsubscribe_url
        if url:
            # The same value as list_unsubscribe(), without a call per recipient.
            unsubscribe = f"<{url}>, {mailto_link}" if mailto_link else f"<{url}>"
            if url.startswith("https://"):
                personalization["headers"] = {
                    "List-Unsubscribe": unsubscribe,
                    "List-Unsubscribe-Post": ONE_CLICK,
                }
            else:
                personalization["headers"] = {"List-Unsubscribe": unsubscribe}
        elif mailto_link:
            personalization["headers"] = {"List-Unsubscribe": mailto_link}
        return personalization

    def post(self, payload: _Request) -> str | None:
        """The request over the kept connection; the reply's X-Message-Id."""
        connection = self._connected()
        try:
            connection.request("POST", self._path, payload.body, self._headers)
            reply = connection.getresponse()
            body = reply.read()
        except BaseException:
            self._disconnect()  # its state is unknown; the next request gets a new one
            raise
        self._last_used = time.monotonic()
        if reply.will_close:
            self._disconnect()
        if reply.status >= 400:
            raise _Refused(reply.status, body, reply.headers)
        return reply.headers.get("X-Message-Id")

    def parse_results(self, payload: _Request, reply: Any) -> list[DeliveryResult]:
        return [
            DeliveryResult(subscriber_id, ok=True, provider_id=reply)
            for subscriber_id in payload.subscriber_ids
        ]

    def map_error(self, exc: Exception) -> ProviderError | None:
        return http_error(f"sendgrid {self.settings.host}", exc, permission=MAIL_SEND_PERMISSION)

    # --- the connection --------------------------------------------------------------------

    def _connected(self) -> http.client.HTTPConnection:
        idle = time.monotonic() - self._last_used
        if self._connection is not None and idle > IDLE_RECONNECT_S:
            self._disconnect()
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def _connect(self) -> http.client.HTTPConnection:
        """A connection to the API host, through the environment's proxy as urllib would."""
        url = urlsplit(self.settings.host)
        secure = url.scheme == "https"
        host = url.hostname or "localhost"
        port = url.port or (443 if secure else 80)
        self._path = url.path.rstrip("/") + MAIL_SEND_PATH
        proxy = urllib.request.getproxies().get(url.scheme)
        if proxy and urllib.request.proxy_bypass(host):
            proxy = None
        timeout = self.settings.timeout
        connection: http.client.HTTPConnection
        if proxy:
            via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            proxy_host, proxy_port = via.hostname or "localhost", via.port or 80
            if secure:
                connection = http.client.HTTPSConnection(
                    proxy_host, proxy_port, timeout=timeout, context=ssl.create_default_context()
                )
                connection.set_tunnel(host, port)
            else:
                connection = http.client.HTTPConnection(proxy_host, proxy_port, timeout=timeout)
                self._path = f"http://{host}:{port}{self._path}"
        elif secure:
            connection = http.client.HTTPSConnection(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        connection.connect()
        if connection.sock is not None:
            # Small replies must not wait for the delayed ACK of the large request.
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

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
        plain_fields = tuple(_field(token, token) for token in plain)
        html_fields = tuple(_field(html_key(token), token) for token in in_html)
        mailto = issue.unsubscribe_mailto
        link = f"<mailto:{mailto}?subject=unsubscribe>" if mailto else ""
        shared = _Shared(
            json_tail=orjson.dumps(message)[1:],
            plain_fields=plain_fields,
            html_fields=html_fields,
            custom_head=',"custom_args":{"issue_id":"'
            + _json(issue.issue_id)
            + '","subscriber_id":"',
            slots=tuple(
                (field.json_prefix, field.name, in_html, _fallback_json(field, in_html))
                for fields, in_html in ((plain_fields, False), (html_fields, True))
                for field in fields
            ),
            mailto_json=_json(", " + link) if link else "",
            mailto_only=',"headers":{"List-Unsubscribe":"' + _json(link) + '"}' if link else "",
        )
        self._shared = (prepared, shared)
        return shared


def _field(key: str, placeholder: str) -> _Field:
    match = merge.PLACEHOLDER.fullmatch(placeholder)
    assert match is not None  # found by the same pattern
    return _Field(key, match.group(1), match.group(2) or "")


def _fallback_json(field: _Field, in_html: bool) -> str:
    return _json(html.escape(field.fallback) if in_html else field.fallback)


def _categories(*names: str) -> list[str]:
    unique = list(dict.fromkeys(name[:255] for name in names if name))
    return unique[:MAX_CATEGORIES]


def http_error(where: str, exc: Exception, *, permission: str) -> ProviderError | None:
    """What a failed request to SendGrid means for us; None if ``exc`` is not about one.

    ``where`` names the host (and endpoint) in the message; ``permission`` is the API key
    permission the request needs, named in the hint when the key is refused, since a key
    can be valid and still lack the one permission this request asks for.
    """
    if isinstance(exc, HTTPError | _Refused):
        return _refused(where, exc, permission)
    if isinstance(exc, urllib.error.URLError | OSError | http.client.HTTPException):
        reason = getattr(exc, "reason", None) or exc
        return TransientProviderError(
            f"{where}: no answer ({type(exc).__name__}: {reason}); retry later"
        )
    return None


def _refused(where: str, exc: HTTPError | _Refused, permission: str) -> ProviderError:
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
            f"and that it has the {permission} permission",
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
