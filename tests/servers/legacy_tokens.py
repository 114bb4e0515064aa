"""Unsubscribe tokens of versions 1, 2 and 3, made the way issues sent before made them.

Written out here from the old layout rather than taken from the library, so the tests
check that links already in people's inboxes keep working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

from newsletter.tokens import varint


def make_v1_token(secret: str, subscriber_id: int, email: str, list_name: str) -> str:
    """version 1 | id (8 bytes, big-endian) | list name | NUL | address | HMAC-SHA256."""
    body = struct.pack(">BQ", 1, subscriber_id) + f"{list_name}\x00{email}".encode()
    key = b"newsletter/unsubscribe/v1\x00" + secret.encode()
    mac = hmac.new(key, body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode("ascii")


def make_v2_token(secret: str, subscriber_id: int, email: str, list_id: int) -> str:
    """version 2 | id | list id (LEB128 varints) | HMAC-SHA256 cut to 16 bytes; issues
    sent before statuses per list carried these, and they leave every list."""
    body = bytes((2,)) + varint(subscriber_id) + varint(list_id)
    key = secret.encode()
    mac = hmac.new(key, b"newsletter/unsubscribe/v2\x00" + body + email.encode(), "sha256")
    return base64.urlsafe_b64encode(body + mac.digest()[:16]).rstrip(b"=").decode("ascii")


def make_v3_token(secret: str, subscriber_id: int, email: str, list_id: int) -> str:
    """version 3 | id | list id (LEB128 varints) | HMAC-SHA256 cut to 16 bytes; issues
    sent before version 4 carried these, and they leave the list they name."""
    body = bytes((3,)) + varint(subscriber_id) + varint(list_id)
    key = secret.encode()
    mac = hmac.new(key, b"newsletter/unsubscribe/v2\x00" + body + email.encode(), "sha256")
    return base64.urlsafe_b64encode(body + mac.digest()[:16]).rstrip(b"=").decode("ascii")
