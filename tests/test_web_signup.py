"""Sign-up with double opt-in over real HTTP: the form, the JSON endpoint, the confirmation
e-mail in the outbox, the link, and every kind of bad input."""

from __future__ import annotations

import re
import time
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import configure, set_setting
from newsletter.config import load_config
from newsletter.send_models import SubscriberStatus
from newsletter.signup import ConfirmLinkExpired, ConfirmSigner, SignupRequest, confirm_signup
from newsletter.store import open_store
from newsletter.store.consents import Consents
from servers.confirmations import confirmation_for, confirmations_folder, link_in
from servers.web_app import running_app

LISTS = [
    {"name": "members", "description": "Members of the network"},
    {"name": "guests", "description": "Guest columns, once a month", "public": True},
    {"name": "events", "description": "Events near you", "public": True},
]


@pytest.fixture
def project(sample_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    configure(sample_project, lists=LISTS)
    return sample_project


def outbox(project: Path) -> Path:
    return confirmations_folder(project)


def confirm_path(message: EmailMessage) -> str:
    return urlsplit(link_in(message)).path


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None, page.text
    return match.group(1)


def sign_up(client: httpx.Client, address: str, *lists: str, **extra: str) -> httpx.Response:
    field = csrf_of(client.get("/subscribe"))
    data = {"csrf": field, "email": address, "name": "Ada", "list": list(lists), **extra}
    return client.post("/subscribe", data=data)


def confirm(client: httpx.Client, path: str) -> httpx.Response:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return client.post(path, data={"csrf": csrf_of(page)})


def status(project: Path, address: str, list_name: str) -> SubscriberStatus | None:
    with open_store(load_config(project)) as store:
        if store.get(address) is None:
            return None
        return store.status_on(address, list_name)


def test_the_page_offers_the_public_lists_with_a_honeypot_and_csrf(client: httpx.Client) -> None:
    page = client.get("/subscribe")

    assert page.status_code == 200
    assert 'action="/subscribe"' in page.text
    assert 'value="guests"' in page.text and 'value="events"' in page.text
    assert 'value="members"' not in page.text  # not public
    assert 'name="website"' in page.text and 'name="csrf"' in page.text
    assert "newsletter_csrf=" in page.headers["Set-Cookie"]
    assert "form-action 'self'" in page.headers["Content-Security-Policy"]


def test_signing_up_sends_a_confirmation_and_only_the_link_subscribes(
    project: Path, client: httpx.Client
) -> None:
    reply = sign_up(client, "Ada@Example.ORG", "guests", "events")

    assert reply.status_code == 200
    assert "Check your inbox" in reply.text
    assert status(project, "ada@example.org", "guests") is SubscriberStatus.PENDING
    message = confirmation_for(project, "Ada@example.org")
    assert message["Subject"] == "Confirm your subscription to Leading Together"
    assert message["To"] == "Ada <Ada@example.org>"
    assert message["List-Unsubscribe"] is None
    assert "Guests: Guest columns, once a month" in message.get_body(("plain",)).get_content()
    path = confirm_path(message)
    assert client.get(path).status_code == 200
    assert status(project, "ada@example.org", "guests") is SubscriberStatus.PENDING  # GET asks

    done = confirm(client, path)

    assert done.status_code == 200 and "You are subscribed" in done.text
    assert 'href="/preferences/' in done.text
    for list_name in ("guests", "events"):
        assert status(project, "ada@example.org", list_name) is SubscriberStatus.SUBSCRIBED
    with open_store(load_config(project)) as store:
        consents = Consents(store).of_subscriber(store.get("ada@example.org").id)
    assert [(c.list_name, c.source) for c in consents] == [("guests", "form"), ("events", "form")]
    assert all(c.confirmed_at and c.requested_at <= c.confirmed_at for c in consents)
    assert all(re.fullmatch(r"[0-9a-f]{64}", c.ip_hash) for c in consents)
    assert "127.0.0.1" not in {c.ip_hash for c in consents}


def test_the_confirmation_speaks_the_newsletters_language(
    project: Path, client: httpx.Client
) -> None:
    set_setting(project, "newsletter.language", "fr")
    with running_app(project) as french:
        sign_up(french, "ada@example.org", "guests")
    message = confirmation_for(project, "ada@example.org")
    assert message["Subject"] == "Confirmez votre abonnement à Leading Together"
    text = message.get_body(("plain",)).get_content()
    assert "Oui, je m’abonne" in text and "valable 48 heures" in text
    html = message.get_body(("html",)).get_content()
    assert '<html lang="fr">' in html


def test_json_signup_answers_202_and_the_same_for_a_known_address(
    project: Path, client: httpx.Client
) -> None:
    first = client.post("/subscribe", json={"email": "bo@example.org", "lists": ["guests"]})
    confirm(client, confirm_path(confirmation_for(project, "bo@example.org")))
    again = client.post("/subscribe", json={"email": "bo@example.org", "lists": ["guests"]})
    stranger = client.post("/subscribe", json={"email": "cy@example.org", "lists": ["guests"]})

    assert first.status_code == again.status_code == stranger.status_code == 202
    assert first.json() == again.json() == stranger.json()
    assert first.json()["status"] == "check-your-inbox"
    with open_store(load_config(project)) as store:
        sources = {c.source for c in Consents(store).of_subscriber(store.get("bo@example.org").id)}
    assert sources == {"json"}


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("not-an-address", "is not an e-mail address we can send to"),
        ("ada@", "is not an e-mail address we can send to"),
        ("ada@mailinator.com", "throwaway mail services are not accepted"),
        ("ada@eu.yopmail.com", "throwaway mail services are not accepted"),
        ("ada@my-tempmail-box.net", "throwaway mail services are not accepted"),
    ],
)
def test_an_invalid_or_disposable_address_is_refused_with_a_reason(
    project: Path, client: httpx.Client, address: str, reason: str
) -> None:
    form = sign_up(client, address, "guests")
    api = client.post("/subscribe", json={"email": address, "lists": ["guests"]})

    assert form.status_code == api.status_code == 400
    assert reason in form.text and reason in api.json()["error"]
    assert f'value="{address}"' in form.text  # the form keeps what was typed
    assert not outbox(project).exists()


