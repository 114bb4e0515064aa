"""The preferences page over real HTTP: lists, name, leaving everything, forged forms."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from conftest import configure
from newsletter.config import load_config
from newsletter.send_models import SubscriberStatus
from newsletter.store import open_store
from servers.web_app import add_subscriber

LISTS = [
    {"name": "members", "description": "Members of the network"},
    {"name": "guests", "description": "Guest columns, once a month", "public": True},
    {"name": "board", "description": "Minutes of the board"},
]


@pytest.fixture
def project(sample_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    configure(sample_project, lists=LISTS)
    return sample_project


@pytest.fixture
def ada(project: Path) -> str:
    """Ada's personal token; she is on 'members'."""
    return add_subscriber(project, "ada@example.org", "Ada Lovlace")[1]


def statuses(project: Path, email: str = "ada@example.org") -> dict[str, SubscriberStatus]:
    with open_store(load_config(project)) as store:
        return store.list_statuses(email)


def person(project: Path, email: str = "ada@example.org") -> tuple[str, SubscriberStatus]:
    with open_store(load_config(project)) as store:
        found = store.get(email)
        assert found is not None
        return found.name, found.status


def form_of(client: httpx.Client, token: str) -> str:
    """The page's CSRF field (the GET sets the cookie it is signed with)."""
    page = client.get(f"/preferences/{token}")
    assert page.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None
    return match.group(1)


def save(client: httpx.Client, token: str, **fields: object) -> httpx.Response:
    data = {"csrf": form_of(client, token), "action": "save", **fields}
    return client.post(f"/preferences/{token}", data=data)


def test_the_page_shows_the_readers_lists_and_the_public_ones(
    client: httpx.Client, ada: str
) -> None:
    page = client.get(f"/preferences/{ada}")

    assert page.status_code == 200
    assert "Preferences of a***@example.org" in page.text
    assert "ada@example.org" not in page.text
    assert 'value="Ada Lovlace"' in page.text
    assert re.search(r'value="members" checked>\s*Members', page.text)
    assert re.search(r'value="guests">\s*Guests', page.text)
    assert "board" not in page.text  # not public, and Ada is not on it
    assert "Unsubscribe from everything" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "<script" not in page.text


def test_saving_joins_a_public_list_leaves_another_and_corrects_the_name(
    project: Path, client: httpx.Client, ada: str
) -> None:
    reply = save(client, ada, lists=["guests"], name="Ada Lovelace")

    assert reply.status_code == 303
    assert reply.headers["Location"] == f"/preferences/{ada}?saved=1"
    assert statuses(project) == {
        "guests": SubscriberStatus.SUBSCRIBED,
        "members": SubscriberStatus.UNSUBSCRIBED,
    }
    assert person(project) == ("Ada Lovelace", SubscriberStatus.SUBSCRIBED)
    shown = client.get(reply.headers["Location"])
    assert "Your choices are saved." in shown.text
    assert re.search(r'value="guests" checked>', shown.text)


def test_a_double_submit_changes_nothing_more(
    project: Path, client: httpx.Client, ada: str
) -> None:
    field = form_of(client, ada)
    data = {"csrf": field, "action": "save", "lists": ["members", "guests"], "name": "Ada"}

    replies = [client.post(f"/preferences/{ada}", data=data) for _ in range(2)]

    assert [r.status_code for r in replies] == [303, 303]
    with open_store(load_config(project)) as store:
        joined = [e for e in store.events("ada@example.org") if e.list_name == "guests"]
    assert len(joined) == 1


def test_a_list_that_is_not_public_cannot_be_joined_and_nothing_changes(
    project: Path, client: httpx.Client, ada: str
) -> None:
    reply = save(client, ada, lists=["board", "guests"], name="Someone Else")

    assert reply.status_code == 400
    assert "“board” is not a list you can join here; nothing was changed." in reply.text
    assert statuses(project) == {"members": SubscriberStatus.SUBSCRIBED}
    assert person(project)[0] == "Ada Lovlace"


