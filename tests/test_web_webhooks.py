"""SendGrid's Event Webhook over real HTTP, signed with a test key pair as SendGrid signs."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import run_cli
from newsletter.config import load_config
from newsletter.send_models import SubscriberStatus
from newsletter.store import open_store
from servers.web_app import add_subscriber, free_port, running_app

URL = "/webhooks/sendgrid"
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_BODY = 4096


class Signer:
    """A P-256 key pair; the public half in the form SendGrid shows (base64 DER SPKI)."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_b64 = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            SIGNATURE: base64.b64encode(signature).decode(),
            TIMESTAMP: stamp,
            "Content-Type": "application/json",
        }


def configure_web(project: Path, *lines: str) -> None:
    with project.open("a", encoding="utf-8") as config:
        config.write("\n" + "".join(f"  {line}\n" for line in lines))


def event(email: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "email": email,
        "event": kind,
        "timestamp": 1_795_000_000,
        "sg_event_id": f"ev-{kind}-{email.split('@')[0]}",
        **fields,
    }


def statuses(project: Path, *emails: str) -> dict[str, SubscriberStatus]:
    with open_store(load_config(project)) as store:
        found = {email: store.get(email) for email in emails}
    return {email: sub.status for email, sub in found.items() if sub is not None}


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def project(sample_project: Path, signer: Signer) -> Path:
    configure_web(
        sample_project, f"sendgrid_webhook_key: {signer.public_b64}", f"max_body_bytes: {MAX_BODY}"
    )
    return sample_project


def post_signed(client: httpx.Client, signer: Signer, events: Any, **kw: Any) -> httpx.Response:
    body = json.dumps(events).encode()
    return client.post(URL, content=body, headers=signer.headers(body, **kw))


PEOPLE = [f"{name}@example.org" for name in ("ada", "grace", "linus", "ken", "ann", "bob", "carl")]


def test_signed_events_update_statuses_and_record_why(
    project: Path, client: httpx.Client, signer: Signer
) -> None:
    for email in PEOPLE:
        add_subscriber(project, email)
    ada, grace, linus, ken, ann, bob, carl = PEOPLE
    events = [
        event(ada, "bounce", type="bounce", reason="550 5.1.1 mailbox does not exist"),
        event(grace, "spamreport"),
        event(grace, "unsubscribe"),  # later and weaker: the complaint stands
        event(linus, "unsubscribe"),
        event(ken, "dropped", reason="Bounced Address"),
        event(ann, "dropped", reason="Spam Reporting Address"),
        event(bob, "group_unsubscribe", asm_group_id=42),
        event(carl, "bounce", type="blocked", reason="421 try again later"),
        event(carl, "delivered"),
        event(carl, "open"),
        event(carl, "dropped", reason="Invalid SMTPAPI header"),
        event("stranger@example.org", "bounce", type="bounce"),
    ]

    reply = post_signed(client, signer, events)

    assert reply.status_code == 200
    assert reply.json() == {"received": 12, "repeated": 0}
    assert statuses(project, *PEOPLE) == {
        ada: SubscriberStatus.BOUNCED,
        grace: SubscriberStatus.COMPLAINED,
        linus: SubscriberStatus.UNSUBSCRIBED,
        ken: SubscriberStatus.BOUNCED,
        ann: SubscriberStatus.COMPLAINED,
        bob: SubscriberStatus.UNSUBSCRIBED,
        carl: SubscriberStatus.SUBSCRIBED,
    }
    with open_store(load_config(project)) as store:
        last = store.events(ada)[-1]
    assert last.source == "sendgrid-webhook"
    assert last.detail == (
        "event=bounce type=bounce reason=550 5.1.1 mailbox does not exist sg_event_id=ev-bounce-ada"
    )


def test_a_retried_batch_changes_nothing_more(
    project: Path, client: httpx.Client, signer: Signer
) -> None:
    add_subscriber(project, "ada@example.org")
    batch = [event("ada@example.org", "dropped", reason="Unsubscribed Address")]

    first = post_signed(client, signer, batch)
    second = post_signed(client, signer, batch)

    assert first.json() == {"received": 1, "repeated": 0}
    assert second.json() == {"received": 1, "repeated": 1}
    with open_store(load_config(project)) as store:
        sources = [e.source for e in store.events("ada@example.org")]
    assert sources.count("sendgrid-webhook") == 1
    assert statuses(project, "ada@example.org")["ada@example.org"] is SubscriberStatus.UNSUBSCRIBED