def test_a_list_that_is_not_public_is_refused(project: Path, client: httpx.Client) -> None:
    reply = sign_up(client, "ada@example.org", "members")
    api = client.post("/subscribe", json={"email": "ada@example.org", "lists": ["nope"]})

    assert reply.status_code == api.status_code == 400
    assert "“members” is not a list you can join here." in reply.text
    assert api.json() == {"error": "“nope” is not a list you can join here."}
    assert status(project, "ada@example.org", "members") is None


def test_a_form_without_its_csrf_field_stores_nothing_and_asks_again(
    project: Path, client: httpx.Client
) -> None:
    # What the embeddable snippet on another site posts: no cookie, no field.
    reply = client.post(
        "/subscribe", data={"email": "ada@example.org", "list": "guests", "source": "embed"}
    )

    assert reply.status_code == 403
    assert "To finish, check your details and press Subscribe." in reply.text
    assert 'value="ada@example.org"' in reply.text
    assert re.search(r'value="guests" checked', reply.text)
    assert status(project, "ada@example.org", "guests") is None
    retried = client.post(
        "/subscribe",
        data={"csrf": csrf_of(reply), "email": "ada@example.org", "list": "guests",
              "source": "embed"},
    )  # fmt: skip
    assert retried.status_code == 200
    with open_store(load_config(project)) as store:
        consents = Consents(store).of_subscriber(store.get("ada@example.org").id)
    assert [c.source for c in consents] == ["embed"]


def test_the_honeypot_gets_the_usual_answer_and_nothing_else(
    project: Path, client: httpx.Client
) -> None:
    trapped = sign_up(client, "bot@example.org", "guests", website="http://spam.example")
    human = sign_up(client, "ada@example.org", "guests")

    assert trapped.status_code == human.status_code == 200
    assert trapped.text == human.text
    confirmation_for(project, "ada@example.org")
    assert status(project, "bot@example.org", "guests") is None
    assert not list(outbox(project).glob("*bot@example.org.eml"))


def test_a_double_submit_sends_one_more_mail_at_most_and_stays_pending(
    project: Path, client: httpx.Client
) -> None:
    field = csrf_of(client.get("/subscribe"))
    data = {"csrf": field, "email": "ada@example.org", "list": "guests"}

    replies = [client.post("/subscribe", data=data) for _ in range(2)]

    assert [r.status_code for r in replies] == [200, 200]
    assert replies[0].text == replies[1].text
    assert status(project, "ada@example.org", "guests") is SubscriberStatus.PENDING
    with open_store(load_config(project)) as store:
        people = store.count()
    assert people == 1


