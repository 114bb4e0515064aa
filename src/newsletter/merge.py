"""Merge fields: per-recipient placeholders left in an issue rendered once for everyone.

The rendered issue carries ``%%name%%`` or ``%%name|fallback%%``; the sender fills them
per recipient (or hands them to the provider as substitutions) so the expensive render
and CSS inlining run once per issue, never per recipient. The syntax avoids Jinja's
braces and survives MJML, premailer and HTML attribute serialisation unchanged.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping

PLACEHOLDER = re.compile(r"%%([a-z_][a-z0-9_]*)(?:\|([^%<>\"]*))?%%")
NAME = re.compile(r"^[a-z_][a-z0-9_]*$")

ISSUE_FIELDS = frozenset({"view_url"})
"""One value for the whole issue: filled when the issue is rendered."""
BUILT_IN_FIELDS = frozenset({"email", "name", "first_name", "unsubscribe_url", *ISSUE_FIELDS})
"""Filled by the tool (from the subscriber record, the signed token, the issue), so no
attribute may take one of these names: an ``unsubscribe_url`` column from a CSV would
otherwise put the file's link where the real, signed one belongs."""


def shadowed_fields(names: Iterable[str]) -> list[str]:
    """The names among ``names`` that are built-in merge fields, in the order given."""
    return [name for name in names if name in BUILT_IN_FIELDS]


def own_values(attributes: Mapping[str, str]) -> dict[str, str]:
    """A subscriber's attributes without any that a built-in field owns.

    Stores imported before built-in names were refused may still hold such attributes;
    they are dropped wherever values are merged, so the record always wins.
    """
    if BUILT_IN_FIELDS.isdisjoint(attributes):
        return dict(attributes)
    return {key: value for key, value in attributes.items() if key not in BUILT_IN_FIELDS}


def placeholder(name: str, fallback: str | None = None) -> str:
    """The marker a template emits for a merge field."""
    if not NAME.match(name):
        raise ValueError(f"merge field name {name!r}: use lower-case letters, digits and _")
    if fallback is None:
        return f"%%{name}%%"
    if any(ch in fallback for ch in '%<>"'):
        raise ValueError(f'merge field fallback {fallback!r} may not contain % < > or "')
    return f"%%{name}|{fallback}%%"


def placeholders_in(text: str) -> set[str]:
    """Every distinct placeholder string in a body, e.g. {'%%first_name|there%%'}."""
    return {match.group(0) for match in PLACEHOLDER.finditer(text)}


def field_names_in(text: str) -> set[str]:
    return {match.group(1) for match in PLACEHOLDER.finditer(text)}


def value_for(token: str, values: Mapping[str, str]) -> str:
    """The text that replaces one placeholder: the value, else its fallback, else ''."""
    match = PLACEHOLDER.fullmatch(token)
    if match is None:
        raise ValueError(f"not a merge placeholder: {token!r}")
    value = values.get(match.group(1), "")
    return value if value else (match.group(2) or "")


def substitute(text: str, values: Mapping[str, str], *, escape_html: bool) -> str:
    """Fill every placeholder; values are HTML-escaped in the HTML part."""

    def replace(match: re.Match[str]) -> str:
        value = value_for(match.group(0), values)
        return html.escape(value, quote=True) if escape_html else value

    return PLACEHOLDER.sub(replace, text)
