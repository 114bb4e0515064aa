"""Unconfirmed recipients are named, settled by SendGrid's Event Webhook, and re-sent only
when asked: a lost reply never turns into a second copy by itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from conftest import SAMPLE_ISSUE, configure, ledger_counts, run_cli
from servers.sendgrid_fake import Reply
from servers.web_app import running_app
from test_web_webhooks import Signer, configure_web

ISSUE = SAMPLE_ISSUE


def send(config: Path, *extra: str) -> Any:
    return run_cli(["send", ISSUE, "--config", str(config), "--list", "members", *extra])


def report(config: Path, *extra: str) -> dict[str, Any]:
    shown = run_cli(["report", ISSUE, "--config", str(config), "--json", *extra])
    assert shown.exit_code == 0, shown.output
    return orjson.loads(shown.stdout)


def test_a_lost_reply_is_unconfirmed_then_settled_by_events_and_resent_only_if_asked(
    built_project: Path, sendgrid_api: Any
) -> None:
    config, fake = built_project, sendgrid_api.mail
    signer = Signer()
    configure_web(config, f"sendgrid_webhook_key: {signer.public_b64}")
    fake.script(Reply(), Reply(drop=True))  # SendGrid took the second request; the answer is lost
    first = send(config)
    assert first.exit_code == 11, first.output
    assert "complete, with unconfirmed recipients" in first.stdout
    lost = fake.requests[1].body
    lost_people = [(p["to"][0]["email"], p["custom_args"]["sid"])
                   for p in lost["personalizations"]]  # fmt: skip
    listed = report(config)
    assert listed["status"] == "complete-with-unconfirmed"
    assert sorted(r["email"] for r in listed["recipients"]) == sorted(e for e, _ in lost_people)
    assert all("no answer came" in r["error"] for r in listed["recipients"])

    # A rerun does not send to them: their outcome is unknown, not "not delivered".
    again = send(config)
    assert again.exit_code == 11 and "sent 0" in again.stdout
    assert len(fake.requests) == 3

    # SendGrid reports what it did with the lost request: the events settle the ledger.
    category = lost["categories"][0]
    assert category == ISSUE
    events = [
        {"email": email, "event": "processed", "sid": sid, "category": lost["categories"],
         "sg_event_id": f"p-{sid}", "timestamp": 1_795_000_000}
        for email, sid in lost_people[:7]
    ] + [  # named subscriber_id, as in the events of sends before "sid"
        {"email": lost_people[7][0], "event": "dropped", "reason": "Bounced Address",
         "subscriber_id": lost_people[7][1], "category": category, "sg_event_id": "d-1",
         "timestamp": 1_795_000_000}
    ]  # fmt: skip
    body = json.dumps(events).encode()
    assert ledger_counts(config)["unconfirmed"] == 10
    with running_app(config) as client:
        reply = client.post("/webhooks/sendgrid", content=body, headers=signer.headers(body))
        assert reply.status_code == 200
        counts = ledger_counts(config)
        assert (counts["sent"], counts["refused"], counts["unconfirmed"]) == (22, 1, 2)
        twice = client.post("/webhooks/sendgrid", content=body, headers=signer.headers(body))
        assert twice.json() == {"received": 8, "repeated": 8}
    assert ledger_counts(config) == counts
    still = {r["email"] for r in report(config, "--state", "unconfirmed")["recipients"]}
    assert still == {email for email, _ in lost_people[8:]}

    # Asked explicitly, the two still unconfirmed go again, and nobody else.
    resent = send(config, "--resend-unconfirmed")
    assert resent.exit_code == 0, resent.output
    assert "sent 2" in resent.stdout
    last = fake.requests[-1].body["personalizations"]
    assert sorted(p["to"][0]["email"] for p in last) == sorted(still)
    assert report(config)["status"] == "complete"


def test_report_lists_as_csv_with_formulas_defused(built_project: Path, sendgrid_api: Any) -> None:
    config, fake = built_project, sendgrid_api.mail
    configure(
        config,
        sending={"max_attempts": 1},
        provider={"type": "sendgrid", "sendgrid": {"host": sendgrid_api.url, "batch_size": 100}},
    )
    run_cli(["subscribers", "add", "=cmd@example.org", "--name", "=HYPERLINK(1)",
             "--list", "members", "--config", str(config)])  # fmt: skip
    fake.script(Reply(drop=True))
    send(config)
    shown = run_cli(["report", ISSUE, "--config", str(config), "--csv", "--state", "unconfirmed"])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == "email,state,list,error,updated_at,subscriber_id,batch"
    assert len(lines) == 1 + 26
    assert all(",unconfirmed,members," in line for line in lines[1:])
    assert '"\'=cmd@example.org",unconfirmed' in shown.stdout  # marked as text, quoted
    assert not any(line.startswith("=") for line in lines)