def test_a_flood_from_one_ip_is_refused_with_retry_after(
    project: Path, client: httpx.Client
) -> None:
    configure(project, signup={"per_ip_per_hour": 5})
    with running_app(project) as limited:
        answers = [
            limited.post("/subscribe", json={"email": f"p{n}@example.org", "lists": ["guests"]})
            for n in range(8)
        ]
    assert [a.status_code for a in answers] == [202] * 5 + [429] * 3
    assert "Too many sign-up requests" in answers[-1].json()["error"]
    assert 3000 <= int(answers[-1].headers["Retry-After"]) <= 3600
    with open_store(load_config(project)) as store:
        assert store.count() == 5


def test_one_address_gets_a_few_confirmations_an_hour_at_most(
    project: Path, client: httpx.Client
) -> None:
    answers = [
        client.post("/subscribe", json={"email": "ada@example.org", "lists": ["guests"]})
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]


def test_a_reused_link_changes_nothing(project: Path, client: httpx.Client) -> None:
    sign_up(client, "ada@example.org", "guests")
    path = confirm_path(confirmation_for(project, "ada@example.org"))
    assert confirm(client, path).status_code == 200

    again = confirm(client, path)

    assert again.status_code == 200
    assert "You had already confirmed" in again.text
    with open_store(load_config(project)) as store:
        events = [e for e in store.events("ada@example.org") if e.source == "confirm"]
    assert len(events) == 1


def test_a_link_for_someone_who_left_since_does_not_bring_them_back(
    project: Path, client: httpx.Client
) -> None:
    sign_up(client, "ada@example.org", "guests")
    path = confirm_path(confirmation_for(project, "ada@example.org"))
    with open_store(load_config(project)) as store:
        store.unsubscribe("ada@example.org", "preferences")

    reply = confirm(client, path)

    assert reply.status_code == 410
    assert "This confirmation is no longer valid" in reply.text
    assert status(project, "ada@example.org", "guests") is SubscriberStatus.UNSUBSCRIBED


def test_an_expired_link_is_refused_and_says_so(project: Path, client: httpx.Client) -> None:
    sign_up(client, "ada@example.org", "guests")
    path = confirm_path(confirmation_for(project, "ada@example.org"))
    with open_store(load_config(project)) as store:
        ada = store.get("ada@example.org")
        request = Consents(store).of_subscriber(ada.id)[0].request
        from newsletter.send import unsubscribe_secret

        secret = unsubscribe_secret(load_config(project), store)
    made = SignupRequest(ada.id, ada.email, "", ["guests"], request)
    old = ConfirmSigner(secret).make(made, issued=time.time() - 49 * 3600)

    page = client.get(f"/confirm/{old}")

    assert page.status_code == 410
    assert "This confirmation link has expired" in page.text and "<form" not in page.text
    with open_store(load_config(project)) as store, pytest.raises(ConfirmLinkExpired):
        confirm_signup(store, ConfirmSigner(secret), old, 48 * 3600)
    assert status(project, "ada@example.org", "guests") is SubscriberStatus.PENDING
    assert confirm(client, path).status_code == 200  # the genuine, fresh one still works


def test_a_forged_or_altered_link_gets_one_page(project: Path, client: httpx.Client) -> None:
    sign_up(client, "ada@example.org", "guests")
    path = confirm_path(confirmation_for(project, "ada@example.org"))
    token = path.rsplit("/", 1)[1]
    with open_store(load_config(project)) as store:
        ada = store.get("ada@example.org")
        request = Consents(store).of_subscriber(ada.id)[0].request
    forged = ConfirmSigner("another-secret").make(
        SignupRequest(ada.id, ada.email, "", ["guests"], request)
    )
    bad = [forged, token[:-3], token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"), "x"]

    replies = [client.get(f"/confirm/{b}") for b in bad]

    assert {r.status_code for r in replies} == {400}
    assert len({r.text for r in replies}) == 1
    assert "example.org" not in replies[0].text
    assert status(project, "ada@example.org", "guests") is SubscriberStatus.PENDING


def test_a_confirm_post_without_its_csrf_field_changes_nothing(
    project: Path, client: httpx.Client
) -> None:
    sign_up(client, "ada@example.org", "guests")
    path = confirm_path(confirmation_for(project, "ada@example.org"))

    reply = client.post(path, data={})

    assert reply.status_code == 403
    assert status(project, "ada@example.org", "guests") is SubscriberStatus.PENDING
