"""The whole loop with real parts: a timer's `run` mails the list through an SMTP server on
loopback, a subscriber clicks one-click unsubscribe in their mail client, and the next
slot's `run` does not mail them."""

from __future__ import annotations

from pathlib import Path

import yaml

from conftest import run_cli
from newsletter.config import load_config
from newsletter.store import open_store
from servers.smtp_sink import SmtpSink
from servers.web_app import running_app


def test_run_send_unsubscribe_and_the_next_run(members_project: Path) -> None:
    with SmtpSink() as sink:
        data = yaml.safe_load(members_project.read_text(encoding="utf-8"))
        data["provider"] = {
            "type": "smtp",
            "smtp": {"host": sink.host, "port": sink.port, "security": "none"},
        }
        members_project.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

        first = run_cli(["run", "--config", str(members_project), "--now", "2026-11-24T08:03"])
        assert first.exit_code == 0, first.output
        assert "issue 001-2026-11-24 sent: 25 sent" in first.stdout
        first_round = sink.by_recipient()
        assert len(first_round) == 25

        # Chloe's mail client uses the List-Unsubscribe header: an RFC 8058 one-click POST.
        message = first_round["chloe.martin@example.net"].message()
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = message["List-Unsubscribe"].split(",")[0].strip().strip("<>")
        path = "/unsubscribe/" + link.rsplit("/unsubscribe/", 1)[1]
        with running_app(members_project) as web:
            page = web.get(path)
            assert page.status_code == 200  # a GET only asks
            with open_store(load_config(members_project)) as store:
                assert store.get("chloe.martin@example.net").status == "subscribed"
            clicked = web.post(
                path,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert clicked.status_code == 200
        with open_store(load_config(members_project)) as store:
            chloe = store.get("chloe.martin@example.net")
            assert store.status_on(chloe.id, "members") == "unsubscribed"
            assert store.events(chloe.id)[-1].source == "one-click"

        sink.received.clear()
        second = run_cli(["run", "--config", str(members_project), "--now", "2026-12-01T08:03"])
        assert second.exit_code == 0, second.output
        assert "issue 002-2026-12-01 sent: 24 sent" in second.stdout
        second_round = sink.by_recipient()
        assert len(second_round) == 24
        assert "chloe.martin@example.net" not in second_round
        subject = second_round["amira.haddad@example.org"].message()["Subject"]
        assert subject.startswith("Leading Together #2:")
