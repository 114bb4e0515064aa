"""One check for a recipient, so that whatever an import accepts every transport can send.

The same functions run when a subscriber is imported or added and, over a whole batch, when
an issue is sent: an address or a name is refused once, up front, with a reason a comms
person can act on, instead of being stored and failing a send later.

Choices:

- **Mailboxes (the part before @) must be ASCII.** ``josé@example.org`` needs SMTPUTF8
  (RFC 6531), which SendGrid does not offer and most SMTP relays do not either; the SMTP
  client cannot even write it in a RCPT command. Such an address is refused with a request
  to ask the person for another one.
- **Internationalised domains are accepted** and kept in their ASCII (IDNA, ``xn--``) form,
  which every transport carries: ``ann@bücher.de`` is stored and sent as
  ``ann@xn--bcher-kva.de``.
- **A display name may hold any printable text**, commas, quotes and accents included: the
  header writers quote or encode it (``sendgrid_name`` for SendGrid). What no writer can
  carry is refused: control characters (C0, DEL, C1; CR or LF would start a new header)
  and names longer than ``MAX_NAME``.
- **Attributes** may be merged into the subject, so they follow the same rule as names.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from string import ascii_letters, digits

from email_validator import EmailNotValidError, ValidatedEmail, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH
from email_validator.rfc_constants import DOT_ATOM_TEXT as _DOT_ATOM

from .errors import InvalidAddress, InvalidRecipient
from .merge import BUILT_IN_FIELDS, shadowed_fields

MAX_NAME = 256
"""Longer names are refused: no greeting needs more, and a header line should stay short."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {
    "\t": "a tab",
    "\x00": "a NUL character (U+0000)",
    "\x7f": "a DEL character (U+007F)",
    "\u2028": "a line separator (U+2028)",
    "\u2029": "a paragraph separator (U+2029)",
}
_SHOWN = 60

# What the fast path of ``refusals`` looks for, deleted with bytes.translate (a C loop): the
# characters of an unquoted address, and everything but the @ and the line between two.
_ADDRESS_BYTES = (ascii_letters + digits + "!#$%&'*+/=?^_`{|}~-.@\n").encode("ascii")
_ALL_BUT_AT_AND_NEWLINE = bytes(b for b in range(256) if b not in b"@\n")
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))

_RFC5322_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')
_LOWERED_MAILBOXES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


def normalise_address(text: str) -> str:
    """The address as it is stored and sent to, or InvalidAddress saying why not.

    Internationalised domains come back in their ASCII (``xn--``) form; a mailbox with
    non-ASCII characters is refused (see the module's choices).
    """
    address = (text or "").strip()
    if not address:
        raise InvalidAddress("no e-mail address given")
    mailbox, at, domain = address.rpartition("@")
    if at and not mailbox.isascii():
        characters = ", ".join(dict.fromkeys(c for c in mailbox if not c.isascii()))
        raise InvalidAddress(
            f"{_shown(address)}: the part before @ has non-ASCII characters ({characters}); "
            "newsletter sends only to ASCII mailboxes, ask the person for another address"
        )
    quick = _plain_address(address, mailbox, domain) if at else None
    return quick if quick is not None else _fully_checked(address)


def _fully_checked(address: str) -> str:
    """``normalise_address`` by email_validator alone, without the fast path."""
    try:
        checked = _validated(address)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"{address!r} is not a valid e-mail address: {exc}") from None
    assert checked.ascii_email is not None  # always set when SMTPUTF8 is not allowed
    return checked.ascii_email


def _validated(address: str) -> ValidatedEmail:
    return validate_email(address, check_deliverability=False, allow_smtputf8=False)


