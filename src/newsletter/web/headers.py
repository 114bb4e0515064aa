"""Security headers on every answer the web app gives: pages, errors, the webhook, redirects.

One ASGI wrapper outside everything else (Starlette's own error handling included), so no
route, exception handler or framework default can answer without them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Theme


def content_security_policy(theme: Theme) -> str:
    """Nothing may load but what an archived issue needs.

    The e-mail HTML is styled inline (premailer) with a ``<style>`` block for media queries;
    its images (logo, pictures in posts) are absolute https URLs or data: URIs; the only
    form is the unsubscribe confirmation, which posts to this server. A web font configured
    in ``theme.font_url`` adds its stylesheet's origin, and fonts from https hosts.
    """
    styles = "'unsafe-inline'"
    fonts = ""
    if theme.font_url:
        parts = urlsplit(theme.font_url)
        styles += f" {parts.scheme}://{parts.netloc}"
        fonts = "; font-src https:"
    return (
        f"default-src 'none'; style-src {styles}; img-src https: data:{fonts}; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


def security_headers(theme: Theme) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(theme),
        "X-Content-Type-Options": "nosniff",
        # Unsubscribe URLs carry a personal token: no page may pass its URL on.
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    }


class SecurityHeaders:
    """Sets ``headers`` on every HTTP response of ``app``, replacing any of the same name."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = headers
        # Encoded once: every answer carries them, so they cost a list append, not a parse.
        self._raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self._names = frozenset(name for name, _ in self._raw)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = self._names
                kept = [item for item in message.get("headers", ()) if item[0].lower() not in names]
                message["headers"] = kept + self._raw
            await send(message)

        await self.app(scope, receive, send_with_headers)
