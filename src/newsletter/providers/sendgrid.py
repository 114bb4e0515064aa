"""Delivery through SendGrid's v3 Mail Send API: one request carries up to 1,000 recipients.

The issue's bodies go once per request; each recipient is a personalization with their
address, their own substitutions and the one header that must be theirs
(``List-Unsubscribe``: SendGrid does not substitute into headers), tagged with our
subscriber id in ``custom_args`` (as ``sid``); the issue id is the request's first
category. SendGrid's events carry both, so the Event Webhook can settle a recipient whose
outcome we did not learn. (SendGrid's schema types a message-level ``custom_args`` as a
string, so the issue id does not go there.)

Everything the same for every recipient is said once per request: the list headers, the
unsubscribe link's base (the body carries the base and a short key that
SendGrid replaces with the recipient's token). Short substitution keys stand in for the
issue's merge fields. A request costs under 400 bytes per recipient.

SendGrid substitutes the same value into every part, so when a value in a batch holds
HTML's special characters the HTML part uses keys of its own whose values are escaped: a
subscriber's name can never become markup. A display name SendGrid could mis-read (a
comma or a semicolon, say) is quoted, and one no header can carry is left out, so a name
can never fail a request.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any

import orjson

from .. import addresses, merge
from ..charclass import CharClass
from ..config import SendgridSettings, resolve_secret
from ..errors import ProviderError
from ..message import ONE_CLICK, PreparedIssue
from ..send_models import Delivery, Outcome, RecipientRow
from .base import Provider
from .sendgrid_api import MAIL_SEND_PATH, SendgridApi, error_list

MAX_CATEGORIES = 10
SUBSCRIBER_ARG = "sid"
"""The ``custom_args`` key of our subscriber id: short, since every recipient repeats it."""
MAIL_SEND_PERMISSION = "Mail Send"
_UNSAFE = CharClass(r'["\\\x00-\x1f\x7f\u2028\u2029]')
"""What a JSON string would escape: text without any goes into a body as it is."""
_HTML_SPECIALS = CharClass(r"[&<>\"']")
_NAME_NEEDS_CARE = CharClass(r'[()<>\[\]:;@\\,."\x00-\x1f\x7f-\x9f]')
"""What may make SendGrid mis-read a display name, or cannot go in a header at all."""
_CONTROL = CharClass(r"[\x00-\x1f\x7f-\x9f]")
_SPACE_NOT_PLAIN = CharClass(r"[^\S ]")
"""Whitespace other than the plain space."""
_PERSONALIZATION_FIELD = re.compile(r"^personalizations\.(\d+)\b")
_STANDARD = ("email", "name", "first_name")
_TOKEN_FIELD = "unsubscribe_url"


def _json(text: str) -> str:
    """``text`` as the inside of a JSON string."""
    return orjson.dumps(text).decode()[1:-1]


@dataclass(frozen=True)
class _Field:
    """One merge field of the issue and the substitution keys that stand for it."""

    name: str
    fallback: str
    key: str
    """Its key in the subject and the text part (and the HTML, when nothing needs escaping)."""
    html_key: str
    """Its key in the HTML part when the batch's values need escaping."""


@dataclass(frozen=True)
class _Shared:
    """What every request of an issue shares: the message, serialised, in two forms."""

    tail: bytes
    """The message-level members after the personalizations, HTML keyed as the text."""
    tail_escaped: bytes
    """The same with the HTML part's own keys, for batches whose values need escaping."""
    fields: tuple[_Field, ...]
    token_key: str
    """The key of the recipient's unsubscribe token, or '' when the issue has no link."""
    unsubscribe_head: str
    """A personalization's headers up to the token, as JSON text ('' without a link)."""
    unsubscribe_tail: str
    """What follows the token in the headers ('' without a link)."""


@dataclass(frozen=True)
class SendgridPayload:
    """One Mail Send request: its body, in parts, and whose personalization is at each index.

    The parts go out one after another: joined, a 400 KB body would be copied twice more
    into fresh memory for every request.
    """

    parts: tuple[bytes, ...]
    subscriber_ids: tuple[int, ...]

    @property
    def body(self) -> bytes:
        return b"".join(self.parts)

    def as_json(self) -> dict[str, Any]:
        """The request as SendGrid would read it (for a debug dump and for tests)."""
        return orjson.loads(self.body)  # type: ignore[no-any-return]


