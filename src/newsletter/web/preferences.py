"""The preferences page: a reader's lists, their name, and leaving everything.

It is reached with the same personal token as the unsubscribe link of an issue
(``/preferences/{token}``; the unsubscribe page links to it), so it needs no account or
password, and it answers every bad token with the unsubscribe endpoint's one page. Its
forms carry the signed double submit of ``csrf.py``; a saved form is answered with a
redirect to the page itself (post, redirect, get), to a path made here, never one taken
from the request. Everything works without JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..addresses import check_name
from ..config import LoadedConfig
from ..confirmation import list_title
from ..errors import InvalidRecipient, TokenError
from ..send_models import SubscriberStatus
from ..store import Store
from ..unsubscribe import TokenHolder, token_holder
from .common import in_store_thread, read_body, store_for_request
from .csrf import Csrf
from .pages import Pages, mask_address

FORM_LIMIT = 16 * 1024
_ON = frozenset({SubscriberStatus.SUBSCRIBED, SubscriberStatus.PENDING})


class PreferenceError(ValueError):
    """A change the page cannot make; its message is shown to the reader as it is."""


@dataclass(frozen=True)
class ListChoice:
    name: str
    title: str
    description: str
    on: bool
    pending: bool


@dataclass(frozen=True)
class Preferences:
    """What the page shows about one reader."""

    holder: TokenHolder
    name: str
    lists: list[ListChoice]


def public_lists(loaded: LoadedConfig) -> dict[str, str]:
    """The lists readers may join themselves, name -> description."""
    return {lst.name: lst.description for lst in loaded.settings.lists if lst.public}


def read_form(body: bytes) -> dict[str, list[str]]:
    """An urlencoded form; undecodable bytes become replacement characters, never errors."""
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def first(form: dict[str, list[str]], name: str) -> str:
    return form.get(name, [""])[0]


class PreferencesEndpoint:
    """``GET`` and ``POST /preferences/{token}``."""

    def __init__(self, loaded: LoadedConfig, secret: str, pages: Pages, csrf: Csrf) -> None:
        self.loaded = loaded
        self.secret = secret
        self.pages = pages
        self.csrf = csrf

    async def show(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = await in_store_thread(self._read, token)
        if found is None:
            return self._invalid()
        saved = request.query_params.get("saved") == "1"
        return self._page(request, token, found, saved=saved)

    async def change(self, request: Request) -> Response:
        token = request.path_params["token"]
        body = await read_body(request, FORM_LIMIT)
        form = read_form(body)
        if not self.csrf.valid(request, {"csrf": first(form, "csrf")}, _path(token)):
            return self.pages.render(
                "This form has expired",
                "It was not sent from this page in this browser, or it is too old.",
                "Open the link from your e-mail again and make your choice once more; "
                "nothing was changed.",
                status=403,
            )
        try:
            done = await in_store_thread(self._apply, token, form)
        except PreferenceError as exc:
            found = await in_store_thread(self._read, token)
            if found is None:
                return self._invalid()
            return self._page(request, token, found, error=str(exc), status=400)
        if done is None:
            return self._invalid()
        if first(form, "action") == "leave":
            return self.pages.render(
                "You are unsubscribed",
                f"{mask_address(done.holder.subscriber.email)} will receive no more issues of "
                f"{self.pages.newsletter.name}, from any list.",
                "If this was a mistake, reply to any issue and we will add you back.",
            )
        return RedirectResponse(f"{_path(token)}?saved=1", status_code=303)

    # --- in a worker thread -----------------------------------------------------------------

    def _read(self, token: str) -> Preferences | None:
        with store_for_request(self.loaded) as store:
            holder = _holder(store, self.secret, token)
            return None if holder is None else self._preferences(store, holder)

    def _apply(self, token: str, form: dict[str, list[str]]) -> Preferences | None:
        with store_for_request(self.loaded, writing=True) as store:
            holder = _holder(store, self.secret, token)
            if holder is None:
                return None
            subscriber = holder.subscriber
            if first(form, "action") == "leave":
                store.unsubscribe(subscriber.id, "preferences", "every list")
                return self._preferences(store, holder)
            if first(form, "action") != "save":
                raise PreferenceError("The form was incomplete; nothing was changed.")
            self._save(store, holder, form)
            return self._preferences(store, holder)

    def _save(self, store: Store, holder: TokenHolder, form: dict[str, list[str]]) -> None:
        """Every change of the form, or (PreferenceError) none: the caller's transaction."""
        subscriber = holder.subscriber
        wanted = set(form.get("lists", []))
        current = store.list_statuses(subscriber.id)
        joinable = public_lists(self.loaded)
        for name in sorted(wanted):
            if current.get(name) in _ON:
                continue
            if name not in joinable:
                raise PreferenceError(
                    f"“{name}” is not a list you can join here; nothing was changed."
                )
            store.set_membership(subscriber.id, name, SubscriberStatus.SUBSCRIBED, "preferences")
        for name, status in current.items():
            if status in _ON and name not in wanted:
                store.unsubscribe(subscriber.id, "preferences", f"list {name}", list_name=name)
        name = first(form, "name").strip()
        if name != subscriber.name:
            try:
                checked = check_name(name)
            except InvalidRecipient as exc:
                raise PreferenceError(f"Your name cannot be saved: {exc.message}") from None
            store.rename(subscriber.id, checked)

    def _preferences(self, store: Store, holder: TokenHolder) -> Preferences:
        subscriber = store.get_by_id(holder.subscriber.id) or holder.subscriber
        statuses = store.list_statuses(subscriber.id)
        reachable = subscriber.status is SubscriberStatus.SUBSCRIBED
        described = {lst.name: lst.description for lst in self.loaded.settings.lists}
        shown = [n for n in described if n in public_lists(self.loaded) or n in statuses]
        choices = [
            ListChoice(
                name=name,
                title=list_title(name),
                description=described[name],
                on=reachable and statuses.get(name) in _ON,
                pending=reachable and statuses.get(name) is SubscriberStatus.PENDING,
            )
            for name in shown
        ]
        return Preferences(holder, subscriber.name, choices)

    # --- answers ----------------------------------------------------------------------------

    def _page(
        self,
        request: Request,
        token: str,
        found: Preferences,
        *,
        saved: bool = False,
        error: str = "",
        status: int = 200,
    ) -> Response:
        nonce, is_new = self.csrf.nonce(request)
        response = self.pages.page(
            "preferences.html",
            f"Your subscription to {self.pages.newsletter.name}",
            status=status,
            masked=mask_address(found.holder.subscriber.email),
            name_value=found.name,
            lists=found.lists,
            action=_path(token),
            csrf=self.csrf.field(nonce, _path(token)),
            saved=saved,
            error=error,
            name_of_newsletter=self.pages.newsletter.name,
        )
        return self.csrf.remember(request, response, nonce, is_new)

    def _invalid(self) -> Response:
        return self.pages.render(
            "This link is not valid",
            "It may be incomplete or altered, for example split across two lines by your "
            "mail program.",
            "Use the link in the most recent issue you received, or reply to it.",
            status=400,
        )


def _path(token: str) -> str:
    return f"/preferences/{token}"


def _holder(store: Store, secret: str, token: str) -> TokenHolder | None:
    try:
        return token_holder(store, secret, token)
    except TokenError:
        return None
