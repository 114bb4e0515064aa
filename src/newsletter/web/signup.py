"""Sign-up with double opt-in: the page, ``POST /subscribe`` (form or JSON) and the
confirmation link.

Every accepted request gets the same answer, whether the address is new, pending,
already subscribed or bounced, and whether or not an e-mail goes out, so the form cannot
tell anyone who is on a list; the e-mail itself is sent after the answer. What is refused
is refused with a reason the reader can act on: an address no one can send to, a throwaway
one, a list that is not public, too many requests (429 with Retry-After).

A form post must carry the page's CSRF field. One that does not (the embeddable snippet
posts from another site, which cannot have it) is answered with the sign-up page, filled
in, for the reader to press Subscribe once more here: nothing is stored before that. The
JSON endpoint takes no CSRF field: a browser cannot send ``application/json`` to another
site without a CORS preflight, which this server never grants. A hidden field that people
leave empty and form-filling robots do not (the honeypot) gets the usual answer and
nothing else. Confirming takes a POST from the page the link opens, since mail scanners
open every link of a message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..config import LoadedConfig
from ..confirmation import Confirmation, ConfirmationMailer, shown_lists
from ..errors import TokenError
from ..signup import (
    IP_SALT,
    ConfirmLinkExpired,
    ConfirmOutcome,
    ConfirmSigner,
    SignupRefused,
    SignupRequest,
    checked_signup,
    confirm_signup,
    ip_hash,
    request_signup,
)
from ..tokens import make_token
from .common import in_store_thread, read_body, store_for_request
from .csrf import Csrf
from .pages import Link, Pages
from .preferences import first, public_lists, read_form
from .ratelimit import RateLimiter
from .writes import committed

FORM_LIMIT = 8 * 1024
HONEYPOT = "website"
ACCEPTED = (
    "Check your inbox: if the address can receive our e-mail, a message with a link "
    "to confirm is on its way. Nothing else is sent until you confirm."
)
ACCEPTED_JSON = JSONResponse({"status": "check-your-inbox", "message": ACCEPTED}).body
"""The one answer to every accepted JSON sign-up, encoded once."""


@dataclass(frozen=True)
class SignupForm:
    email: str
    name: str
    lists: list[str]
    honeypot: str
    csrf: str
    source: str = "form"
    """How the request came: form (this site's page), embed (a snippet elsewhere), json."""


def form_fields(form: Mapping[str, list[str]]) -> SignupForm:
    return SignupForm(
        email=first(dict(form), "email"),
        name=first(dict(form), "name"),
        lists=list(form.get("list", [])),
        honeypot=first(dict(form), HONEYPOT),
        csrf=first(dict(form), "csrf"),
        source="embed" if first(dict(form), "source") == "embed" else "form",
    )


def json_fields(body: bytes) -> SignupForm:
    """The JSON body ``{"email": ..., "name": ..., "lists": [...]}``; SignupRefused if not."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SignupRefused("The body is not JSON.") from None
    if not isinstance(data, dict):
        raise SignupRefused('Send an object: {"email": "...", "lists": ["..."]}.')
    lists = data.get("lists", data.get("list", []))
    lists = [lists] if isinstance(lists, str) else lists
    fields = (data.get("email", ""), data.get("name", ""), data.get(HONEYPOT, ""))
    if not isinstance(lists, list) or not all(isinstance(v, str) for v in (*lists, *fields)):
        raise SignupRefused('"email", "name" and each of "lists" must be text.')
    return SignupForm(fields[0], fields[1], lists, fields[2], "", "json")


def _key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\x00{value}".encode()).hexdigest()


class SignupEndpoint:
    """``GET``/``POST /subscribe`` and ``GET``/``POST /confirm/{token}``."""

    def __init__(
        self,
        loaded: LoadedConfig,
        secret: str,
        pages: Pages,
        csrf: Csrf,
        mailer: ConfirmationMailer,
    ) -> None:
        self.loaded = loaded
        self.secret = secret
        self.pages = pages
        self.csrf = csrf
        self.mailer = mailer
        self.signer = ConfirmSigner(secret)
        with store_for_request(loaded) as store:
            self.salt = store.get_secret(IP_SALT)
        signup = loaded.settings.signup
        # Fixed for the server's life: worked out here, not on every sign-up. The base is
        # where this server is reached from outside, the unsubscribe URL's origin.
        self.public = list(public_lists(loaded))
        self.base = loaded.unsubscribe_url.rstrip("/").removesuffix("/unsubscribe")
        self.per_ip = RateLimiter(signup.per_ip_per_hour)
        self.per_address = RateLimiter(signup.per_address_per_hour)
        self.max_age_s = signup.confirm_within_hours * 3600.0

    # --- the sign-up page and its post -----------------------------------------------------

    async def page(self, request: Request) -> Response:
        chosen = request.query_params.getlist("list")
        return self._form(request, SignupForm("", "", chosen, "", ""))

    async def subscribe(self, request: Request) -> Response:
        as_json = request.headers.get("content-type", "").startswith("application/json")
        body = await read_body(request, FORM_LIMIT)
        try:
            fields = json_fields(body) if as_json else form_fields(read_form(body))
        except SignupRefused as exc:
            return self._refused(request, None, exc.message, 400, as_json)
        if not as_json and not self.csrf.valid(request, {"csrf": fields.csrf}, "/subscribe"):
            # The embeddable snippet lands here: the reader confirms on this site's own page.
            return self._form(
                request,
                SignupForm(fields.email, fields.name, fields.lists, "", "", "embed"),
                note="To finish, check your details and press Subscribe.",
                status=403,
            )
        client = request.client.host if request.client else ""
        wait = self.per_ip.allow(_key("ip", client))
        if wait:
            return self._too_many(request, fields, wait, as_json)
        if fields.honeypot:
            return self._accepted(request, fields, as_json)
        blocked = self.loaded.settings.signup.blocked_domains
        try:
            email, name, lists = checked_signup(
                fields.email, fields.name, fields.lists, self.public, blocked
            )
        except SignupRefused as exc:
            return self._refused(request, fields, exc.message, 400, as_json)
        wait = self.per_address.allow(_key("address", email.lower()))
        if wait:
            return self._too_many(request, fields, wait, as_json)
        made = await committed(
            self.loaded, self._request, email, name, lists, fields.source, client
        )
        if made is not None:
            # Queued, and sent after the answer: every answer takes as long, known or not.
            url = f"{self.base}/confirm/{self.signer.make(made)}"
            self.mailer.send(
                Confirmation(made.subscriber_id, made.email, made.name, tuple(made.lists), url)
            )
        return self._accepted(request, fields, as_json)

    def _request(
        self, email: str, name: str, lists: list[str], source: str, client: str
    ) -> SignupRequest | None:
        hashed = ip_hash(self.salt, client)
        with store_for_request(self.loaded, writing=True) as store:
            return request_signup(store, email, name, lists, source, hashed)

    # --- the confirmation link -------------------------------------------------------------

    async def confirm_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        problem = await in_store_thread(self._check_link, token)
        if problem is not None:
            return problem
        nonce, is_new = self.csrf.nonce(request)
        response = self.pages.page(
            "message.html",
            f"Confirm your subscription to {self.pages.newsletter.name}",
            paragraphs=["Press the button to start receiving the issues you asked for."],
            button="Yes, subscribe me",
            csrf=self.csrf.field(nonce, f"/confirm/{token}"),
        )
        return self.csrf.remember(request, response, nonce, is_new)

    async def confirm(self, request: Request) -> Response:
        token = request.path_params["token"]
        body = await read_body(request, FORM_LIMIT)
        csrf = first(read_form(body), "csrf")
        if not self.csrf.valid(request, {"csrf": csrf}, f"/confirm/{token}"):
            return self.pages.render(
                "This form has expired",
                "Open the link from the confirmation e-mail again and press the button there; "
                "nothing was changed.",
                status=403,
            )
        return await in_store_thread(self._confirm, token)

    def _check_link(self, token: str) -> Response | None:
        with store_for_request(self.loaded) as store:
            try:
                self.signer.read(store, token, self.max_age_s)
            except TokenError as exc:
                return self._bad_link(exc)
        return None

    def _confirm(self, token: str) -> Response:
        with store_for_request(self.loaded, writing=True) as store:
            try:
                done = confirm_signup(store, self.signer, token, self.max_age_s)
            except TokenError as exc:
                return self._bad_link(exc)
            titles = ", ".join(f"“{item.title}”" for item in shown_lists(self.loaded, done.lists))
            if done.outcome is ConfirmOutcome.GONE:
                return self.pages.render(
                    "This confirmation is no longer valid",
                    f"The address left {titles} after asking to join, so nothing was changed.",
                    "To receive the issues after all, sign up again.",
                    link=Link("/subscribe", "Sign up"),
                    status=410,
                )
            subscriber = store.get(done.email)
            assert subscriber is not None
            list_id = store.list_id(done.lists[0])
        preferences = f"/preferences/{make_token(self.secret, subscriber.id, done.email, list_id)}"
        heading = (
            "You are subscribed"
            if done.outcome is ConfirmOutcome.CONFIRMED
            else "You had already confirmed"
        )
        return self.pages.render(
            heading,
            f"Thank you: {self.pages.newsletter.name} will come to you from {titles}.",
            link=Link(preferences, "Choose which lists you receive"),
        )

    def _bad_link(self, exc: TokenError) -> Response:
        if isinstance(exc, ConfirmLinkExpired):
            return self.pages.render(
                "This confirmation link has expired",
                f"It worked for {self.loaded.settings.signup.confirm_within_hours} hours. "
                "Sign up again to get a new one.",
                link=Link("/subscribe", "Sign up"),
                status=410,
            )
        return self.pages.render(
            "This confirmation link is not valid",
            "It may be incomplete or altered, for example split across two lines by your "
            "mail program. Copy the whole link from the e-mail, or sign up again.",
            link=Link("/subscribe", "Sign up"),
            status=400,
        )

    # --- answers ---------------------------------------------------------------------------

    def _form(
        self,
        request: Request,
        fields: SignupForm,
        *,
        note: str = "",
        error: str = "",
        status: int = 200,
    ) -> Response:
        nonce, is_new = self.csrf.nonce(request)
        public = self.public
        if not public:
            return self.pages.render(
                "Sign-up is closed",
                f"{self.pages.newsletter.name} has no list open for sign-up.",
                status=404,
            )
        chosen = set(fields.lists) or ({public[0]} if len(public) == 1 else set())
        lists = [
            _Choice(item.name, item.title, item.description, item.name in chosen)
            for item in shown_lists(self.loaded, public)
        ]
        response = self.pages.page(
            "signup.html",
            f"Subscribe to {self.pages.newsletter.name}",
            status=status,
            intro=note or self.pages.newsletter.description,
            error=error,
            email=fields.email,
            name_value=fields.name,
            lists=lists,
            action="/subscribe",
            csrf=self.csrf.field(nonce, "/subscribe"),
            source=fields.source,
        )
        return self.csrf.remember(request, response, nonce, is_new)

    def _accepted(self, request: Request, fields: SignupForm, as_json: bool) -> Response:
        if as_json:
            return Response(ACCEPTED_JSON, status_code=202, media_type="application/json")
        return self.pages.render("Almost done", ACCEPTED)

    def _refused(
        self, request: Request, fields: SignupForm | None, message: str, status: int, as_json: bool
    ) -> Response:
        if as_json:
            return JSONResponse({"error": message}, status_code=status)
        empty = SignupForm("", "", [], "", "")
        return self._form(request, fields or empty, error=message, status=status)

    def _too_many(
        self, request: Request, fields: SignupForm, wait: float, as_json: bool
    ) -> Response:
        minutes = max(1, round(wait / 60))
        message = f"Too many sign-up requests; try again in {minutes} minutes."
        response = self._refused(request, fields, message, 429, as_json)
        response.headers["Retry-After"] = str(max(1, int(wait)))
        return response


@dataclass(frozen=True)
class _Choice:
    name: str
    title: str
    description: str
    on: bool