class SendgridProvider(Provider):
    name = "sendgrid"
    in_processes = True

    def __init__(self, settings: SendgridSettings, *, message_id_domain: str | None = None) -> None:
        super().__init__(message_id_domain=message_id_domain)
        self.settings = settings
        self.max_batch_size = settings.batch_size
        self.workers = settings.connections
        self._api_key = ""
        self._api: SendgridApi | None = None
        self._shared: tuple[PreparedIssue, _Shared] | None = None

    def open(self) -> None:
        """Resolve the key; a missing one fails here, before anything is sent. The
        connection itself is made by the first request (in the worker that makes it)."""
        if self._opened:
            return
        self._api_key = resolve_secret(self.settings.api_key, field="provider.sendgrid.api_key")
        super().open()

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
        super().close()

    # --- hooks ---------------------------------------------------------------------------

    def refusals(self, issue: PreparedIssue, rows: Sequence[RecipientRow]) -> dict[int, str]:
        """As every provider's, except that a name no header can carry is no reason to
        refuse: the recipient is addressed without it (see ``build_payload``)."""
        return super().refusals(issue, _names_carried(rows))

    def build_payload(self, issue: PreparedIssue, rows: Sequence[RecipientRow]) -> SendgridPayload:
        """The request for a batch, built column by column: each value of a field for
        every recipient at once, escaped only when some value needs it, then woven into
        the personalizations in one join. A million recipients make this the hot loop."""
        shared = self._shared_for(issue)
        ids, emails, names, values, tokens = zip(*_names_carried(rows), strict=True)
        columns: dict[str, Sequence[str]] = {"email": emails, "name": names}
        if any(field.name == "first_name" for field in shared.fields):
            columns["first_name"] = _first_names(names)
        plain = [_column(field, columns, values) for field in shared.fields]
        escaping = any(_HTML_SPECIALS.found_in("".join(column)) for column in plain)
        to = _to_layout(emails, names)
        # Each personalization, as alternating constant text and columns of values, with
        # the comma that separates it from the one before.
        count = len(ids)
        layout: list[str | Sequence[str]] = [_separators(count), '{"to":[', *to]
        layout += ['],"custom_args":{"' + SUBSCRIBER_ARG + '":"', list(map(str, ids)), '"}']
        separator = ',"substitutions":{'
        for field, column in zip(shared.fields, plain, strict=True):
            layout += [f'{separator}"{field.key}":"', _json_column(column), '"']
            separator = ","
            if escaping:
                escaped = [html.escape(value) for value in column]
                layout += [f',"{field.html_key}":"', _json_column(escaped), '"']
        if shared.token_key:
            layout += [f'{separator}"{shared.token_key}":"', tokens, '"']
            separator = ","
        if separator == ",":
            layout.append("}")
        if shared.unsubscribe_head:
            layout += [shared.unsubscribe_head, tokens, shared.unsubscribe_tail]
        layout.append("}")
        parts = (
            b'{"personalizations":[',
            _fill(layout, count).encode(),
            b"],",
            shared.tail_escaped if escaping else shared.tail,
        )
        return SendgridPayload(parts, tuple(ids))

    def post(self, payload: SendgridPayload, subscriber_ids: Sequence[int]) -> Delivery:
        try:
            response = self._connection().post_json(
                MAIL_SEND_PATH, payload.parts, permission=MAIL_SEND_PERMISSION
            )
        except ProviderError as exc:
            if exc.status == 400:
                return _refused_fields(payload, exc)
            raise
        return Delivery.of_all(
            subscriber_ids, Outcome.ACCEPTED, provider_id=response.headers.get("X-Message-Id")
        )

    def _connection(self) -> SendgridApi:
        if self._api is None:
            self._api = SendgridApi(
                self.settings.host, self._api_key, timeout=self.settings.timeout
            )
        return self._api

    # --- the constant part of every request of one issue ---------------------------------

    def _shared_for(self, prepared: PreparedIssue) -> _Shared:
        if self._shared is not None and self._shared[0] is prepared:
            return self._shared[1]
        issue = prepared.issue
        subject, text, body = issue.subject, prepared.text, prepared.html
        everything = subject + text + body
        placeholders = sorted(merge.placeholders_in(everything))
        keys = _Keys(everything)
        base = issue.unsubscribe_base
        token_key = (
            keys.make("t")
            if base and any(_name_of(token) == _TOKEN_FIELD for token in placeholders)
            else ""
        )
        fields: list[_Field] = []
        plain_for: dict[str, str] = {}
        html_for: dict[str, str] = {}
        for token in placeholders:
            name, fallback = _name_of(token), _fallback_of(token)
            if name == _TOKEN_FIELD and token_key:
                plain_for[token] = base + token_key
                html_for[token] = html.escape(base) + token_key
                continue
            field = _Field(
                name, fallback, keys.make(str(len(fields))), keys.make(f"h{len(fields)}")
            )
            fields.append(field)
            plain_for[token], html_for[token] = field.key, field.html_key
        keyed_subject = _replace(subject, plain_for)
        keyed_text = _replace(text, plain_for)
        tail = self._message_tail(prepared, keyed_subject, keyed_text, _replace(body, plain_for))
        tail_escaped = self._message_tail(
            prepared, keyed_subject, keyed_text, _replace(body, html_for)
        )
        mailto = issue.unsubscribe_mailto
        link = f"<mailto:{mailto}?subject=unsubscribe>" if mailto else ""
        shared = _Shared(
            tail=tail,
            tail_escaped=tail_escaped,
            fields=tuple(fields),
            token_key=token_key,
            unsubscribe_head=',"headers":{"List-Unsubscribe":"<' + _json(base) if base else "",
            unsubscribe_tail=(">" + _json(", " + link) if link else ">") + '"}' if base else "",
        )
        self._shared = (prepared, shared)
        return shared

    def _message_tail(self, prepared: PreparedIssue, subject: str, text: str, body: str) -> bytes:
        issue = prepared.issue
        headers = {"List-Id": issue.list_id, "X-Newsletter-Issue": issue.issue_id}
        base, mailto = issue.unsubscribe_base, issue.unsubscribe_mailto
        if base.startswith("https://"):
            # Every recipient's List-Unsubscribe starts with an https link: RFC 8058 applies.
            headers["List-Unsubscribe-Post"] = ONE_CLICK
        elif not base and mailto:
            headers["List-Unsubscribe"] = f"<mailto:{mailto}?subject=unsubscribe>"
        message: dict[str, Any] = {
            "from": _address(issue.from_address, issue.from_name),
            "subject": subject,
            "content": [
                part
                for part in (
                    {"type": "text/plain", "value": text},
                    {"type": "text/html", "value": body},
                )
                if part["value"]
            ],
            "headers": headers,
            "categories": _categories(issue.issue_id, *self.settings.categories, *issue.categories),
        }
        if issue.reply_to:
            message["reply_to"] = {"email": issue.reply_to}
        if self.settings.asm_group_id is not None:
            message["asm"] = {"group_id": self.settings.asm_group_id}
        if self.settings.sandbox:
            message["mail_settings"] = {"sandbox_mode": {"enable": True}}
        return orjson.dumps(message)[1:]


