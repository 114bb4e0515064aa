"""Signed unsubscribe tokens: the one-click link says who to unsubscribe, and a signature.

The token names a subscriber and a list, so the unsubscribe endpoint can act without a
table of issued links, and carries a signature so nobody can unsubscribe someone else by
editing the link. One is made for every recipient of every send and goes into each
SendGrid request three times, so it is short and cheap to make.

Layout of versions 4, 3 and 2 before base64 (url-safe, no padding)::

    version (1 byte, 4, 3 or 2) | subscriber id (unsigned LEB128)
    | list id (unsigned LEB128) | MAC (16 bytes)

    version 4:    MAC = BLAKE2b-128(key = K, person = "nl/unsubscribe",
                                    version | subscriber id | list id | address)
                  K   = HMAC-SHA256(secret, "newsletter/unsubscribe/v4 key" | NUL)
    versions 3, 2: MAC = HMAC-SHA256(secret, context | version | subscriber id | list id
                                     | address)[:16]

Keyed BLAKE2b is a MAC in its own right (its key goes into the first block, so it needs
no second pass as HMAC does) with the same 128-bit strength here, for about half the CPU
per token of HMAC-SHA256: a send makes a million. Its key is derived from the secret, so
it shares nothing with the MACs of version 3.

The subscriber's address is signed but not carried: a link gives away nobody's address,
and since verifying needs the address the store holds now, a token stops working when
the address changes or when its subscriber is deleted and the id given to someone else.
The ids are varints and the MAC is cut to 128 bits (plenty for a value an attacker can
only test online, one request at a time), so a token for a million subscribers is 28
characters; one of version 1 grew with the list name and the address, to 100 and more.

A token of version 4 or 3 leaves the list it names; one of version 2, made when a person
had one status for every list, leaves everything, as its issue said it would. The version
is signed with the rest, so one cannot be turned into another. Versions 3 and 2, in the
links of issues sent before, verify as they always did.

Version 1, in the links of issues sent before, still verifies for a year after the store
took on the send ledger that came with version 2 (see ``unsubscribe.legacy_links_until``);
the address it carries must still be the subscriber's::

    version (1 byte, 1) | subscriber id (8 bytes, big-endian) | list name | NUL | address
    | HMAC-SHA256 of everything before it (32 bytes), keyed with context | secret
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import struct
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import NamedTuple

from .errors import ConfigError, TokenError

VERSION = 4
_V3 = 3
"""The same layout with an HMAC-SHA256 MAC: the links of issues sent before version 4."""
_V2 = 2
"""The same layout, from before statuses were kept per list: it leaves every list."""
_CONTEXT = b"newsletter/unsubscribe/v2\x00"
"""Signed first, so a token can never be replayed as another kind of signed value."""
_V4_KEY_CONTEXT = b"newsletter/unsubscribe/v4 key\x00"
"""What the secret signs to make version 4's key: a key of its own for this use alone."""
_V4_PERSON = b"nl/unsubscribe"
_MAC_SIZE = 16
_MAX_ID = 2**63
"""Ids are SQLite integers; a varint of at most nine bytes cannot name one out of range."""
_MAX_VARINT = 9
_INVALID = "this unsubscribe link is not valid; it may be incomplete or altered"
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")

_V1 = 1
_V1_CONTEXT = b"newsletter/unsubscribe/v1\x00"
_V1_HEADER = struct.Struct(">BQ")
_V1_MAC_SIZE = 32
_V1_MIN_SIZE = _V1_HEADER.size + 1 + 1 + _V1_MAC_SIZE

EmailOf = Callable[[int], str | None]
"""The address the store holds for a subscriber id now; None if there is no such subscriber."""


@dataclass(frozen=True)
class TokenPayload:
    """What a genuine token names; ``email`` is the address it was verified against.

    A token of version 2, 3 or 4 names its list by id (``list_name`` is None); one of
    version 1 by name (``list_id`` is None). Versions 3 and 4 mean "leave this list alone".
    """

    subscriber_id: int
    email: str
    list_id: int | None
    list_name: str | None
    version: int = field(default=VERSION, compare=False)

    @property
    def leaves_everything(self) -> bool:
        """Links made before statuses per list promised to stop every issue."""
        return self.version < _V3


