"""Signed unsubscribe tokens: the one-click link carries who to unsubscribe, and a signature.

The token holds everything the unsubscribe endpoint needs, so it can act without a
lookup table of issued links, and a signature so nobody can unsubscribe someone else by
editing the link. One is made for every recipient of every send, so it is a single
HMAC over a few packed bytes.

Layout before base64 (url-safe, no padding)::

    version (1 byte) | subscriber id (8 bytes, big-endian) | list name | NUL | address
    | HMAC-SHA256 of everything before it (32 bytes)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import methodcaller

from .errors import ConfigError, TokenError

VERSION = 1
_HEADER = struct.Struct(">BQ")
_MAC_SIZE = 32
_CONTEXT = b"newsletter/unsubscribe/v1\x00"
"""Mixed into the key so a token can never be replayed as another kind of signed value."""
_MIN_SIZE = _HEADER.size + 1 + 1 + _MAC_SIZE
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")
_INVALID = "this unsubscribe link is not valid; it may be incomplete or altered"


@dataclass(frozen=True)
class TokenPayload:
    subscriber_id: int
    email: str
    list_name: str


def _key(secret: str) -> bytes:
    if not secret:
        raise ConfigError(["unsubscribe.secret: the secret is empty; set NEWSLETTER_SECRET"])
    return _CONTEXT + secret.encode("utf-8")


def make_token(secret: str, subscriber_id: int, email: str, list_name: str) -> str:
    """The url-safe token for one subscriber of one list."""
    return TokenSigner(secret).make(subscriber_id, email, list_name)


_URLSAFE = bytes.maketrans(b"+/", b"-_")
_HASH = type(hashlib.sha256())
_copy, _update, _digest = _HASH.copy, _HASH.update, _HASH.digest
_join = b"".join
_utf8 = methodcaller("encode", "utf-8")
_HAS_NUL = methodcaller("__contains__", "\x00")
_BLOCK = 64
"""SHA-256's block size: HMAC pads the key to it (RFC 2104)."""


class TokenSigner:
    """Makes tokens with one secret; the key is derived once, not once per recipient.

    HMAC's two keyed hash states are computed once too and copied per token: a million
    tokens cost a third of what ``hmac.digest`` (which re-keys each time) costs.
    """

    def __init__(self, secret: str) -> None:
        self._key = _key(secret)
        self._lists: dict[str, bytes] = {}
        key = self._key if len(self._key) <= _BLOCK else hashlib.sha256(self._key).digest()
        key = key.ljust(_BLOCK, b"\x00")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in key))

    def make(self, subscriber_id: int, email: str, list_name: str) -> str:
        return self.make_many((subscriber_id,), (email,), list_name)[0]

    def make_many(
        self,
        subscriber_ids: Sequence[int],
        emails: Sequence[str],
        list_name: str,
        *,
        prefix: str = "",
    ) -> list[str]:
        """Tokens for the subscribers of one list, in order, each after ``prefix``.

        The hot loop of a send, so it has no Python code per token: every step is a
        ``map`` of a C function over the batch, the checks are made once per batch, and
        the batch's tokens are base64-encoded, made url-safe and cut apart in whole-batch
        operations (a token's base64 never holds a newline, so one separates them).
        """
        if len(subscriber_ids) != len(emails):
            raise ValueError("one address per subscriber id is needed")
        if not subscriber_ids:
            return []
        tail = self._lists.get(list_name)
        if tail is None:
            if "\x00" in list_name:
                raise ValueError("list name and address may not contain NUL characters")
            tail = self._lists[list_name] = list_name.encode("utf-8") + b"\x00"
        for subscriber_id in (min(subscriber_ids), max(subscriber_ids)):
            if not 0 <= subscriber_id < 2**64:
                raise ValueError(f"subscriber id {subscriber_id} is out of range for a token")
        if any(map(_HAS_NUL, emails)):
            raise ValueError("list name and address may not contain NUL characters")
        count = len(emails)
        heads = map(_HEADER.pack, repeat(VERSION, count), subscriber_ids)
        bodies = list(map(_join, zip(heads, repeat(tail, count), map(_utf8, emails), strict=True)))
        first = list(map(_copy, repeat(self._inner, count)))
        deque(map(_update, first, bodies), maxlen=0)
        second = list(map(_copy, repeat(self._outer, count)))
        deque(map(_update, second, map(_digest, first)), maxlen=0)
        signed = b"".join(
            map(binascii.b2a_base64, map(bytes.__add__, bodies, map(_digest, second)))
        )
        text = signed.translate(_URLSAFE, b"=").decode("ascii")
        if prefix:
            text = prefix + text.replace("\n", "\n" + prefix)
        tokens = text.split("\n")
        tokens.pop()  # after the last newline: nothing, or the prefix alone
        return tokens


def verify_token(secret: str, token: str) -> TokenPayload:
    """The payload of a genuine token; TokenError for anything else, always with one message.

    The message never depends on what the token names, so the endpoint cannot be used to
    probe whether an address is subscribed.
    """
    key = _key(secret)
    if not isinstance(token, str) or not _ALPHABET.fullmatch(token):
        raise TokenError(_INVALID)
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise TokenError(_INVALID) from None
    if len(raw) < _MIN_SIZE:
        raise TokenError(_INVALID)
    body, mac = raw[:-_MAC_SIZE], raw[-_MAC_SIZE:]
    if not hmac.compare_digest(mac, hmac.digest(key, body, "sha256")):
        raise TokenError(_INVALID)
    version, subscriber_id = _HEADER.unpack_from(body)
    if version != VERSION:
        raise TokenError(_INVALID)
    list_part, sep, email_part = body[_HEADER.size :].partition(b"\x00")
    try:
        list_name, email = list_part.decode("utf-8"), email_part.decode("utf-8")
    except UnicodeDecodeError:
        raise TokenError(_INVALID) from None
    if not sep or not email:
        raise TokenError(_INVALID)
    return TokenPayload(subscriber_id=subscriber_id, email=email, list_name=list_name)
