"""Cross-site request forgery: every form the server writes carries a signed double submit.

The browser gets a random nonce in a cookie (``SameSite=Lax``, ``HttpOnly``) and the
form a hidden field that signs that nonce together with the form's own path and the hour
it was written. A forged post from another site carries no cookie (SameSite), cannot read
the field, and cannot make one without the secret; a field copied from one form does not
fit another path, and one older than ``LIFETIME`` is refused, so a page left open for a
day asks to be reloaded rather than acting on an old view. No server-side state: any
number of processes can check a field another one wrote.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "newsletter_csrf"
FIELD = "csrf"
LIFETIME = 4 * 3600
"""Seconds a form stays good after it was written."""
_CONTEXT = b"newsletter/csrf/v1\x00"


class Csrf:
    """Writes and checks the hidden field; keyed once with the server's secret."""

    def __init__(self, secret: str) -> None:
        self._keyed = hmac.new(secret.encode("utf-8"), _CONTEXT, digestmod="sha256")

    def nonce(self, request: Request) -> tuple[str, bool]:
        """The browser's nonce, and whether it is new (then the answer must set it)."""
        found = request.cookies.get(COOKIE, "")
        if 16 <= len(found) <= 64 and found.isascii() and found.replace("-", "").isalnum():
            return found, False
        return secrets.token_hex(16), True

    def field(self, nonce: str, path: str, *, now: float | None = None) -> str:
        """The hidden field's value for a form posting to ``path``."""
        issued = str(int(now if now is not None else time.time()))
        return f"{issued}.{self._mac(nonce, path, issued)}"

    def valid(self, request: Request, form: Mapping[str, str], path: str) -> bool:
        """Whether ``form`` came from a page this server wrote for this browser and path."""
        nonce = request.cookies.get(COOKIE, "")
        issued, _, mac = str(form.get(FIELD, "")).partition(".")
        if not nonce or not issued.isdigit() or not mac:
            return False
        if not 0 <= time.time() - int(issued) <= LIFETIME:
            return False
        return hmac.compare_digest(mac, self._mac(nonce, path, issued))

    def remember(self, request: Request, response: Response, nonce: str, is_new: bool) -> Response:
        """Set the nonce cookie on ``response`` when the browser had none; over HTTPS (as
        the proxy in front reports it) only for HTTPS."""
        if is_new:
            response.set_cookie(
                COOKIE,
                nonce,
                max_age=LIFETIME * 6,
                path="/",
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https",
            )
        return response

    def _mac(self, nonce: str, path: str, issued: str) -> str:
        mac = self._keyed.copy()
        mac.update(f"{nonce}\x00{path}\x00{issued}".encode())
        return mac.hexdigest()[:32]