class _Keys:
    """Short substitution keys (``%0%``, ``%t%``) that occur nowhere in the issue's own
    text; each recipient repeats them, so every character counts a million times."""

    def __init__(self, text: str) -> None:
        self.text = text

    def make(self, label: str) -> str:
        key = f"%{label}%"
        while key in self.text:
            label += "_"
            key = f"%{label}%"
        return key


def _name_of(token: str) -> str:
    match = merge.PLACEHOLDER.fullmatch(token)
    assert match is not None  # found by the same pattern
    return match.group(1)


def _fallback_of(token: str) -> str:
    match = merge.PLACEHOLDER.fullmatch(token)
    assert match is not None
    return match.group(2) or ""


def _replace(text: str, keys: dict[str, str]) -> str:
    if not keys:
        return text
    return merge.PLACEHOLDER.sub(lambda match: keys.get(match.group(0), match.group(0)), text)


def _column(
    field: _Field, columns: dict[str, Sequence[str]], values: Sequence[dict[str, str]]
) -> Sequence[str]:
    """The field's value for every recipient, its fallback where they have none.

    The built-in fields come from the subscriber record, as in ``message.merge_values``:
    an attribute of the same name never replaces them.
    """
    if field.name in columns:
        column = columns[field.name]
    elif field.name not in merge.BUILT_IN_FIELDS and any(values):
        column = [row_values.get(field.name) or "" for row_values in values]
    else:
        column = [""] * len(values)
    if field.fallback and not all(column):
        fallback = field.fallback
        column = [value or fallback for value in column]
    return column


def _first_names(names: Sequence[str]) -> list[str]:
    """Each name's first word, as ``name.split()[0]`` (or '' for a blank name) gives it.

    Where no name starts with whitespace and the only whitespace is the plain space (the
    usual batch), cutting at the first space is the same thing, done by a ``map`` of C
    methods with no Python code per name.
    """
    joined = "\x00" + "\x00".join(names)
    if "\x00 " not in joined and not _SPACE_NOT_PLAIN.found_in(joined):
        return list(map(itemgetter(0), map(str.partition, names, repeat(" "))))
    return [(name.split(None, 1) or ("",))[0] for name in names]