def _plain_address(address: str, mailbox: str, domain: str) -> str | None:
    """What ``validate_email`` would return for a plain mailbox, or None to ask it.

    A million-row import spends most of its time in ``validate_email`` (about 100 us an
    address), yet its work on a dot-atom ASCII mailbox is one regular expression: the rest
    is about the domain, and a list has few domains. So the domain's verdict is cached
    and only the mailbox is looked at per address, with email_validator's own pattern and
    its own list of mailboxes it lower-cases; anything else takes the full check.
    ``tests/test_addresses_fast_path.py`` holds both ways to the same verdicts.
    """
    if not _DOT_ATOM.match(mailbox) or mailbox.lower() in _LOWERED_MAILBOXES:
        return None
    known = _domain_verdict(domain)
    if known is None:
        return None  # the full check says what is wrong with the domain
    ascii_domain, longest = known
    if len(mailbox) + 1 + longest > EMAIL_MAX_LENGTH:
        return None
    return address if ascii_domain == domain else f"{mailbox}@{ascii_domain}"


@functools.lru_cache(maxsize=4096)
def _domain_verdict(domain: str) -> tuple[str, int] | None:
    """The domain's ASCII form and its longest form in UTF-8 bytes; None if it is refused."""
    try:
        checked = _validated(f"a@{domain}")
    except EmailNotValidError:
        return None
    assert checked.ascii_domain is not None
    forms = (domain, checked.domain, checked.ascii_domain)
    return checked.ascii_domain, max(len(form.encode("utf-8")) for form in forms)


def control_character(text: str) -> str | None:
    """The first character of ``text`` no header can carry, in words; None if there is none.

    A line break is named first wherever it is, since it is the one that breaks headers.
    """
    if text.isprintable():
        return None
    if "\r" in text or "\n" in text:
        return "a line break (CR or LF)"
    found = _CONTROL.search(text)
    if found is None:
        return None  # only printable-looking spaces and format characters: harmless
    char = found.group()
    return _NAMED.get(char) or f"a control character (U+{ord(char):04X})"


def plain_text(text: str) -> bool:
    """Whether every piece of ``text``, and any two pieces joined by a space, passes
    ``check_name`` and the value rule of ``check_attributes``.

    True for a printable text shorter than ``MAX_NAME``: its pieces are printable and no
    longer, so an importer can test a whole row once instead of each of its cells.
    """
    return len(text) < MAX_NAME and text.isprintable()


def check_name(text: str, *, label: str = "name") -> str:
    """A display name every header writer can carry, stripped; InvalidRecipient if none can.

    ``label`` says which name it is in the message ("first name", "sender name").
    """
    name = (text or "").strip()
    found = control_character(name)
    if found is not None:
        raise InvalidRecipient(
            f"the {label} {_shown(name)} contains {found}, which an e-mail header cannot "
            f"carry; correct the {label}"
        )
    if len(name) > MAX_NAME:
        raise InvalidRecipient(
            f"the {label} is {len(name)} characters long; at most {MAX_NAME} fit in a "
            f"header, shorten it"
        )
    return name


def check_recipient(email: str, name: str) -> tuple[str, str]:
    """The address and name as stored and sent; InvalidRecipient names the address and why."""
    address = normalise_address(email)
    try:
        return address, check_name(name)
    except InvalidRecipient as exc:
        raise InvalidRecipient(f"{address}: {exc.message}") from None


def check_attributes(attributes: Mapping[str, object]) -> dict[str, str]:
    """Attributes that can be merged anywhere, the subject included; InvalidRecipient if not.

    None may take the name of a built-in merge field, which it would otherwise shadow.
    """
    shadowing = shadowed_fields(attributes)
    if shadowing:
        raise InvalidRecipient(
            f"the attribute {shadowing[0]!r} has the name of a built-in merge field "
            f"({', '.join(sorted(BUILT_IN_FIELDS))}), which the tool fills itself; "
            "give the attribute another name"
        )
    for key, value in attributes.items():
        if not isinstance(value, str):
            raise InvalidRecipient(
                f"the attribute {key!r} is a {type(value).__name__}, not text; "
                "attributes are merged into messages as text"
            )
        found = control_character(value)
        if found is not None:
            raise InvalidRecipient(
                f"the attribute {key!r} ({_shown(value)}) contains {found}; attributes can "
                "be merged into the subject, which must stay on one line, so correct the value"
            )
    return dict(attributes)  # type: ignore[arg-type]


