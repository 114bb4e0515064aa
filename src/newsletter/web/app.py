"""`newsletter serve`: one small ASGI app for what must answer over HTTP.

Routes::

    GET  /                          the archive's index.html
    GET  /index.html, /feed.xml     the archive's index and Atom feed
    GET  /{issue}/                  the issue's web copy (merge fields at their fallbacks)
    GET  /{issue}/index.html        the same
    GET  /{issue}/email.html        the archived e-mail, its merge fields filled the same way
    GET  /unsubscribe/              how to unsubscribe (the link in an issue is personal)
    GET  /unsubscribe/{token}       asks to confirm; never unsubscribes by itself
    POST /unsubscribe/{token}       unsubscribes (RFC 8058 one-click, or the confirm form)
    GET  /preferences/{token}       the reader's lists and name, with the same token
    POST /preferences/{token}       saves them, or leaves every list
    GET  /subscribe                 the sign-up form for the public lists
    POST /subscribe                 a sign-up (form or JSON): a confirmation e-mail goes out
    GET  /confirm/{token}           asks to confirm a sign-up; never confirms by itself
    POST /confirm/{token}           confirms it
    POST /webhooks/sendgrid         SendGrid's Event Webhook

Only these files of the issues folder are served (``archive_routes``), never the folder as
a whole; ``newsletter preview`` serves the same routes through the same app. Every answer
carries the security headers of ``headers.py``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from ..archive import FEED_FILE, HTML_FILE, INDEX_FILE, WEB_FILE, web_copy
from ..config import LoadedConfig, NewsletterInfo
from ..confirmation import ConfirmationMailer
from ..send import unsubscribe_secret
from ..store import open_store
from .common import BodyTooLarge, too_large
from .csrf import Csrf
from .headers import SecurityHeaders, security_headers
from .pages import Pages
from .preferences import PreferencesEndpoint
from .signup import SignupEndpoint
from .unsubscribe import UnsubscribeEndpoint
from .webhooks import SendgridWebhook, signature_check

SAFE_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""An issue folder name; anything else (``..``, hidden staging folders) is not an issue."""
ARCHIVE_CACHE = {"Cache-Control": "public, max-age=300"}


class Archive:
    """The published issues, read from the issues folder on every request."""

    def __init__(self, directory: Path, newsletter: NewsletterInfo) -> None:
        self.directory = directory
        self.newsletter = newsletter

    async def index(self, request: Request) -> Response:
        return self._file(self.directory / INDEX_FILE, "text/html; charset=utf-8")

    async def feed(self, request: Request) -> Response:
        return self._file(self.directory / FEED_FILE, "application/atom+xml")

    async def issue_folder(self, request: Request) -> Response:
        """``/001-2026-11-24`` as typed by hand; only a real issue is redirected."""
        slug = request.path_params["slug"]
        if self._issue_file(slug, HTML_FILE) is None:
            raise HTTPException(404)
        return RedirectResponse(f"{slug}/", status_code=301)

    async def web_copy(self, request: Request) -> Response:
        """The web copy the build wrote; issues archived before it existed get one made."""
        slug = request.path_params["slug"]
        path = self._issue_file(slug, WEB_FILE)
        if path is not None:
            return FileResponse(path, media_type="text/html; charset=utf-8", headers=ARCHIVE_CACHE)
        return await self.email_html(request)

    async def email_html(self, request: Request) -> Response:
        """The e-mail as sent, minus the merge fields: they would show as %%first_name%%."""
        path = self._issue_file(request.path_params["slug"], HTML_FILE)
        if path is None:
            raise HTTPException(404)
        text = await run_in_threadpool(path.read_text, encoding="utf-8")
        return HTMLResponse(web_copy(text, self.newsletter), headers=ARCHIVE_CACHE)

    def _issue_file(self, slug: str, name: str) -> Path | None:
        path = self.directory / slug / name
        return path if SAFE_SLUG.match(slug) and path.is_file() else None

    def _file(self, path: Path, media_type: str) -> Response:
        if not path.is_file():
            raise HTTPException(404)
        return FileResponse(path, media_type=media_type, headers=ARCHIVE_CACHE)