def _json_column(column: Sequence[str]) -> Sequence[str]:
    """The column as JSON string insides, escaping (per value) only if something needs it."""
    if not _UNSAFE.found_in("".join(column)):
        return column
    return [_json(value) for value in column]


def _names_carried(rows: Sequence[RecipientRow]) -> Sequence[RecipientRow]:
    """The rows with every name that holds a line break or control character left out:
    such a recipient is addressed and greeted as one without a name."""
    if not _CONTROL.found_in("".join([row[2] for row in rows])):
        return rows
    return [
        (sid, email, "" if _CONTROL.found_in(name) else name, values, token)
        for sid, email, name, values, token in rows
    ]


def _to_layout(emails: Sequence[str], names: Sequence[str]) -> list[str | Sequence[str]]:
    """The ``to`` objects as a layout: in the usual batch (everyone named, nothing to quote
    or escape) the addresses and names themselves, woven in by the one join; otherwise
    one JSON object per recipient."""
    if (
        all(names)
        and not _NAME_NEEDS_CARE.found_in("".join(names))
        and not _UNSAFE.found_in("".join(emails))
    ):
        return ['{"email":"', emails, '","name":"', names, '"}']
    return [_to_column(emails, names)]


def _to_column(emails: Sequence[str], names: Sequence[str]) -> list[str]:
    """Each recipient's ``to`` object as JSON: the name quoted, or left out if it cannot go."""
    if not _NAME_NEEDS_CARE.found_in("".join(names)) and not _UNSAFE.found_in("".join(emails)):
        return [
            f'{{"email":"{email}","name":"{name}"}}' if name else f'{{"email":"{email}"}}'
            for email, name in zip(emails, names, strict=True)
        ]
    column = []
    for email, name in zip(emails, names, strict=True):
        shown = addresses.sendgrid_name(name) if name else None
        column.append(orjson.dumps(_address(email, shown)).decode())
    return column


def _address(email: str, name: str | None) -> dict[str, str]:
    return {"email": email, "name": name} if name else {"email": email}


def _separators(count: int) -> list[str]:
    """Nothing before the first personalization, a comma before each of the others."""
    return ["", *repeat(",", count - 1)] if count else []


def _fill(layout: Sequence[str | Sequence[str]], count: int) -> str:
    """A layout filled for every row in one join: no Python code per recipient.

    Neighbouring constant texts become one piece; then each piece takes every k-th slot
    of one list by slice assignment (a column must have ``count`` values, or it raises),
    which costs about a third less than zipping the columns into a tuple per recipient.
    """
    pieces: list[str | Sequence[str]] = []
    for part in layout:
        last = pieces[-1] if pieces else None
        if isinstance(part, str) and isinstance(last, str):
            pieces[-1] = last + part
        else:
            pieces.append(part)
    width = len(pieces)
    slots: list[str] = [""] * (width * count)
    for offset, piece in enumerate(pieces):
        slots[offset::width] = [piece] * count if isinstance(piece, str) else piece
    return "".join(slots)


def _categories(*names: str) -> list[str]:
    unique = list(dict.fromkeys(name[:255] for name in names if name))
    return unique[:MAX_CATEGORIES]


def _refused_fields(payload: SendgridPayload, exc: ProviderError) -> Delivery:
    """A 400 that names personalizations: those recipients are refused, the rest of the
    batch was not delivered and may go again at once. A 400 about the message itself
    (sender, subject, content) stops the send, since every batch would be refused alike.
    """
    ids = payload.subscriber_ids
    refused: dict[int, tuple[Outcome, str]] = {}
    for error in error_list(exc.body or ""):
        match = _PERSONALIZATION_FIELD.match(str(error.get("field") or ""))
        if match is None or int(match.group(1)) >= len(ids):
            return Delivery.of_all(
                ids,
                Outcome.NOT_DELIVERED,
                exc.message,
                halt=ProviderError(
                    exc.message,
                    status=exc.status,
                    body=exc.body,
                    hint="SendGrid refused the message itself, so every batch would be "
                    "refused alike: the send stopped and nobody in this batch got it; fix "
                    "what SendGrid names and run the same command again",
                ),
            )
        reason = f"SendGrid refused it: {error.get('message')} (field {error.get('field')})"
        refused[ids[int(match.group(1))]] = (Outcome.REFUSED, reason)
    if not refused:
        return Delivery.of_all(ids, Outcome.NOT_DELIVERED, exc.message, halt=exc)
    return Delivery(
        ids,
        Outcome.NOT_DELIVERED,
        "not sent: SendGrid refused another recipient of the same request",
        refused,
        retry_after=0.0,
    )