def varint(value: int) -> bytes:
    """``value`` as an unsigned LEB128 varint: seven bits a byte, low bits first."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(raw: bytes, start: int) -> tuple[int, int]:
    """The varint at ``start`` and where it ends; ValueError if it is cut short or too long."""
    value = shift = 0
    for end in range(start, min(len(raw), start + _MAX_VARINT)):
        byte = raw[end]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and end > start:
                raise ValueError("a varint with a needless last byte")
            return value, end + 1
        shift += 7
    raise ValueError("not a varint")


def make_token(secret: str, subscriber_id: int, email: str, list_id: int) -> str:
    """The url-safe token for one subscriber of one list."""
    return TokenSigner(secret).make(subscriber_id, email, list_id)


_b2a = binascii.b2a_base64
_BLAKE2B = type(hashlib.blake2b())
_copy, _update, _digest = _BLAKE2B.copy, _BLAKE2B.update, _BLAKE2B.digest
_encode = str.encode
_join = b"".join
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_SLOT = 16
"""Bytes a token's version and varints get in the whole-batch integer of ``_bodies``."""


class _Layout(NamedTuple):
    """The whole-batch shapes for a batch size and a body width."""

    ids: struct.Struct
    """The ids, little-endian, one to a slot."""
    ones: int
    """A 1 at the bottom of every slot: a value times this is that value in every slot."""
    bodies: struct.Struct
    """Cuts the body out of every slot."""
    signed: struct.Struct
    """Cuts each body and its MAC out of the bodies joined with their MACs."""


@functools.lru_cache(maxsize=16)
def _layout(count: int, width: int) -> _Layout:
    return _Layout(
        struct.Struct(f"<{f'Q{_SLOT - 8}x' * count}"),
        int.from_bytes(b"\x01".ljust(_SLOT, b"\x00") * count, "little"),
        struct.Struct(f"{width}s{_SLOT - width}x" * count),
        struct.Struct(f"{width + _MAC_SIZE}s" * count),
    )