def refusals(rows: Iterable[tuple[int, str, str]]) -> dict[int, str]:
    """Of ``(subscriber_id, email, name)`` rows, those no transport can carry, with why.

    Built for a send's batches: a batch of plain ASCII addresses and printable names within
    the limit (nearly every batch) is passed by a few whole-batch string operations; only
    otherwise is each row looked at, and only a row that is not plain gets the full check.
    Addresses stored before these checks existed, such as a domain kept in Unicode form,
    are refused too, since the transports send the address exactly as stored.
    """
    batch: Sequence[tuple[int, str, str]] = rows if isinstance(rows, (list, tuple)) else list(rows)
    if not batch:
        return {}
    ids, emails, names = zip(*batch, strict=True)
    return column_refusals(ids, emails, names)


def column_refusals(
    ids: Sequence[int], emails: Sequence[str], names: Sequence[str]
) -> dict[int, str]:
    """``refusals`` of a batch held as columns, as a send's worker holds it."""
    if not ids:
        return {}
    if _plain_addresses(emails) and _printable(names) and max(map(len, names)) <= MAX_NAME:
        return {}
    refused = {}
    for subscriber_id, email, name in zip(ids, emails, names, strict=True):
        reason = _refusal(email, name)
        if reason is not None:
            refused[subscriber_id] = reason
    return refused


def _plain_addresses(emails: Sequence[str]) -> bool:
    """Whether each address is ASCII, unquoted characters only, with exactly one @.

    An ASCII address in the store passed the same rules as ``normalise_address`` when it
    was added; this is the cheap proof that none was changed behind the store's back into
    something a transport cannot carry.
    """
    text = "\n".join(emails)
    if not text.isascii():
        return False
    data = text.encode("ascii")
    one_at_each = b"@\n" * (len(emails) - 1) + b"@"
    return (
        not data.translate(None, _ADDRESS_BYTES)
        and data.translate(None, _ALL_BUT_AT_AND_NEWLINE) == one_at_each
    )


def _printable(names: Sequence[str]) -> bool:
    """Whether no name holds a control character (a few are refused that need not be)."""
    text = "".join(names)
    if text.isascii():
        return not text.encode("ascii").translate(None, _PRINTABLE_ASCII)
    return text.isprintable()


def _refusal(email: str, name: str) -> str | None:
    if _plain_addresses((email,)) and _printable((name,)) and len(name) <= MAX_NAME:
        return None
    try:
        address, _ = check_recipient(email, name)
    except InvalidRecipient as exc:
        return exc.message
    if address.lower() != email.lower():
        return (
            f"{_shown(email)} is stored in a form the transports cannot carry (it should be "
            f"{address}); remove the subscriber and add them again"
        )
    return None


def sendgrid_name(name: str) -> str | None:
    """The value for a SendGrid personalization's ``to.name``; None to send without a name.

    SendGrid writes ``to.name`` into the To header without quoting it, so a name with a
    comma or a semicolon ("Okafor, Ben") is read as two addresses and the message is
    dropped (sendgrid-python issues 291 and 578; SendGrid's support names ``(),:;<>@[]``
    in sendgrid-ruby issue 394). As django-anymail does, a name holding any RFC 5322
    special is sent as a quoted string, with ``\\`` and ``"`` escaped, which SendGrid
    passes on as it is. A name no header can carry (control characters, over
    ``MAX_NAME``) is dropped rather than failing the recipient: the address is enough.
    """
    if not (name.isprintable() and len(name) <= MAX_NAME):
        try:
            name = check_name(name)
        except InvalidRecipient:
            return None
    if not name.strip():
        return None
    if _RFC5322_SPECIALS.search(name) is None:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _shown(text: str) -> str:
    """Text for a message: as it is when printable, else quoted with escapes; cut if long."""
    cut = text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
    return cut if cut.isprintable() else repr(cut)
