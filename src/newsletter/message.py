"""One recipient's e-mail: merge fields filled, list headers set, serialised for the wire.

An issue is prepared once (``PreparedIssue``) and then personalised per recipient, because
a send can reach a million people: per recipient, only the headers and the values put into
the bodies are encoded (with C helpers), and for SMTP the bodies are already dot-stuffed
(``render_for_smtp``), so the client writes them unscanned. The bytes are composed
directly rather than through ``EmailMessage``: the standard policy is ten times slower
here and folds a long ``List-Unsubscribe`` URL into encoded words that mail clients no
longer recognise.
``build_mime`` parses those same bytes for callers that want a message object.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import html
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from . import merge
from .addresses import check_name, control_character, normalise_address
from .errors import HeaderInjectionError, InvalidAddress, NewsletterError
from .send_models import OutgoingIssue, Recipient

POLICY = email.policy.SMTP.clone(refold_source="none")
"""SMTP line endings; parsed headers are written back as they came, never re-folded."""
ONE_CLICK = "List-Unsubscribe=One-Click"
_MAX_PLAIN_HEADER = 78
_WORD_BYTES = 42
_LONG_LINE = 256
"""Longer lines with placeholders are encoded in stretches (see ``_EncodedBody``)."""
"""Bytes per encoded word: 42 become 68 characters, so 'Subject: ' plus one fits in 78."""


class MergeValueError(NewsletterError, ValueError):
    """A subscriber's merge value cannot be used (it is not text)."""


def check_header(name: str, value: str) -> str:
    """The value, if it cannot start a new header line; a CR or LF would let it add headers."""
    if "\r" in value or "\n" in value:
        raise HeaderInjectionError(
            f"header {name}: the value {value[:60]!r} contains a line break (CR or LF); "
            "header values must be a single line"
        )
    return value


def check_subject(text: str) -> str:
    """A subject the writer can put in its header, or HeaderInjectionError saying why not.

    Stricter than ``check_header``: besides a line break, no control character may appear,
    since an ASCII subject is written as it is and a NUL or an escape in a header is
    refused or mangled on the way.
    """
    found = control_character(text)
    if found is not None:
        raise HeaderInjectionError(
            f"the subject {text[:200]!r} contains {found}; a subject must be one line of "
            "printable text"
        )
    return text


def check_address(header: str, address: str) -> str:
    """An address as the writer puts it in ``header`` (IDN domains as ``xn--``), or why not.

    The same rule as for a subscriber's address, so a sender is refused for what a
    recipient would be.
    """
    normalised = normalise_address(address)
    _address_header(header, "", normalised)
    return normalised


def check_sender_name(name: str) -> str:
    """The From display name as the writer puts it, checked as a subscriber's name is."""
    return check_name(name, label="sender name")


def check_sender(name: str, address: str) -> tuple[str, str]:
    """The From name and address as the writer will write them; raises if it cannot."""
    checked = check_sender_name(name), check_address("From", address)
    _address_header("From", *checked)
    return checked


def merge_values(recipient: Recipient) -> dict[str, str]:
    """The recipient's own merge values (attributes), then the ones every issue may use.

    The built-in fields always come from the subscriber record: an attribute named
    ``unsubscribe_url`` (a CSV column, say) must never replace the real link, nor one
    named ``view_url`` fill a placeholder the issue left for its own link.
    """
    first = recipient.name.split()[0] if recipient.name.strip() else ""
    values = merge.own_values(recipient.merge_values)
    values.update(
        email=recipient.email,
        name=recipient.name,
        first_name=first,
        unsubscribe_url=recipient.unsubscribe_url,
    )
    return values


def list_unsubscribe(issue: OutgoingIssue, recipient: Recipient) -> str | None:
    """The RFC 2369 List-Unsubscribe value: the one-click URL first, then the mailto."""
    links = []
    if recipient.unsubscribe_url:
        links.append(f"<{recipient.unsubscribe_url}>")
    if issue.unsubscribe_mailto:
        links.append(f"<mailto:{issue.unsubscribe_mailto}?subject=unsubscribe>")
    return ", ".join(links) or None


def one_click_ready(recipient: Recipient) -> bool:
    """RFC 8058 one-click applies only to an https URL."""
    return recipient.unsubscribe_url.startswith("https://")