def test_a_list_that_does_not_exist_is_refused_the_same_way(
    project: Path, client: httpx.Client, ada: str
) -> None:
    reply = save(client, ada, lists=["members", "<b>x</b>"])

    assert reply.status_code == 400
    assert "“&lt;b&gt;x&lt;/b&gt;” is not a list you can join here" in reply.text
    assert statuses(project) == {"members": SubscriberStatus.SUBSCRIBED}


def test_a_name_no_message_could_carry_is_refused_with_the_reason(
    project: Path, client: httpx.Client, ada: str
) -> None:
    reply = save(client, ada, lists=["members"], name="Ada\r\nBcc: x@example.org")

    assert reply.status_code == 400
    assert "Your name cannot be saved" in reply.text
    assert person(project)[0] == "Ada Lovlace"


def test_leaving_everything_is_one_button(project: Path, client: httpx.Client, ada: str) -> None:
    save(client, ada, lists=["members", "guests"])

    reply = client.post(
        f"/preferences/{ada}", data={"csrf": form_of(client, ada), "action": "leave"}
    )

    assert reply.status_code == 200
    assert "will receive no more issues of Leading Together, from any list" in reply.text
    assert set(statuses(project).values()) == {SubscriberStatus.UNSUBSCRIBED}
    assert person(project)[1] is SubscriberStatus.UNSUBSCRIBED
    again = client.get(f"/preferences/{ada}")
    assert not re.search(r"checked>", again.text)


@pytest.mark.parametrize(
    "csrf",
    ["", "1700000000.00000000000000000000000000000000", "garbage", "expired"],
    ids=["missing", "forged", "garbage", "expired"],
)
def test_a_form_without_its_csrf_field_changes_nothing(
    project: Path, client: httpx.Client, ada: str, csrf: str
) -> None:
    form_of(client, ada)  # the browser has its cookie
    if csrf == "expired":
        from newsletter.web.csrf import Csrf

        nonce = client.cookies["newsletter_csrf"]
        csrf = Csrf("any").field(nonce, f"/preferences/{ada}", now=1_000_000)
    data = {"action": "leave"} | ({"csrf": csrf} if csrf else {})

    reply = client.post(f"/preferences/{ada}", data=data)

    assert reply.status_code == 403
    assert "nothing was changed" in reply.text
    assert person(project)[1] is SubscriberStatus.SUBSCRIBED


def test_a_field_is_good_only_with_its_cookie_and_its_own_page(
    project: Path, client: httpx.Client, ada: str
) -> None:
    _, bo = add_subscriber(project, "bo@example.org")
    field = form_of(client, ada)

    other_page = client.post(f"/preferences/{bo}", data={"csrf": field, "action": "leave"})
    client.cookies.clear()
    no_cookie = client.post(f"/preferences/{ada}", data={"csrf": field, "action": "leave"})

    assert (other_page.status_code, no_cookie.status_code) == (403, 403)
    assert person(project)[1] is person(project, "bo@example.org")[1] is SubscriberStatus.SUBSCRIBED


def test_a_bad_token_gets_one_page_and_reveals_nothing(client: httpx.Client, ada: str) -> None:
    replies = [client.get(f"/preferences/{bad}") for bad in (ada[:-2], "x", ada + "A")]

    assert {r.status_code for r in replies} == {400}
    assert len({r.text for r in replies}) == 1
    assert "example.org" not in replies[0].text


def test_the_unsubscribe_page_leads_to_the_preferences(client: httpx.Client, ada: str) -> None:
    page = client.get(f"/unsubscribe/{ada}")

    assert f'href="../preferences/{ada}"' in page.text
    target = httpx.URL(str(page.url)).join(f"../preferences/{ada}")
    assert target.path == f"/preferences/{ada}"
