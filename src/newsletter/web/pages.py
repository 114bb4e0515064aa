"""The few HTML pages the server writes itself, rendered with autoescaping on.

Every value shown comes from the store, a token or the config and is escaped; the pages
load nothing from elsewhere, so the Content-Security-Policy (``headers.py``) forbids the rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader
from markupsafe import escape
from starlette.responses import HTMLResponse

from ..config import NewsletterInfo
from ..sandbox import sandboxed_environment

PRIVATE_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
"""Unsubscribe URLs carry a personal token: no cache and no index may keep it (and no
Referer, which ``headers.py`` forbids for every page)."""

_ENV = sandboxed_environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # packaged files: compiled once, never checked on disk per answer
)


@dataclass(frozen=True)
class Link:
    href: str
    text: str


_SLOT = "\ue000{}\ue001"
_SLOTS = re.compile("\ue000([0-9]+)\ue001")


class _PreparedPage:
    """A page rendered once with numbered slots where its values go, then filled per answer.

    The one-click answer rendered through the sandbox cost a fifth of the request's CPU,
    for a page whose only changes are a few strings. Each slot stands for one ``{{ value }}``
    of the template, which autoescaping would have escaped: ``fill`` escapes the value
    the same way, so the page is the one Jinja would write (``tests/test_web_pages.py``).
    """

    def __init__(self, html: str) -> None:
        pieces = _SLOTS.split(html)
        self._texts = pieces[0::2]
        self._slots = [int(number) for number in pieces[1::2]]

    def fill(self, values: Sequence[str]) -> str:
        out = [self._texts[0]]
        for slot, text in zip(self._slots, self._texts[1:], strict=True):
            out.append(escape(values[slot]))
            out.append(text)
        return "".join(out)


def mask_address(email: str) -> str:
    """Enough of an address for its owner to recognise it, too little to harvest it."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}" if local else "***"


class Pages:
    """The server's own pages, in the newsletter's name and language."""

    def __init__(self, newsletter: NewsletterInfo) -> None:
        self.newsletter = newsletter
        self._prepared: dict[tuple[int, bool, bool], _PreparedPage] = {}

    def render(
        self,
        heading: str,
        *paragraphs: str,
        status: int = 200,
        button: str | None = None,
        private: bool = True,
        link: Link | None = None,
    ) -> HTMLResponse:
        """``message.html``: a heading, paragraphs, maybe a button and a link."""
        values = [heading, *paragraphs]
        if button:
            values.append(button)
        if link is not None:
            values += (link.href, link.text)
        html = self._message_page(len(paragraphs), bool(button), link is not None).fill(values)
        return HTMLResponse(html, status_code=status, headers=PRIVATE_HEADERS if private else None)

    def _message_page(self, paragraphs: int, button: bool, link: bool) -> _PreparedPage:
        """``message.html`` of this shape, its values in slots in the order ``render``
        lists them."""
        shape = (paragraphs, button, link)
        prepared = self._prepared.get(shape)
        if prepared is None:
            slots = iter(range(2 + paragraphs + 2))
            html = self._html(
                "message.html",
                _SLOT.format(next(slots)),
                paragraphs=[_SLOT.format(next(slots)) for _ in range(paragraphs)],
                button=_SLOT.format(next(slots)) if button else None,
                link=Link(_SLOT.format(next(slots)), _SLOT.format(next(slots))) if link else None,
            )
            prepared = self._prepared[shape] = _PreparedPage(html)
        return prepared

    def page(
        self,
        template: str,
        heading: str,
        *,
        status: int = 200,
        private: bool = True,
        **context: Any,
    ) -> HTMLResponse:
        """One of the server's page templates (``templates/``), in the newsletter's name."""
        html = self._html(template, heading, **context)
        return HTMLResponse(html, status_code=status, headers=PRIVATE_HEADERS if private else None)

    def _html(self, template: str, heading: str, **context: Any) -> str:
        return _ENV.get_template(template).render(
            language=self.newsletter.language,
            name=self.newsletter.name,
            heading=heading,
            **context,
        )

    def not_found(self) -> HTMLResponse:
        return self.render(
            "Page not found",
            "There is nothing at this address. Past issues are listed on the archive's front page.",
            status=404,
            private=False,
        )
