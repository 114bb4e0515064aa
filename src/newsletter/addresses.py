"""What a recipient's address and name must be for every transport to carry them."""

from __future__ import annotations

import re
from collections.abc import Iterable

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')
MAX_NAME = 256


def refusals(rows: Iterable[tuple[int, str, str]]) -> dict[int, str]:
    """The recipients (id, address, name) no transport can carry, each with why."""
    rows = list(rows)
    joined = "".join(email + name for _, email, name in rows)
    if joined.isascii() and _CONTROL.search(joined) is None:
        return {}
    refused: dict[int, str] = {}
    for sid, email, name in rows:
        if not email.isascii():
            refused[sid] = (
                f"{email}: the address has non-ASCII characters, which need SMTPUTF8; "
                "newsletter sends only to ASCII addresses"
            )
        elif _CONTROL.search(email):
            refused[sid] = f"{email!r}: the address contains a control character"
        elif _CONTROL.search(name):
            refused[sid] = f"{email}: the name contains a line break or control character"
    return refused


def sendgrid_name(name: str) -> str | None:
    """The name as SendGrid's ``to.name`` can take it: quoted, or None to leave it out."""
    if not name or _CONTROL.search(name) or len(name) > MAX_NAME:
        return None
    if _SPECIALS.search(name) is None:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