def test_an_event_seen_before_is_skipped_even_beside_new_ones(
    project: Path, client: httpx.Client, signer: Signer
) -> None:
    add_subscriber(project, "ada@example.org")
    add_subscriber(project, "grace@example.org")
    unsubscribe = event("ada@example.org", "unsubscribe")
    post_signed(client, signer, [unsubscribe])
    with open_store(load_config(project)) as store:  # she asked to come back
        store.set_status("ada@example.org", SubscriberStatus.SUBSCRIBED, "cli", "rejoined")

    reply = post_signed(client, signer, [unsubscribe, event("grace@example.org", "spamreport")])

    assert reply.json() == {"received": 2, "repeated": 1}
    assert statuses(project, "ada@example.org", "grace@example.org") == {
        "ada@example.org": SubscriberStatus.SUBSCRIBED,
        "grace@example.org": SubscriberStatus.COMPLAINED,
    }


def test_events_without_an_id_are_still_applied_once(
    project: Path, client: httpx.Client, signer: Signer
) -> None:
    add_subscriber(project, "ada@example.org")
    bare = {"email": "ada@example.org", "event": "bounce", "type": "bounce"}

    replies = [post_signed(client, signer, [bare]).json() for _ in range(2)]

    assert replies == [{"received": 1, "repeated": 0}] * 2
    with open_store(load_config(project)) as store:
        sources = [e.source for e in store.events("ada@example.org")]
    assert sources.count("sendgrid-webhook") == 1


def test_the_answer_does_not_tell_a_known_address_from_an_unknown_one(
    project: Path, client: httpx.Client, signer: Signer
) -> None:
    add_subscriber(project, "ada@example.org")

    known = post_signed(client, signer, [event("ada@example.org", "spamreport")])
    unknown = post_signed(client, signer, [event("nobody@example.org", "spamreport")])

    assert (known.status_code, unknown.status_code) == (200, 200)
    assert known.content == unknown.content == b'{"received":1,"repeated":0}'
    assert statuses(project, "ada@example.org")["ada@example.org"] is SubscriberStatus.COMPLAINED


def test_bad_missing_or_stale_signatures_are_refused(
    project: Path, client: httpx.Client, signer: Signer
) -> None:
    add_subscriber(project, "ada@example.org")
    body = json.dumps([event("ada@example.org", "spamreport")]).encode()
    genuine = signer.headers(body)
    attempts = {
        "signed by another key": Signer().headers(body),
        "body altered after signing": genuine,
        "no signature headers": {"Content-Type": "application/json"},
        "signature not base64": {**genuine, SIGNATURE: "!!!"},
        "timestamp an hour old": signer.headers(body, timestamp=int(time.time()) - 3600),
        "timestamp not a number": {**genuine, TIMESTAMP: "soon"},
    }

    for name, headers in attempts.items():
        sent = body.replace(b"spamreport", b"unsubscribe") if "altered" in name else body
        reply = client.post(URL, content=sent, headers=headers)
        assert reply.status_code == 403, name
        assert reply.text.startswith("forbidden: "), name

    assert statuses(project, "ada@example.org")["ada@example.org"] is SubscriberStatus.SUBSCRIBED


def test_a_body_over_the_limit_is_refused_declared_or_streamed(
    client: httpx.Client, signer: Signer
) -> None:
    big = json.dumps([event(f"p{i}@example.org", "open") for i in range(100)]).encode()
    assert len(big) > MAX_BODY

    declared = client.post(URL, content=big, headers=signer.headers(big))
    streamed = client.post(URL, content=iter([big[:2000], big[2000:]]), headers=signer.headers(big))

    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert "body over 4096 bytes" in declared.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'[{"email": "ada@example.org", "event": ', "malformed JSON"),
        (b'{"email": "ada@example.org", "event": "bounce"}', "expected a JSON array"),
        (b'["bounce", 3]', "expected a JSON array of event objects"),
    ],
    ids=["truncated", "an object", "not objects"],
)
def test_a_body_that_is_not_an_event_batch_is_a_bad_request(
    client: httpx.Client, signer: Signer, body: bytes, message: str
) -> None:
    reply = client.post(URL, content=body, headers=signer.headers(body))

    assert reply.status_code == 400
    assert message in reply.text


