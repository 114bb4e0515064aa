"""The few HTML pages the server writes itself, rendered with autoescaping on.

Every value shown comes from the store, a token or the config and is escaped; the pages
load nothing from elsewhere, so the Content-Security-Policy (``headers.py``) forbids the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader
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


def mask_address(email: str) -> str:
    """Enough of an address for its owner to recognise it, too little to harvest it."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}" if local else "***"


class Pages:
    """The server's own pages, in the newsletter's name and language."""

    def __init__(self, newsletter: NewsletterInfo) -> None:
        self.newsletter = newsletter

    def render(
        self,
        heading: str,
        *paragraphs: str,
        status: int = 200,
        button: str | None = None,
        private: bool = True,
        link: Link | None = None,
    ) -> HTMLResponse:
        return self.page(
            "message.html",
            heading,
            status=status,
            private=private,
            paragraphs=paragraphs,
            button=button,
            link=link,
        )

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
        html = _ENV.get_template(template).render(
            language=self.newsletter.language,
            name=self.newsletter.name,
            heading=heading,
            **context,
        )
        return HTMLResponse(html, status_code=status, headers=PRIVATE_HEADERS if private else None)

    def not_found(self) -> HTMLResponse:
        return self.render(
            "Page not found",
            "There is nothing at this address. Past issues are listed on the archive's front page.",
            status=404,
            private=False,
        )