class PreparedIssue:
    """What is worked out once per issue so that each recipient costs little."""

    def __init__(self, issue: OutgoingIssue) -> None:
        for name, value in (
            ("From", issue.from_name),
            ("From", issue.from_address),
            ("Reply-To", issue.reply_to or ""),
            ("List-Id", issue.list_id),
            ("X-Newsletter-Issue", issue.issue_id),
            ("List-Unsubscribe", issue.unsubscribe_mailto or ""),
        ):
            check_header(name, value)
        self.issue = issue
        self.html = _normalise_newlines(issue.html)
        self.text = _normalise_newlines(issue.text)
        self._subject = _Filler(issue.subject)
        self._html = _Filler(self.html)
        self._text = _Filler(self.text)
        self._html_qp = _EncodedBody(self.html)
        self._text_qp = _EncodedBody(self.text)
        self._html_wire = _EncodedBody(self.html, dot_stuffed=True)
        self._text_wire = _EncodedBody(self.text, dot_stuffed=True)
        self.subject_fields = frozenset(merge.field_names_in(issue.subject))
        self.fields = self.subject_fields | merge.field_names_in(self.html + self.text)
        self.placeholders = frozenset(merge.placeholders_in(issue.subject + self.html + self.text))
        self._lookups = tuple(_lookup(token) for token in self.placeholders)
        self.from_header = _address_header("From", issue.from_name, issue.from_address)
        # Headers that are the same for everyone are encoded once, not per message.
        self._subject_header = (
            None if self._subject.slots else _text_header("Subject", issue.subject)
        )
        self._list_id_header = _text_header("List-Id", issue.list_id)

    def values_for(self, recipient: Recipient) -> dict[str, str]:
        """The recipient's merge values, checked: every one text, none breaking a header."""
        who = f"subscriber {recipient.subscriber_id} ({recipient.email})"
        for label, value in (
            ("email", recipient.email),
            ("name", recipient.name),
            ("unsubscribe_url", recipient.unsubscribe_url),
        ):
            if "\r" in value or "\n" in value:
                raise HeaderInjectionError(
                    f"{who}: the {label} contains a line break (CR or LF); "
                    "correct the subscriber record"
                )
        values = merge_values(recipient)
        # attributes come from the store's JSON, which may hold numbers or lists whatever
        # the record's type says
        stored: Mapping[str, object] = values
        for name in self.fields:
            field_value = stored.get(name)
            if field_value is None:
                continue
            if not isinstance(field_value, str):
                raise MergeValueError(
                    f"{who}: merge field '{name}' is a {type(field_value).__name__}, not text; "
                    "correct the subscriber's attributes"
                )
            if name in self.subject_fields and ("\r" in field_value or "\n" in field_value):
                raise HeaderInjectionError(
                    f"{who}: merge field '{name}' is used in the Subject and contains a "
                    "line break (CR or LF); correct the subscriber's attributes"
                )
        return values

    def personalise(self, values: Mapping[str, str]) -> tuple[str, str, str]:
        filled = self._filled(values)
        escaped = {token: html.escape(value, quote=True) for token, value in filled.items()}
        return self._subject.fill(filled), self._html.fill(escaped), self._text.fill(filled)

    def render(
        self, recipient: Recipient, values: Mapping[str, str], *, message_id_domain: str
    ) -> bytes:
        """The complete RFC 5322 message for one recipient, with CRLF line endings."""
        parts = self._compose(recipient, values, message_id_domain, self._text_qp, self._html_qp)
        return b"".join(parts)

    def render_for_smtp(
        self, recipient: Recipient, values: Mapping[str, str], *, message_id_domain: str
    ) -> bytes:
        """What follows the server's 354 reply to DATA, up to and including the final '.'.

        The same message as ``render``, dot-stuffed (RFC 5321 4.5.2) and terminated, so a
        client can write it as it is: the constant parts were stuffed once per issue, and
        only the recipient's values are looked at per message.
        """
        parts = self._compose(
            recipient, values, message_id_domain, self._text_wire, self._html_wire
        )
        parts.append(b".\r\n")
        return b"".join(parts)

    def _filled(self, values: Mapping[str, str]) -> dict[str, str]:
        """Each placeholder's text for these values: the value, else its fallback, else ''."""
        return {token: values.get(name) or fallback for token, name, fallback in self._lookups}

    def _compose(
        self,
        recipient: Recipient,
        values: Mapping[str, str],
        message_id_domain: str,
        text_body: _EncodedBody,
        html_body: _EncodedBody,
    ) -> list[bytes]:
        issue = self.issue
        filled = self._filled(values)
        escaped = {token: html.escape(value, quote=True) for token, value in filled.items()}
        boundary = f"=_nl_{secrets.token_hex(12)}"  # '=_' never occurs in quoted-printable
        lines = [
            self.from_header,
            _address_header("To", recipient.name, recipient.email),
        ]
        if issue.reply_to:
            lines.append(f"Reply-To: {issue.reply_to}")
        lines += [
            self._subject_header or _text_header("Subject", self._subject.fill(filled)),
            f"Date: {format_datetime(datetime.now(UTC))}",  # '+0000': RFC 5322's numeric zone
            f"Message-ID: {make_msgid(domain=message_id_domain)}",
            self._list_id_header,
        ]
        unsubscribe = list_unsubscribe(issue, recipient)
        if unsubscribe:
            lines.append("List-Unsubscribe: " + unsubscribe.replace(", ", ",\r\n "))
            if one_click_ready(recipient):
                lines.append(f"List-Unsubscribe-Post: {ONE_CLICK}")
        lines += [
            f"X-Newsletter-Issue: {issue.issue_id}",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            "",
            f"--{boundary}",
            'Content-Type: text/plain; charset="utf-8"',
            "Content-Transfer-Encoding: quoted-printable",
            "",
            "",
        ]
        parts = ["\r\n".join(lines).encode("utf-8")]
        text_body.fill_into(parts, filled)
        parts.append(
            (
                f"\r\n--{boundary}\r\n"
                'Content-Type: text/html; charset="utf-8"\r\n'
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            ).encode("ascii")
        )
        html_body.fill_into(parts, escaped)
        parts.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
        return parts