def test_without_a_key_the_webhook_is_off_and_names_the_key_to_set(sample_project: Path) -> None:
    add_subscriber(sample_project, "ada@example.org")

    with running_app(sample_project) as client:
        reply = client.post(URL, json=[event("ada@example.org", "spamreport")])

    assert reply.status_code == 503
    assert "web.sendgrid_webhook_key" in reply.text
    assert "web.accept_unsigned_webhook_events" in reply.text
    status = statuses(sample_project, "ada@example.org")["ada@example.org"]
    assert status is SubscriberStatus.SUBSCRIBED


def test_unsigned_events_are_taken_only_when_the_config_opts_in(sample_project: Path) -> None:
    add_subscriber(sample_project, "ada@example.org")
    configure_web(sample_project, "accept_unsigned_webhook_events: true")

    with running_app(sample_project) as client:
        reply = client.post(URL, json=[event("ada@example.org", "spamreport")])

    assert reply.json() == {"received": 1, "repeated": 0}
    status = statuses(sample_project, "ada@example.org")["ada@example.org"]
    assert status is SubscriberStatus.COMPLAINED
    validated = run_cli(["validate", "--config", str(sample_project)])
    assert validated.exit_code == 0, validated.output
    assert "web.accept_unsigned_webhook_events is on" in validated.stderr


def test_with_a_key_the_opt_in_does_not_let_unsigned_events_through(
    project: Path, signer: Signer
) -> None:
    add_subscriber(project, "ada@example.org")
    configure_web(project, "accept_unsigned_webhook_events: true")

    with running_app(project) as client:
        unsigned = client.post(URL, json=[event("ada@example.org", "spamreport")])
        signed = post_signed(client, signer, [])

    assert (unsigned.status_code, signed.status_code) == (403, 200)
    assert statuses(project, "ada@example.org")["ada@example.org"] is SubscriberStatus.SUBSCRIBED


def test_the_key_can_come_from_the_environment(
    sample_project: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SENDGRID_WEBHOOK_KEY", signer.public_b64)
    configure_web(sample_project, "sendgrid_webhook_key: ${TEST_SENDGRID_WEBHOOK_KEY}")

    with running_app(sample_project) as client:
        signed = post_signed(client, signer, [])
        unsigned = client.post(URL, json=[])

    assert (signed.status_code, unsigned.status_code) == (200, 403)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("${UNSET_WEBHOOK_KEY_FOR_TEST}", "the environment variable UNSET_WEBHOOK_KEY_FOR_TEST"),
        ("bm90IGEga2V5", "web.sendgrid_webhook_key: not a valid public key"),
    ],
    ids=["unset variable", "not a key"],
)
def test_an_unusable_key_stops_the_server_from_starting(
    sample_project: Path, monkeypatch: pytest.MonkeyPatch, key: str, message: str
) -> None:
    monkeypatch.delenv("UNSET_WEBHOOK_KEY_FOR_TEST", raising=False)
    configure_web(sample_project, f"sendgrid_webhook_key: {key}")

    result = run_cli(["serve", "--config", str(sample_project)])

    assert result.exit_code == 2
    assert message in result.output


def serve_banner(project: Path) -> str:
    """What `newsletter serve` prints before it takes requests."""
    command = [sys.executable, "-m", "newsletter", "serve", "--config", str(project)]
    server = subprocess.Popen(
        [*command, "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = []
    try:
        assert server.stdout is not None
        for line in server.stdout:
            lines.append(line)
            if "Application startup complete" in line or "Uvicorn running" in line:
                break
    finally:
        server.terminate()
        server.communicate(timeout=10)
    return "".join(lines)


@pytest.mark.parametrize(
    ("settings", "shown", "warned"),
    [
        ([], "SendGrid Event Webhook: off (answers 503): set web.sendgrid_webhook_key", False),
        (["accept_unsigned_webhook_events: true"], "/webhooks/sendgrid, NOT verified", True),
        (["sendgrid_webhook_key: KEY"], "/webhooks/sendgrid, signatures verified", False),
    ],
    ids=["off", "unsigned", "verified"],
)
def test_serve_says_at_start_which_endpoints_are_live_and_whether_events_are_verified(
    sample_project: Path, signer: Signer, settings: list[str], shown: str, warned: bool
) -> None:
    configure_web(sample_project, *(line.replace("KEY", signer.public_b64) for line in settings))

    banner = serve_banner(sample_project)

    assert "  archive: / (index.html, feed.xml" in banner
    assert "  unsubscribe links: " in banner
    assert shown in banner
    assert ("web.accept_unsigned_webhook_events is on" in banner) is warned
