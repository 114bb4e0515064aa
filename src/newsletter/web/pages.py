"""The few HTML pages the server writes itself, rendered with autoescaping on.

Every value shown comes from the store, a token or the config and is escaped; the pages
load nothing from elsewhere, so the Content-Security-Policy (``headers.py``) forbids the rest.
"""

from __future__ import annotations

from starlette.responses import HTMLResponse

from ..config import NewsletterInfo
from ..sandbox import sandboxed_environment

PRIVATE_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
"""Unsubscribe URLs carry a personal token: no cache and no index may keep it (and no
Referer, which ``headers.py`` forbids for every page)."""

_ENV = sandboxed_environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_PAGE = _ENV.from_string(
    """<!DOCTYPE html>
<html lang="{{ language }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{ heading }} | {{ name }}</title>
<style>
body { font-family: Helvetica, Arial, sans-serif; max-width: 36rem; margin: 3rem auto;
       padding: 0 1rem; color: #1f2933; line-height: 1.5; }
button { font: inherit; padding: .6rem 1.4rem; border: 0; border-radius: 4px;
         background: #1d4f76; color: #fff; cursor: pointer; }
</style>
</head>
<body>
<main>
<h1>{{ heading }}</h1>
{% for paragraph in paragraphs %}
<p>{{ paragraph }}</p>
{% endfor %}
{% if button %}
<form method="post">
<input type="hidden" name="confirm" value="yes">
<button type="submit">{{ button }}</button>
</form>
{% endif %}
</main>
</body>
</html>
"""
)


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
    ) -> HTMLResponse:
        html = _PAGE.render(
            language=self.newsletter.language,
            name=self.newsletter.name,
            heading=heading,
            paragraphs=paragraphs,
            button=button,
        )
        return HTMLResponse(html, status_code=status, headers=PRIVATE_HEADERS if private else None)

    def not_found(self) -> HTMLResponse:
        return self.render(
            "Page not found",
            "There is nothing at this address. Past issues are listed on the archive's front page.",
            status=404,
            private=False,
        )
