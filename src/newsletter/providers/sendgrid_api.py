"""One HTTP client for everything we ask SendGrid: Mail Send and the suppression lists.

httpx, because it keeps connections alive (a TLS handshake per request would cost more
than the request), reads proxies from the environment, has separate connect, write and
read timeouts, and can tell us (through its ``trace`` extension) whether a request body
was written in full. That last point is what an exactly-once send needs: a request that
failed before its body was written was certainly not taken; one that failed after it
may have been, and must not be retried without being asked.

The official ``sendgrid`` client opens a new connection for every request and formats
every body into a debug string; on a million recipients that is the slowest part of a
send, and its errors do not say whether the body went out.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from .. import __version__
from ..errors import (
    AuthenticationError,
    DeliveryUnknownError,
    ProviderError,
    TransientProviderError,
)

MAIL_SEND_PATH = "/v3/mail/send"
_BODY_WRITTEN = "http11.send_request_body.complete"


class SendgridApi:
    """A kept-alive connection (pool) to one SendGrid host with one API key."""

    def __init__(self, host: str, api_key: str, *, timeout: float) -> None:
        self.host = host.rstrip("/")
        self._client = httpx.Client(
            base_url=self.host,
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": f"newsletter/{__version__}",
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def post_json(
        self, path: str, body: bytes | Sequence[bytes], *, permission: str
    ) -> httpx.Response:
        """POST a JSON body (or its parts, written one after another); the 2xx answer, or
        our error for anything else.

        Raises ``DeliveryUnknownError`` when the body was written in full and no answer
        came (a read timeout, a connection reset or closed before the answer), and
        ``TransientProviderError`` when it failed before that.
        """
        written = False

        def trace(event: str, info: Mapping[str, Any]) -> None:
            nonlocal written
            if event == _BODY_WRITTEN:
                written = True

        where = f"sendgrid {self.host}{path}"
        parts = (body,) if isinstance(body, bytes) else tuple(body)
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(sum(map(len, parts))),
        }
        try:
            response = self._client.post(
                path, content=iter(parts), headers=headers, extensions={"trace": trace}
            )
        except httpx.HTTPError as exc:
            if written:
                raise DeliveryUnknownError(
                    f"{where}: the request was sent and no answer came "
                    f"({type(exc).__name__}: {exc or 'no details'}); SendGrid may have taken "
                    "it, so it is not sent again unless asked"
                ) from exc
            raise TransientProviderError(
                f"{where}: the request could not be sent "
                f"({type(exc).__name__}: {exc or 'no details'}); retry later"
            ) from exc
        return _checked(where, response, permission)

    def get_json(self, path: str, params: Mapping[str, Any] | None, *, permission: str) -> Any:
        """GET and parse a JSON answer; retrying a read is always safe."""
        where = f"sendgrid {self.host}{path}"
        try:
            response = self._client.get(path, params=dict(params or {}))
        except httpx.HTTPError as exc:
            raise TransientProviderError(
                f"{where}: no answer ({type(exc).__name__}: {exc or 'no details'}); retry later"
            ) from exc
        _checked(where, response, permission)
        try:
            return orjson.loads(response.content or b"null")
        except orjson.JSONDecodeError as exc:
            raise ProviderError(f"{where}: the answer is not JSON ({exc})") from exc


def _checked(where: str, response: httpx.Response, permission: str) -> httpx.Response:
    status = response.status_code
    if status < 300:
        return response
    body = response.text
    text = error_text(body)
    if status == 429:
        raise TransientProviderError(
            f"{where}: rate limit reached (429): {text}",
            retry_after=_retry_after(response.headers),
            status=status,
            body=body,
        )
    if status >= 500:
        raise TransientProviderError(
            f"{where}: server error ({status}): {text}", status=status, body=body
        )
    if status in (401, 403):
        raise AuthenticationError(
            f"{where}: the API key was refused ({status}): {text}",
            status=status,
            body=body,
            hint="check the key in the environment variable named by provider.sendgrid.api_key "
            f"and that it has the {permission} permission",
        )
    raise ProviderError(
        f"{where}: the request was refused ({status}): {text}", status=status, body=body
    )


def error_list(body: str) -> list[dict[str, Any]]:
    """SendGrid's ``errors`` array, or nothing when the body is not in its format."""
    try:
        errors = orjson.loads(body).get("errors") or []
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return []
    return (
        [error for error in errors if isinstance(error, dict)] if isinstance(errors, list) else []
    )


def error_text(body: str) -> str:
    """SendGrid's own words: every ``errors[].message``, with the field it concerns."""
    messages = [
        f"{error.get('message')}" + (f" (field {error['field']})" if error.get("field") else "")
        for error in error_list(body)
    ]
    return "; ".join(messages) if messages else (body.strip()[:500] or "no details given")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        reset = float(headers.get("X-RateLimit-Reset", ""))
    except (TypeError, ValueError):
        return None
    return max(0.0, reset - time.time())