def archive_routes(archive: Archive) -> list[Route]:
    """What may be served from the issues folder, and nothing else.

    The archive writes each issue's ``email.html``, ``email.txt``, ``issue.json`` and web
    copy, and the folder's ``index.html`` and ``feed.xml``; only the pages a reader opens
    are published. Anything else that lands there (a report, a JSON file with addresses, a
    half-written hidden folder) is not found, in ``serve`` and ``preview`` alike.
    """
    return [
        Route("/", archive.index, methods=["GET"]),
        Route("/" + INDEX_FILE, archive.index, methods=["GET"]),
        Route("/" + FEED_FILE, archive.feed, methods=["GET"]),
        Route("/{slug}", archive.issue_folder, methods=["GET"]),
        Route("/{slug}/", archive.web_copy, methods=["GET"]),
        Route("/{slug}/" + WEB_FILE, archive.web_copy, methods=["GET"]),
        Route("/{slug}/" + HTML_FILE, archive.email_html, methods=["GET"]),
    ]


def create_app(loaded: LoadedConfig) -> Starlette:
    """The app ``newsletter serve`` runs for one newsletter.yml.

    The store is opened once here, so a broken or unwritable store (and an unusable webhook
    key) stops the server at start rather than on a reader's click.
    """
    with open_store(loaded) as store:
        secret = unsubscribe_secret(loaded, store)
    pages = Pages(loaded.settings.newsletter)
    unsubscribe = UnsubscribeEndpoint(loaded, secret, pages)
    csrf = Csrf(secret)
    preferences = PreferencesEndpoint(loaded, secret, pages, csrf)
    mailer = ConfirmationMailer(loaded)
    signup = SignupEndpoint(loaded, secret, pages, csrf, mailer)
    webhook = SendgridWebhook(loaded, signature_check(loaded))
    routes = [
        Route("/unsubscribe", unsubscribe.explain, methods=["GET"]),
        Route("/unsubscribe/", unsubscribe.explain, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe.confirm, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe.apply, methods=["POST"]),
        Route("/preferences/{token}", preferences.show, methods=["GET"]),
        Route("/preferences/{token}", preferences.change, methods=["POST"]),
        Route("/subscribe", signup.page, methods=["GET"]),
        Route("/subscribe", signup.subscribe, methods=["POST"]),
        Route("/confirm/{token}", signup.confirm_page, methods=["GET"]),
        Route("/confirm/{token}", signup.confirm, methods=["POST"]),
        Route("/webhooks/sendgrid", webhook.receive, methods=["POST"]),
    ]
    return _app(loaded, pages, routes, lifespan=_closing(mailer))


Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def _closing(mailer: ConfirmationMailer) -> Lifespan:
    """When `serve` stops, confirmations still queued go out first."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(mailer.close)

    return lifespan


def create_preview_app(loaded: LoadedConfig) -> Starlette:
    """The archive alone, as ``serve`` publishes it, for ``newsletter preview``: no store is
    opened or created just to look at an issue."""
    return _app(loaded, Pages(loaded.settings.newsletter), [])


class _HeadedStarlette(Starlette):
    """Starlette whose every answer, its own error pages included, carries ``headers``."""

    def __init__(self, headers: dict[str, str], **kwargs: Any) -> None:
        self.security_headers = headers
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        # Outside ServerErrorMiddleware, which answers a crash past any user middleware.
        return SecurityHeaders(super().build_middleware_stack(), self.security_headers)


def _app(
    loaded: LoadedConfig, pages: Pages, routes: list[Route], lifespan: Lifespan | None = None
) -> Starlette:
    archive = Archive(loaded.issues_dir, loaded.settings.newsletter)

    async def not_found(request: Request, exc: Exception) -> HTMLResponse:
        return pages.not_found()

    app = _HeadedStarlette(
        security_headers(loaded.settings.template.theme),
        routes=routes + archive_routes(archive),
        exception_handlers={404: not_found, BodyTooLarge: too_large},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # or every unknown path would redirect before its 404
    return app


class RedactTokens(logging.Filter):
    """Keeps unsubscribe tokens out of the access log: each lets its holder unsubscribe
    someone (or change their lists), and those of older issues carry the address."""

    _TOKEN = re.compile(r"(/(?:unsubscribe|preferences|confirm)/)[^/?\s]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._TOKEN.sub(r"\1<token>", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True
