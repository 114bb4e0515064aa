"""One-click unsubscribe over real HTTP: a GET asks, a POST acts, failures all look alike."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from newsletter.config import load_config
from newsletter.send import unsubscribe_secret
from newsletter.send_models import SubscriberStatus
from newsletter.store import StatusEvent, open_store
from newsletter.tokens import make_token
from newsletter.unsubscribe import legacy_links_until
from servers.legacy_tokens import make_v1_token, make_v2_token, make_v3_token
from servers.web_app import add_subscriber

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def project(sample_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    return sample_project


def status_of(
    project: Path, email: str, list_name: str = "members"
) -> tuple[SubscriberStatus | None, list[StatusEvent]]:
    """The status on the list the links are for, as a send sees it, and the history."""
    with open_store(load_config(project)) as store:
        return store.status_on(email, list_name), store.events(email)


def secret_of(project: Path) -> str:
    loaded = load_config(project)
    with open_store(loaded) as store:
        return unsubscribe_secret(loaded, store)


def signed(project: Path, subscriber_id: int, email: str, list_name: str = "members") -> str:
    loaded = load_config(project)
    with open_store(loaded) as store:
        list_id = store.ensure_list(list_name).id
        return make_token(unsubscribe_secret(loaded, store), subscriber_id, email, list_id)


def flipped(token: str, index: int) -> str:
    """``token`` with one bit of its ``index``-th byte changed."""
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[index] ^= 1 << index % 8
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def invalid_page(client: httpx.Client) -> str:
    reply = client.get("/unsubscribe/not-a-token")
    assert reply.status_code == 400
    return reply.text


def test_get_asks_for_confirmation_and_unsubscribes_nobody(
    project: Path, client: httpx.Client
) -> None:
    _, token = add_subscriber(project, "ada@example.org", "Ada Lovelace")

    page = client.get(f"/unsubscribe/{token}")

    assert page.status_code == 200
    assert "Unsubscribe from Leading Together?" in page.text
    assert "a***@example.org" in page.text
    assert "ada@example.org" not in page.text
    assert "“members”" in page.text
    assert '<form method="post">' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    status, events = status_of(project, "ada@example.org")
    assert status is SubscriberStatus.SUBSCRIBED
    assert [e.status for e in events] == [SubscriberStatus.SUBSCRIBED]


def test_one_click_post_unsubscribes_and_records_where_it_came_from(
    project: Path, client: httpx.Client
) -> None:
    _, token = add_subscriber(project, "ada@example.org")

    reply = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)

    assert reply.status_code == 200
    assert "You are unsubscribed" in reply.text
    assert "a***@example.org will receive no more issues of Leading Together" in reply.text
    status, events = status_of(project, "ada@example.org")
    assert status is SubscriberStatus.UNSUBSCRIBED
    assert (events[-1].status, events[-1].source, events[-1].detail) == (
        SubscriberStatus.UNSUBSCRIBED,
        "one-click",
        "list members",
    )


def test_one_click_sent_as_multipart_form_data_is_recognised(
    project: Path, client: httpx.Client
) -> None:
    _, token = add_subscriber(project, "ada@example.org")
    body = (
        "--b0undary\r\n"
        'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        "One-Click\r\n"
        "--b0undary--\r\n"
    )

    reply = client.post(
        f"/unsubscribe/{token}",
        content=body.encode(),
        headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
    )

    assert reply.status_code == 200
    status, events = status_of(project, "ada@example.org")
    assert (status, events[-1].source) == (SubscriberStatus.UNSUBSCRIBED, "one-click")


@pytest.mark.parametrize("body", [{"confirm": "yes"}, None], ids=["form", "empty"])
def test_confirmation_form_and_empty_post_unsubscribe_as_web(
    project: Path, client: httpx.Client, body: dict[str, str] | None
) -> None:
    _, token = add_subscriber(project, "grace@example.org")

    reply = client.post(f"/unsubscribe/{token}", data=body)

    assert reply.status_code == 200
    status, events = status_of(project, "grace@example.org")
    assert status is SubscriberStatus.UNSUBSCRIBED
    assert events[-1].source == "web"


def test_a_replayed_post_answers_the_same_and_records_once(
    project: Path, client: httpx.Client
) -> None:
    _, token = add_subscriber(project, "ada@example.org")

    first = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    second = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    later_get = client.get(f"/unsubscribe/{token}")

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.text == first.text
    assert later_get.status_code == 200
    assert "You are unsubscribed" in later_get.text
    assert "<form" not in later_get.text
    status, events = status_of(project, "ada@example.org")
    assert status is SubscriberStatus.UNSUBSCRIBED
    assert [e.status for e in events].count(SubscriberStatus.UNSUBSCRIBED) == 1


def test_bad_tokens_all_get_one_page_that_reveals_nothing(
    project: Path, client: httpx.Client
) -> None:
    ada_id, token = add_subscriber(project, "ada@example.org")
    secret = secret_of(project)
    ada, eve = "ada@example.org", "eve@example.org"
    old = make_v1_token(secret, ada_id, ada, "members")
    raw_size = len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    bad_tokens = {
        "forged for an existing subscriber": make_token("another-secret", ada_id, ada, 1),
        "signed, for nobody in the store": signed(project, 9999, "nobody@example.org"),
        "signed, address does not match": signed(project, ada_id, eve),
        **{f"a bit of byte {index} flipped": flipped(token, index) for index in range(raw_size)},
        "truncated": token[:-6],
        "a character short": token[:-1],
        "altered": token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "garbage": "not-a-token",
        "not base64": "%3Cscript%3E",
        "version 1, another secret": make_v1_token("another-secret", ada_id, ada, "members"),
        "version 1, address does not match": make_v1_token(secret, ada_id, eve, "members"),
        "version 1, altered": flipped(old, 12),
        "version 1, truncated": old[:-6],
    }

    bodies = set()
    for name, bad in bad_tokens.items():
        for reply in (client.get(f"/unsubscribe/{bad}"), client.post(f"/unsubscribe/{bad}")):
            assert reply.status_code == 400, name
            bodies.add(reply.text)

    assert len(bodies) == 1
    (body,) = bodies
    assert "This unsubscribe link is not valid" in body
    assert "example.org" not in body
    assert status_of(project, "ada@example.org")[0] is SubscriberStatus.SUBSCRIBED


def test_a_stronger_status_is_kept(project: Path, client: httpx.Client) -> None:
    _, token = add_subscriber(project, "ada@example.org")
    with open_store(load_config(project)) as store:
        store.set_status("ada@example.org", SubscriberStatus.COMPLAINED, "test", "")

    reply = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)

    assert reply.status_code == 200
    assert "You are unsubscribed" in reply.text
    assert status_of(project, "ada@example.org")[0] is SubscriberStatus.COMPLAINED


def test_a_deleted_subscribers_link_does_not_reach_whoever_gets_their_id(
    project: Path, client: httpx.Client
) -> None:
    ada_id, token = add_subscriber(project, "ada@example.org")
    with open_store(load_config(project)) as store:
        store.remove(ada_id)
    bo_id, _ = add_subscriber(project, "bo@example.org")
    assert bo_id == ada_id  # the store gives the freed id to the next subscriber

    replies = [
        client.get(f"/unsubscribe/{token}"),
        client.post(f"/unsubscribe/{token}", data=ONE_CLICK),
    ]

    assert [reply.status_code for reply in replies] == [400, 400]
    assert {reply.text for reply in replies} == {invalid_page(client)}
    assert status_of(project, "bo@example.org")[0] is SubscriberStatus.SUBSCRIBED


def test_the_page_names_the_list_the_link_was_sent_for(project: Path, client: httpx.Client) -> None:
    ada_id, _ = add_subscriber(project, "ada@example.org")
    token = signed(project, ada_id, "ada@example.org", "guests")

    page = client.get(f"/unsubscribe/{token}")
    reply = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)

    assert "through the list “guests”" in page.text
    assert "(list “guests”)" in reply.text
    assert status_of(project, "ada@example.org")[1][-1].detail == "list guests"


def test_a_link_from_before_version_2_still_unsubscribes(
    project: Path, client: httpx.Client
) -> None:
    ada_id, _ = add_subscriber(project, "ada@example.org")
    token = make_v1_token(secret_of(project), ada_id, "ada@example.org", "members")

    page = client.get(f"/unsubscribe/{token}")
    reply = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)

    assert page.status_code == 200
    assert "a***@example.org receives Leading Together through the list “members”" in page.text
    assert reply.status_code == 200
    assert "You are unsubscribed" in reply.text
    status, events = status_of(project, "ada@example.org")
    assert status is SubscriberStatus.UNSUBSCRIBED
    assert (events[-1].source, events[-1].detail) == ("one-click", "list members")


def test_a_link_from_before_version_2_fails_once_the_address_changed(
    project: Path, client: httpx.Client
) -> None:
    ada_id, _ = add_subscriber(project, "ada@example.org")
    token = make_v1_token(secret_of(project), ada_id, "ada@old.example.org", "members")

    reply = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)

    assert (reply.status_code, reply.text) == (400, invalid_page(client))
    assert status_of(project, "ada@example.org")[0] is SubscriberStatus.SUBSCRIBED


def test_links_from_before_version_2_stop_working_a_year_after_the_move(
    project: Path, client: httpx.Client
) -> None:
    ada_id, current = add_subscriber(project, "ada@example.org")
    old = make_v1_token(secret_of(project), ada_id, "ada@example.org", "members")
    with open_store(load_config(project)) as store:
        moved = datetime.now(UTC) - timedelta(days=366)
        with store.db.transaction():
            store.db.execute(
                "UPDATE schema_migrations SET applied_at = ? WHERE version = 3",
                (moved.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),),
            )
        assert legacy_links_until(store) < datetime.now(UTC)

    expired = client.post(f"/unsubscribe/{old}", data=ONE_CLICK)
    assert (expired.status_code, expired.text) == (400, invalid_page(client))
    assert status_of(project, "ada@example.org")[0] is SubscriberStatus.SUBSCRIBED
    assert client.post(f"/unsubscribe/{current}", data=ONE_CLICK).status_code == 200
    assert status_of(project, "ada@example.org")[0] is SubscriberStatus.UNSUBSCRIBED


def test_list_names_from_old_links_are_escaped(project: Path, client: httpx.Client) -> None:
    ada_id, _ = add_subscriber(project, "ada@example.org")
    token = make_v1_token(secret_of(project), ada_id, "ada@example.org", "<b>members</b>")

    page = client.get(f"/unsubscribe/{token}")

    assert page.status_code == 200
    assert "&lt;b&gt;members&lt;/b&gt;" in page.text
    assert "<b>" not in page.text


def test_the_bare_address_explains_where_the_personal_link_is(client: httpx.Client) -> None:
    page = client.get("/unsubscribe/")

    assert page.status_code == 200
    assert "use the unsubscribe link at the bottom of an issue" in page.text


def test_an_oversized_post_is_refused_and_changes_nothing(
    project: Path, client: httpx.Client
) -> None:
    _, token = add_subscriber(project, "ada@example.org")

    reply = client.post(f"/unsubscribe/{token}", content=b"x" * 20_000)

    assert reply.status_code == 413
    assert status_of(project, "ada@example.org")[0] is SubscriberStatus.SUBSCRIBED


@pytest.mark.parametrize("version", ["current", "3 (issues sent before)"])
def test_one_click_leaves_the_list_of_the_issue_and_no_other(
    project: Path, client: httpx.Client, version: str
) -> None:
    ada_id, token = add_subscriber(project, "ada@example.org")
    with open_store(load_config(project)) as store:
        members = store.ensure_list("members")
        store.ensure_list("guests")
        store.add("ada@example.org", list_name="guests")
    if version != "current":
        token = make_v3_token(secret_of(project), ada_id, "ada@example.org", members.id)

    page = client.get(f"/unsubscribe/{token}")
    reply = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)

    assert "Unsubscribing stops the issues of “members” to this address" in page.text
    assert "Other lists of the newsletter you are on still send to you." in reply.text
    assert status_of(project, "ada@example.org")[0] is SubscriberStatus.UNSUBSCRIBED
    assert status_of(project, "ada@example.org", "guests")[0] is SubscriberStatus.SUBSCRIBED


def test_a_link_of_version_2_leaves_every_list_as_its_issue_said(
    project: Path, client: httpx.Client
) -> None:
    ada_id, _ = add_subscriber(project, "ada@example.org")
    with open_store(load_config(project)) as store:
        guests = store.ensure_list("guests")
        store.add("ada@example.org", list_name="guests")
    token = make_v2_token(secret_of(project), ada_id, "ada@example.org", guests.id)

    page = client.get(f"/unsubscribe/{token}")
    reply = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)

    assert "Unsubscribing stops every issue to this address" in page.text
    assert "Other lists" not in reply.text
    for list_name in ("members", "guests"):
        assert status_of(project, "ada@example.org", list_name)[0] is SubscriberStatus.UNSUBSCRIBED
    with open_store(load_config(project)) as store:
        assert store.get("ada@example.org").status is SubscriberStatus.UNSUBSCRIBED