def personalise(issue: OutgoingIssue, recipient: Recipient) -> tuple[str, str, str]:
    """Subject, HTML and text for one recipient; values are HTML-escaped in the HTML only."""
    prepared = PreparedIssue(issue)
    return prepared.personalise(prepared.values_for(recipient))


def build_mime(
    issue: OutgoingIssue, recipient: Recipient, *, message_id_domain: str
) -> EmailMessage:
    """The recipient's message as an ``EmailMessage`` (policy SMTP) for inspection or sending."""
    prepared = PreparedIssue(issue)
    raw = prepared.render(
        recipient, prepared.values_for(recipient), message_id_domain=message_id_domain
    )
    message = email.message_from_bytes(raw, policy=POLICY)
    assert isinstance(message, EmailMessage)
    return message


class _Filler:
    """A body cut once at its placeholders, so filling it is a join, not a regex pass.

    Gives the same result as ``merge.substitute``; the tests hold the two together.
    """

    def __init__(self, text: str) -> None:
        self.parts: list[str] = []
        self.slots: list[tuple[int, str]] = []
        end = 0
        for match in merge.PLACEHOLDER.finditer(text):
            self.parts.append(text[end : match.start()])
            self.slots.append((len(self.parts), match.group(0)))
            self.parts.append(match.group(0))
            end = match.end()
        self.parts.append(text[end:])

    def fill(self, filled: Mapping[str, str]) -> str:
        if not self.slots:
            return self.parts[0]
        parts = self.parts.copy()
        for index, token in self.slots:
            parts[index] = filled[token]
        return "".join(parts)


