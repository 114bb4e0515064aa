"""``store.url``: a PostgreSQL store named by a URL, checked at load and read when used.

The URL's password is a secret, so it never lives in newsletter.yml: it is either left out
(libpq then reads ``PGPASSWORD`` or ``~/.pgpass``) or written as one ``${VAR}``, read from
the environment by the command that opens the store. Messages show the URL with its
password masked (``mask``).
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote, urlsplit, urlunsplit

from .env_refs import VARIABLE
from .errors import ConfigError

SCHEMES = ("postgresql", "postgres")
_REFERENCE = re.compile(rf"^{VARIABLE}$")
_ANY_REFERENCE = re.compile(VARIABLE)


def is_store_url(location: str) -> bool:
    """Whether a store's location is a PostgreSQL URL rather than a SQLite file."""
    return location.split("://", 1)[0].lower() in SCHEMES and "://" in location


def check_store_url(text: str) -> str:
    """The URL as written, or ValueError saying what is wrong with it (for the config)."""
    example = "postgresql://newsletter:${PGPASSWORD}@db.example.org:5432/newsletter"
    if not is_store_url(text):
        raise ValueError(f"expected a URL such as {example}, got {mask(text)!r}")
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 (parsing it is the check)
    except ValueError:
        raise ValueError(f"the port of {mask(text)!r} is not a number") from None
    if not parts.path.strip("/"):
        raise ValueError(f"{mask(text)!r} names no database; end it with /DATABASE")
    if parts.password is not None and not _REFERENCE.match(parts.password):
        raise ValueError(
            "the password never lives in newsletter.yml: write it as an environment variable "
            f"reference, as in {example}, or leave it out and set PGPASSWORD"
        )
    return text


def resolve_store_url(text: str) -> str:
    """The URL with each ``${VAR}`` replaced by the variable's value (the password's
    percent-encoded, so any character may be in it); ConfigError naming store.url and the
    variable when one is unset."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if not found:
            raise ConfigError(
                [f"store.url: the environment variable {name} is not set; "
                 f"export {name}=... and retry"]
            )  # fmt: skip
        return found

    def expand(piece: str) -> str:
        return _ANY_REFERENCE.sub(value, piece)

    parts = urlsplit(text)
    user, at, host = parts.netloc.rpartition("@")
    name, colon, password = user.partition(":")
    if password:
        password = quote(expand(password), safe="")
    netloc = f"{expand(name)}{colon}{password}{at}{expand(host)}"
    return urlunsplit(
        parts._replace(netloc=netloc, path=expand(parts.path), query=expand(parts.query))
    )


def mask(url: str) -> str:
    """The URL as it may be shown: its password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://..."
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}"))
