"""One-click unsubscribe (RFC 8058): a GET asks, a POST acts.

Mail scanners and link previewers follow every GET in a message, so a GET only shows a
confirmation form; the POST that mail clients send for ``List-Unsubscribe-Post`` (or the
form) unsubscribes at once. Every failure answers with one fixed page, whether the token
is forged, truncated or names someone who is not (or no longer) in the store or whose
address has changed, so the endpoint cannot be used to find out who is subscribed.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..config import LoadedConfig
from ..errors import TokenError
from ..send_models import SubscriberStatus
from ..store import Store
from ..unsubscribe import TokenHolder, token_holder
from .common import escalate, in_store_thread, read_body, store_for_request
from .pages import Link, Pages, mask_address
from .writes import committed

FORM_LIMIT = 8 * 1024
"""A one-click body is 26 bytes; anything much bigger is not a form we sent."""
ONE_CLICK = "One-Click"
_log = logging.getLogger("newsletter.web")


def is_one_click(body: bytes) -> bool:
    """Whether a mail client sent RFC 8058's ``List-Unsubscribe=One-Click``.

    The RFC allows it urlencoded or as multipart/form-data; the source is only recorded,
    so a loose look at a multipart body is enough.
    """
    if parse_qs(body.decode("latin-1")).get("List-Unsubscribe") == [ONE_CLICK]:
        return True
    return b'name="List-Unsubscribe"' in body and ONE_CLICK.encode() in body


class UnsubscribeEndpoint:
    """``GET`` and ``POST /unsubscribe/{token}``, plus the bare ``/unsubscribe/`` page."""

    def __init__(self, loaded: LoadedConfig, secret: str, pages: Pages) -> None:
        self.loaded = loaded
        self.secret = secret
        self.pages = pages

    async def explain(self, request: Request) -> HTMLResponse:
        return self.pages.render(
            "Unsubscribing",
            "To unsubscribe, use the unsubscribe link at the bottom of an issue you received "
            "by e-mail: it is personal to you, so it works without a password.",
        )

    async def confirm(self, request: Request) -> HTMLResponse:
        holder = await in_store_thread(self._holder, request.path_params["token"])
        if holder is None:
            return self._invalid()
        if not holder.receives:
            return self._done(holder, request.path_params["token"])
        stops = (
            "every issue to this address"
            if holder.list_left is None
            else f"the issues of “{holder.list_name}” to this address"
        )
        return self.pages.render(
            f"Unsubscribe from {self.pages.newsletter.name}?",
            f"{mask_address(holder.subscriber.email)} receives {self.pages.newsletter.name} "
            f"through the list “{holder.list_name}”. Unsubscribing stops {stops}.",
            button="Unsubscribe",
            link=self._preferences_link(request.path_params["token"]),
        )

    async def apply(self, request: Request) -> Response:
        body = await read_body(request, FORM_LIMIT)
        source = "one-click" if is_one_click(body) else "web"
        token = request.path_params["token"]
        holder = await committed(self.loaded, self._unsubscribe, token, source)
        return self._invalid() if holder is None else self._done(holder, token)

    def _holder(self, token: str) -> TokenHolder | None:
        with store_for_request(self.loaded) as store:
            return self._lookup(store, token)

    def _lookup(self, store: Store, token: str) -> TokenHolder | None:
        try:
            return token_holder(store, self.secret, token)
        except TokenError:
            return None

    def _unsubscribe(self, token: str, source: str) -> TokenHolder | None:
        with store_for_request(self.loaded, writing=True) as store:
            holder = self._lookup(store, token)
            if holder is None:
                return None
            subscriber = holder.subscriber
            detail = holder.detail
            if holder.list_left is not None and holder.receives:
                store.unsubscribe(subscriber.id, source, detail, list_name=holder.list_left)
            elif holder.list_left is not None or not escalate(
                store, subscriber, SubscriberStatus.UNSUBSCRIBED, source, detail
            ):
                _log.info(
                    "unsubscribe request (%s) for subscriber %d kept status %s",
                    source,
                    subscriber.id,
                    subscriber.status,
                )
            return holder

    @staticmethod
    def _preferences_link(token: str) -> Link:
        """The reader's preferences page: relative, so it stays on this server."""
        return Link(f"../preferences/{token}", "Choose which lists you receive")

    def _done(self, holder: TokenHolder, token: str) -> HTMLResponse:
        others = (
            ()
            if holder.list_left is None
            else ("Other lists of the newsletter you are on still send to you.",)
        )
        return self.pages.render(
            "You are unsubscribed",
            f"{mask_address(holder.subscriber.email)} will receive no more issues of "
            f"{self.pages.newsletter.name} (list “{holder.list_name}”).",
            *others,
            "If this was a mistake, reply to any issue and we will add you back.",
            link=self._preferences_link(token),
        )

    def _invalid(self) -> HTMLResponse:
        return self.pages.render(
            "This unsubscribe link is not valid",
            "It may be incomplete or altered, for example split across two lines by your "
            "mail program.",
            "Use the unsubscribe link in the most recent issue you received, or reply to it "
            "and ask to be removed.",
            status=400,
        )
