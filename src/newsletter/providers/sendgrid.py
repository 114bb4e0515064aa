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
from itertools import chain, repeat
from operator import methodcaller
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
_HTML_SPECIALS = "&<>\"'"
"""What ``html.escape`` changes: a batch whose values hold none of it needs no escaping."""
_JSON_UNSAFE_BYTES = bytes(0 if byte < 0x20 or byte in b'"\\' else 1 for byte in range(256))
"""``_UNSAFE`` as a byte table: 0 for what JSON would escape."""
_NO_WORDS = ("",)
_ROWS_PER_PART = 64
"""Personalizations per part of a request body: some 60 KB, see ``_Request``."""
_BODY_HEAD = b'{"personalizations":['

_IS_HTTPS = methodcaller("startswith", "https://")


def _json(text: str) -> str:
    """``text`` as the inside of a JSON string."""
    return orjson.dumps(text).decode()[1:-1]


def html_key(placeholder: str) -> str:
    """The HTML part's name for a placeholder; never a substring of the plain one or back."""
    return "%%html:" + placeholder[2:]


@dataclass(frozen=True)
class _Request:
    """A request body in parts of a few dozen personalizations, sent one after another.

    Each part stays below the allocator's threshold for a fresh memory mapping: a
    megabyte body joined in one piece (and copied once more to encode it) is paged in
    anew for every batch, which cost more than building it.
    """

    parts: tuple[bytes, ...]
    subscriber_ids: tuple[int, ...]

    @property
    def body(self) -> bytes:
        return b"".join(self.parts)

    @property
    def size(self) -> int:
        return sum(map(len, self.parts))


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
    prepares_apart = True

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
        """The checks of ``validate`` and the request of ``build_payload``, a batch at a time:
        a million recipients make this the hot loop of a send.

        A row whose texts hold nothing JSON must escape, and whose own merge values play
        no part in the issue, is one ``str.format`` of a template made once per shape
        (name or none, https or not); any other row takes the exact path (``values_for``
        and a serialised dict), so both give the same request. In the common batch (every
        row of one shape, nothing to escape, no address twice) the templates are filled by
        one ``map`` with no Python code per recipient.
        """
        self.check_size(len(rows))
        if not self._opened:
            self.open()
        prepared = self._prepare(issue)
        shared = self._shared_for(prepared)
        if not rows:
            return PreparedBatch(None, [], {})
        ids, emails, names, values, urls = zip(*rows, strict=True)
        firsts = [(name.split(None, 1) or _NO_WORDS)[0] for name in names]
        texts = "".join(emails) + "".join(names) + "".join(urls)
        clean = _json_safe(texts)
        escaping = any(map(texts.__contains__, _HTML_SPECIALS))
        fields = prepared.fields
        plain = not any(value and not fields.isdisjoint(value) for value in values)
        shape = _shape(emails[0], names[0], firsts[0], urls[0])
        if (
            clean
            and plain
            and not escaping
            and _all_of_shape(shape, emails, names, firsts, urls)
            and len(set(map(str.lower, emails))) == len(emails)
        ):
            layout = _layout(shared, shape, escaping=False)
            columns = (emails, names, tuple(map(str, ids)), firsts, urls)
            parts = [
                _fill(layout, [column[start : start + _ROWS_PER_PART] for column in columns])
                for start in range(0, len(ids), _ROWS_PER_PART)
            ]
            return self._batch(shared, parts, ids, list(ids), {})
        return self._prepare_one_by_one(prepared, shared, rows, firsts, clean, escaping)

    def _prepare_one_by_one(
        self,
        prepared: PreparedIssue,
        shared: _Shared,
        rows: Sequence[RecipientRow],
        firsts: list[str],
        clean: bool,
        escaping: bool,
    ) -> PreparedBatch:
        """A batch with something out of the ordinary: each row on its own template or the
        exact path, duplicates and rows that cannot be sent refused one by one."""
        fields = prepared.fields
        pieces: list[str] = []
        posted: list[int] = []
        rejected: dict[int, str] = {}
        seen: set[str] = set()
        fills: dict[tuple[bool, bool, bool, str], Any] = {}
        escape = html.escape
        for (sid, email, name, values, url), first in zip(rows, firsts, strict=True):
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
            shape = _shape(email, name, first, url)
            fill = fills.get(shape)
            if fill is None:
                fill = fills[shape] = _format(_layout(shared, shape, escaping=escaping))
            if escaping:
                pieces.append(
                    fill(email, name, sid, first, url, escape(email), escape(name),
                         escape(first), escape(url))
                )  # fmt: skip
            else:
                pieces.append(fill(email, name, sid, first, url))
            posted.append(sid)
        parts = [
            "," + ",".join(pieces[start : start + _ROWS_PER_PART])
            for start in range(0, len(pieces), _ROWS_PER_PART)
        ]
        return self._batch(shared, parts, tuple(posted), [row[0] for row in rows], rejected)

    @staticmethod
    def _batch(
        shared: _Shared,
        parts: list[str],
        posted: tuple[int, ...],
        ids: list[int],
        rejected: dict[int, str],
    ) -> PreparedBatch:
        """The request from its personalizations in parts, each part starting with a comma."""
        payload = None
        if parts:
            parts[0] = parts[0][1:]
            encoded = (_BODY_HEAD, *(part.encode() for part in parts), b"],", shared.json_tail)
            payload = _Request(parts=encoded, subscriber_ids=posted)
        return PreparedBatch(payload, ids, rejected)

    def deliver(self, batch: PreparedBatch) -> BatchOutcome:
        if batch.payload is None:
            return BatchOutcome(None, {})
        return BatchOutcome(self.post_mapped(batch.payload), {})

    # --- hooks ---------------------------------------------------------------------------

    def build_payload(self, prepared: PreparedIssue, checked: Checked) -> _Request:
        shared = self._shared_for(prepared)
        personalizations = [
            self._personalization(prepared, shared, recipient, values)
            for recipient, values in checked
        ]
        body = b'{"personalizations":' + orjson.dumps(personalizations) + b"," + shared.json_tail
        return _Request(
            parts=(body,),
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
            headers = {**self._headers, "Content-Length": str(payload.size)}
            connection.request("POST", self._path, payload.parts, headers)
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


_Shape = tuple[bool, bool, bool, str]
"""A personalization's shape: address, name, first name present; the URL's kind."""
_VALUE_INDEX = {"email": 0, "name": 1, "first_name": 3, "unsubscribe_url": 4}
"""Where ``_template``'s fill takes each standard value (2 is the subscriber id)."""
_ESCAPED_INDEX = {0: 5, 1: 6, 3: 7, 4: 8}
"""Where it takes the HTML-escaped copy of the same value."""


def _json_safe(text: str) -> bool:
    """Whether ``text`` holds nothing JSON would escape; ASCII text (the usual) in one table
    lookup per byte, which is several times faster than the regular expression."""
    if text.isascii():
        return 0 not in text.encode("ascii").translate(_JSON_UNSAFE_BYTES)
    return _UNSAFE.search(text) is None


def _shape(email: str, name: str, first: str, url: str) -> _Shape:
    return bool(email), bool(name), bool(first), _url_kind(url)


def _url_kind(url: str) -> str:
    return "https" if url.startswith("https://") else ("other" if url else "")


def _all_of_shape(
    shape: _Shape,
    emails: Sequence[str],
    names: Sequence[str],
    firsts: Sequence[str],
    urls: Sequence[str],
) -> bool:
    """Whether every row has ``shape``, in whole-batch tests rather than one per row."""
    has_email, has_name, has_first, kind = shape
    return (
        (all(emails) if has_email else not any(emails))
        and (all(names) if has_name else not any(names))
        and (all(firsts) if has_first else not any(firsts))
        and (
            all(map(_IS_HTTPS, urls))
            if kind == "https"
            else (all(urls) and not any(map(_IS_HTTPS, urls)) if kind else not any(urls))
        )
    )


def _layout(shared: _Shared, shape: _Shape, *, escaping: bool) -> list[str | int]:
    """One personalization as text and the places of (address, name, subscriber id, first
    name, URL) and, when ``escaping``, of their HTML-escaped copies: the same JSON as
    ``_personalization`` for rows whose values need no JSON escaping. Starts with the
    comma that separates it from the one before, and alternates text and place."""
    has_email, has_name, has_first, kind = shape
    present = {0: has_email, 1: has_name, 3: has_first, 4: bool(kind)}
    parts: list[str | int] = [',{"to":[{"email":"', 0]
    if has_name:
        parts += ['","name":"', 1]
    parts += ['"}]' + shared.custom_head, 2, '"}']
    if shared.slots:
        separator = ',"substitutions":{'
        for prefix, field_name, in_html, fallback in shared.slots:
            index = _VALUE_INDEX.get(field_name)
            value: str | int = fallback
            if index is not None and present[index]:
                value = _ESCAPED_INDEX[index] if in_html and escaping else index
            parts += [separator + prefix, value, '"']
            separator = ","
        parts.append("}")
    if kind:
        parts += [',"headers":{"List-Unsubscribe":"<', 4, ">" + shared.mailto_json + '"']
        if kind == "https":
            parts.append(',"List-Unsubscribe-Post":"' + ONE_CLICK + '"')
        parts.append("}}")
    else:
        parts.append(shared.mailto_only + "}")
    layout: list[str | int] = []
    for part in parts:
        if isinstance(part, str) and layout and isinstance(layout[-1], str):
            layout[-1] += part
        else:
            layout.append(part)
    return layout


def _format(layout: list[str | int]) -> Any:
    """A ``str.format`` that fills a layout for one row (without its leading comma)."""
    text = "".join(
        f"{{{part}}}" if isinstance(part, int) else part.replace("{", "{{").replace("}", "}}")
        for part in layout
    )
    return text[1:].format


def _fill(layout: list[str | int], columns: Sequence[Sequence[str]]) -> str:
    """A layout filled for every row of the columns in one join: no Python code per row."""
    count = len(columns[0])
    streams = [repeat(part, count) if isinstance(part, str) else columns[part] for part in layout]
    return "".join(chain.from_iterable(zip(*streams, strict=True)))


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