class TokenSigner:
    """Makes and verifies tokens with one secret, keyed once.

    Both MACs are keyed once per signer (version 3's HMAC fed its context too); each
    token updates a copy, which saves the hash blocks of keying per token.
    """

    def __init__(self, secret: str) -> None:
        self._secret = _secret_bytes(secret)
        self._keyed_v3 = hmac.new(self._secret, _CONTEXT, digestmod="sha256")
        key = hmac.digest(self._secret, _V4_KEY_CONTEXT, "sha256")
        self._keyed = hashlib.blake2b(key=key, digest_size=_MAC_SIZE, person=_V4_PERSON)

    def make(self, subscriber_id: int, email: str, list_id: int) -> str:
        _check_range(subscriber_id, subscriber_id, list_id)
        body = bytes((VERSION,)) + varint(subscriber_id) + varint(list_id)
        mac = self._mac(body, email.encode("utf-8"))
        return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode("ascii")

    def make_many(
        self,
        subscriber_ids: Sequence[int],
        emails: Sequence[str],
        list_id: int,
        *,
        prefix: str = "",
    ) -> list[str]:
        """Tokens for the subscribers of one list, in order, each after ``prefix``.

        The hot loop of a send, so it runs no Python code of its own per token: the
        varints of a batch are made in a few operations on one integer (``_bodies``),
        every other step is a ``map`` over the batch, and the tokens are base64-encoded,
        made url-safe and cut apart in whole-batch operations (a token's base64 never
        holds a newline, so one separates them). No Python function runs per token.
        """
        count = len(subscriber_ids)
        if count != len(emails):
            raise ValueError("one address per subscriber id is needed")
        if not count:
            return []
        low, high = min(subscriber_ids), max(subscriber_ids)
        _check_range(low, high, list_id)
        bodies, layout = self._bodies(subscriber_ids, low, high, varint(list_id))
        macs = list(map(_copy, repeat(self._keyed, count)))
        signing = map(_join, zip(bodies, map(_encode, emails), strict=True))
        deque(map(_update, macs, signing), maxlen=0)
        digests = map(_digest, macs)
        signed: Iterable[bytes]
        if layout is None:
            signed = map(bytes.__add__, bodies, digests)
        else:
            joined = _join(chain.from_iterable(zip(bodies, digests, strict=True)))
            signed = layout.signed.unpack(joined)
        text = b"".join(map(_b2a, signed)).translate(_URLSAFE, b"=").decode("ascii")
        if prefix:
            text = prefix + text.replace("\n", "\n" + prefix)
        tokens = text.split("\n")
        tokens.pop()  # after the last newline: nothing, or the prefix alone
        return tokens

    def _bodies(
        self, subscriber_ids: Sequence[int], low: int, high: int, tail: bytes
    ) -> tuple[Sequence[bytes], _Layout | None]:
        """``version | varint(id) | tail`` for each id, and the batch's layout if it has one.

        When every id of the batch has a varint of the same size (all but the batch that
        crosses 2**14, 2**21, ...), the varints are made together: the ids go into one
        integer, a 16-byte slot each, and each step of the encoding (a zero bit put in
        after every seven, the continuation bits, the version before and the list after)
        is one operation on that integer, which no slot can carry out of.
        """
        size = len(varint(high))
        width = 1 + size + len(tail)
        if len(varint(low)) != size or size > 8 or width > _SLOT:
            head = bytes((VERSION,))
            return [head + varint(subscriber_id) + tail for subscriber_id in subscriber_ids], None
        layout = _layout(len(subscriber_ids), width)
        whole = int.from_bytes(layout.ids.pack(*subscriber_ids), "little")
        for bit in range(7, 8 * size - 1, 8):
            whole += whole & (((1 << 64) - (1 << bit)) * layout.ones)
        continuation = int.from_bytes(b"\x80" * (size - 1), "little")
        fixed = VERSION | continuation << 8 | int.from_bytes(tail, "little") << 8 * (1 + size)
        whole = (whole << 8) | fixed * layout.ones
        return layout.bodies.unpack(whole.to_bytes(layout.ids.size, "little")), layout

    def _mac(self, body: bytes, email: bytes) -> bytes:
        """The MAC of the token's version (its first byte)."""
        mac = (self._keyed if body[0] == VERSION else self._keyed_v3).copy()
        mac.update(body + email)
        return mac.digest()[:_MAC_SIZE]

    def verify(self, token: str, email_of: EmailOf, *, accept_v1: bool = True) -> TokenPayload:
        """The payload of a genuine token; TokenError, always with one message, otherwise.

        ``accept_v1`` is false once the period for links of version 1 is over."""
        raw = decode_token(token)
        if raw[0] in (VERSION, _V3, _V2):
            return self._verify(raw, email_of)
        if raw[0] == _V1 and accept_v1:
            return self._verify_v1(raw, email_of)
        raise TokenError(_INVALID)

    def _verify(self, raw: bytes, email_of: EmailOf) -> TokenPayload:
        try:
            subscriber_id, end = read_varint(raw, 1)
            list_id, end = read_varint(raw, end)
        except ValueError:
            raise TokenError(_INVALID) from None
        if len(raw) - end != _MAC_SIZE:
            raise TokenError(_INVALID)
        email = email_of(subscriber_id)
        # Checked even for nobody, so an unknown id takes as long as a wrong signature.
        expected = self._mac(raw[:end], (email or "").encode("utf-8"))
        if not hmac.compare_digest(raw[end:], expected) or email is None:
            raise TokenError(_INVALID)
        return TokenPayload(subscriber_id, email, list_id, None, raw[0])

    def _verify_v1(self, raw: bytes, email_of: EmailOf) -> TokenPayload:
        if len(raw) < _V1_MIN_SIZE:
            raise TokenError(_INVALID)
        body, mac = raw[:-_V1_MAC_SIZE], raw[-_V1_MAC_SIZE:]
        if not hmac.compare_digest(mac, hmac.digest(_V1_CONTEXT + self._secret, body, "sha256")):
            raise TokenError(_INVALID)
        _, subscriber_id = _V1_HEADER.unpack_from(body)
        list_part, sep, email_part = body[_V1_HEADER.size :].partition(b"\x00")
        try:
            list_name, email = list_part.decode("utf-8"), email_part.decode("utf-8")
        except UnicodeDecodeError:
            raise TokenError(_INVALID) from None
        if not sep or not email or subscriber_id >= _MAX_ID or email_of(subscriber_id) != email:
            raise TokenError(_INVALID)
        return TokenPayload(subscriber_id, email, None, list_name, _V1)


def verify_token(
    secret: str, token: str, email_of: EmailOf, *, accept_v1: bool = True
) -> TokenPayload:
    """The payload of a genuine token for a subscriber whose address is still the one signed.

    ``email_of`` gives the address the store holds for a subscriber id, or None. Every
    failure (malformed, altered, another secret, an unknown subscriber, a changed address)
    raises TokenError with one and the same message, so the endpoint cannot be used to
    probe who is subscribed.
    """
    return TokenSigner(secret).verify(token, email_of, accept_v1=accept_v1)


def _secret_bytes(secret: str) -> bytes:
    if not secret:
        raise ConfigError(["unsubscribe.secret: the secret is empty; set NEWSLETTER_SECRET"])
    return secret.encode("utf-8")


def _check_range(low: int, high: int, list_id: int) -> None:
    for value, what in ((low, "subscriber"), (high, "subscriber"), (list_id, "list")):
        if not 0 <= value < _MAX_ID:
            raise ValueError(f"{what} id {value} is out of range for a token")


def decode_token(token: str) -> bytes:
    if not isinstance(token, str) or not _ALPHABET.fullmatch(token):
        raise TokenError(_INVALID)
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise TokenError(_INVALID) from None
    if not raw:
        raise TokenError(_INVALID)
    return raw
