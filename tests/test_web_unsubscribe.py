"""One-click unsubscribe over real HTTP: a GET asks, a POST acts, failures all look alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from newsletter.config import load_config
from newsletter.models import SubscriberStatus
from newsletter.send import unsubscribe_secret
from newsletter.store import StatusEvent, open_store
from newsletter.tokens import make_token
from servers.web_app import add_subscriber, running_app

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def project(sample_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    return sample_project


@pytest.fixture
def client(project: Path) -> Iterator[httpx.Client]:
    with running_app(project) as http:
        yield http


def status_of(project: Path, email: str) -> tuple[SubscriberStatus, list[StatusEvent]]:
    with open_store(load_config(project)) as store:
        subscriber = store.get(email)
        assert subscriber is not None
        return subscriber.status, store.events(email)


def signed(project: Path, subscriber_id: int, email: str, list_name: str = "members") -> str:
    loaded = load_config(project)
    with open_store(loaded) as store:
        return make_token(unsubscribe_secret(loaded, store), subscriber_id, email, list_name)


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
    bad_tokens = {
        "forged for an existing subscriber": make_token(
            "another-secret", ada_id, "ada@example.org", "members"
        ),
        "signed, for nobody in the store": signed(project, 9999, "nobody@example.org"),
        "signed, address does not match": signed(project, ada_id, "eve@example.org"),
        "truncated": token[:-6],
        "altered": token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "garbage": "not-a-token",
        "not base64": "%3Cscript%3E",
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


def test_values_from_the_token_are_escaped(project: Path, client: httpx.Client) -> None:
    ada_id, _ = add_subscriber(project, "ada@example.org")
    token = signed(project, ada_id, "ada@example.org", "<b>members</b>")

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