class _EncodedBody:
    """A body quoted-printable encoded once per issue, except the recipient's values.

    Encoding a 30 KB body took most of a message's time, and inlined HTML puts whole
    sections (9 KB) on one line with a placeholder in it. So every line, and within a line
    every stretch of text between placeholders of a long line, is encoded once; per
    message only the values are encoded, and the stretches are joined by soft line breaks
    ('=' at the end of a line, RFC 2045 6.7): a decoder gives exactly the filled body back.
    A short line is filled and encoded whole, as cheap and still readable in the raw text.

    ``dot_stuffed`` makes the bytes ready for SMTP DATA: every line that starts with '.'
    gets a second one (RFC 5321 4.5.2), the constant stretches once per issue and the
    values per message, since a value may itself start a line with a dot.
    """

    def __init__(self, text: str, *, dot_stuffed: bool = False) -> None:
        self.dot_stuffed = dot_stuffed
        self.pieces: list[bytes | str] = []
        """Encoded bytes, and the text with placeholders (str) to fill and encode between."""
        self._fillers: dict[str, _Filler] = {}
        for number, line in enumerate(text.split("\n")):
            if number:
                self._add(b"\r\n")
            stretches = (
                [part for part in _split_at_placeholders(line) if part]
                if len(line) > _LONG_LINE
                else [line]  # encoded whole per message: cheap, and reads as it did
            )
            for index, stretch in enumerate(stretches):
                if index:
                    self._add(b"=\r\n")
                if merge.PLACEHOLDER.search(stretch):
                    self.pieces.append(stretch)
                    self._fillers.setdefault(stretch, _Filler(stretch))
                else:
                    self._add(self._encode(stretch))

    def _add(self, encoded: bytes) -> None:
        if self.pieces and isinstance(self.pieces[-1], bytes):
            self.pieces[-1] += encoded
        else:
            self.pieces.append(encoded)

    def _encode(self, stretch: str) -> bytes:
        """One stretch that starts a line of the output, encoded (and stuffed if asked)."""
        encoded = _quoted_printable(stretch)
        return _dot_stuffed(encoded) if self.dot_stuffed else encoded

    def fill_into(self, parts: list[bytes], filled: Mapping[str, str]) -> None:
        encode, fillers = self._encode, self._fillers
        parts.extend(
            piece if isinstance(piece, bytes) else encode(fillers[piece].fill(filled))
            for piece in self.pieces
        )


def _split_at_placeholders(line: str) -> list[str]:
    """The line's text and its placeholders, in order: 'Dear %%name%%,' -> 3 parts."""
    parts, end = [], 0
    for match in merge.PLACEHOLDER.finditer(line):
        parts += [line[end : match.start()], match.group(0)]
        end = match.end()
    parts.append(line[end:])
    return parts


def _dot_stuffed(encoded: bytes) -> bytes:
    """RFC 5321 4.5.2 transparency for bytes that start a line: a leading '.' is doubled."""
    if b"\n." in encoded:
        encoded = encoded.replace(b"\n.", b"\n..")
    return b"." + encoded if encoded.startswith(b".") else encoded


def _lookup(token: str) -> tuple[str, str, str]:
    """(token, field name, fallback): a placeholder parsed once instead of per message."""
    match = merge.PLACEHOLDER.fullmatch(token)
    assert match is not None
    return token, match.group(1), match.group(2) or ""


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _quoted_printable(text: str) -> bytes:
    data = _normalise_newlines(text).encode("utf-8")
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")


def _text_header(name: str, value: str) -> str:
    check_header(name, value)
    if value.isascii() and len(name) + 2 + len(value) <= _MAX_PLAIN_HEADER:
        return f"{name}: {value}"
    if value.isascii():
        return f"{name}: " + Header(value, "us-ascii", header_name=name).encode(linesep="\r\n")
    return f"{name}: {_encoded_words(value)}"


def _encoded_words(value: str) -> str:
    """RFC 2047 base64 words of at most 75 characters, never splitting a character."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for char in value:
        width = len(char.encode("utf-8"))
        if size + width > _WORD_BYTES:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += width
    words.append("".join(chunk))
    encoded = (
        "=?utf-8?b?" + base64.b64encode(word.encode("utf-8")).decode("ascii") + "?="
        for word in words
    )
    return "\r\n ".join(encoded)


def _address_header(name: str, display_name: str, address: str) -> str:
    check_header(name, display_name)
    check_header(name, address)
    if address.count("@") != 1 or not address.isascii() or " " in address:
        raise InvalidAddress(
            f"header {name}: {address!r} is not a usable address "
            "(one @, ASCII only; internationalised mailboxes are not supported)"
        )
    if name == "From":
        try:
            Address(display_name=display_name, addr_spec=address)
        except (ValueError, IndexError) as exc:
            raise InvalidAddress(f"header From: {address!r} is not an address: {exc}") from None
    if display_name and not display_name.isascii():
        return f"{name}: {_encoded_words(display_name)} <{address}>"
    return f"{name}: {formataddr((display_name, address))}"
