"""Erasure and access from the command line: forget, show --json, and imports that
cannot bring an erased person back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import build_first_issue, import_members, run_cli, use_store
from newsletter.config import load_config
from newsletter.send_models import SubscriberStatus
from newsletter.signup import ConfirmSigner, confirm_signup, request_signup
from newsletter.store import open_store

AMIRA = "amira.haddad@example.org"


def cli(config: Path, *args: str) -> tuple[int, str]:
    result = run_cli([*args, "--config", str(config)])
    return result.exit_code, result.output


@pytest.fixture
def sent_project(built_project: Path) -> Path:
    """25 members, issue 1 sent to them through the outbox."""
    code, output = cli(built_project, "send", "--list", "members")
    assert code == 0, output
    return built_project


def test_show_prints_everything_held_as_json(sent_project: Path) -> None:
    with open_store(load_config(sent_project)) as store:
        store.unsubscribe(AMIRA, "web", "list members", list_name="members")

    code, output = cli(sent_project, "subscribers", "show", AMIRA, "--json")

    assert code == 0, output
    held = json.loads(output)
    assert set(held) == {
        "id", "email", "name", "status", "attributes", "source", "created_at", "updated_at",
        "lists", "history", "consents", "sends", "erased_at",
    }  # fmt: skip
    assert (held["email"], held["name"], held["status"]) == (AMIRA, "Amira Haddad", "subscribed")
    assert held["attributes"] == {"organisation": "Northfield Borough Council"}
    assert held["lists"][0]["list"] == "members" and held["lists"][0]["status"] == "unsubscribed"
    assert [(h["status"], h["list"]) for h in held["history"]] == [
        ("subscribed", None),
        ("unsubscribed", "members"),
    ]
    assert held["sends"] == [
        {"issue": "001-2026-11-24", "list": "members", "state": "sent", "attempts": 0,
         "at": held["sends"][0]["at"]},
    ]  # fmt: skip
    assert held["erased_at"] is None


def test_forget_deletes_every_trace_and_keeps_a_keyed_hash(sent_project: Path) -> None:
    store_path = load_config(sent_project).store_path

    code, output = cli(sent_project, "subscribers", "forget", AMIRA, "--yes")

    assert code == 0, output
    assert f"erased {AMIRA}: everything held about them was deleted" in output
    with open_store(load_config(sent_project)) as store:
        assert store.get(AMIRA) is None
        rows = store.db.all("SELECT address_hash FROM erasures")
        assert len(rows) == 1 and AMIRA not in rows[0][0]
        assert store.count() == 24
        assert store.db.scalar("SELECT COUNT(*) FROM send_ledger") == 24
    raw = b"".join(p.read_bytes() for p in store_path.parent.glob(store_path.name + "*"))
    for trace in (AMIRA, "Amira Haddad", "amira"):
        assert trace.encode() not in raw, trace
    code, output = cli(sent_project, "subscribers", "show", AMIRA, "--json")
    assert code == 0
    assert json.loads(output)["held"] == "a keyed hash only"


def test_an_import_refuses_an_erased_person_by_line_and_reason(
    members_project: Path, tmp_path: Path
) -> None:
    cli(members_project, "subscribers", "forget", "Ben.Okafor@example.com", "-y")
    csv = tmp_path / "again.csv"
    csv.write_text(
        "email,name\nnew.person@example.org,New Person\nben.okafor@example.com,Ben\n",
        encoding="utf-8",
    )

    code, output = cli(members_project, "subscribers", "import", str(csv), "--list", "members")

    assert code == 0, output
    assert f"{csv}:3: ben.okafor@example.com was erased at their request on " in output
    assert "is not added back; they can return by signing up themselves" in output
    assert "1 erased earlier" in output
    with open_store(load_config(members_project)) as store:
        assert store.get("ben.okafor@example.com") is None
        assert store.get("new.person@example.org") is not None
    forced = cli(members_project, "subscribers", "import", str(csv), "--list", "members", "--force")
    assert "1 erased earlier" in forced[1]


def test_add_refuses_an_erased_person_unless_forced(members_project: Path) -> None:
    cli(members_project, "subscribers", "forget", AMIRA, "-y")

    refused = cli(members_project, "subscribers", "add", AMIRA, "--list", "members")
    forced = cli(members_project, "subscribers", "add", AMIRA, "--list", "members", "--force")

    assert refused[0] == 6 and "was erased at their request on" in refused[1]
    assert forced[0] == 0, forced[1]
    with open_store(load_config(members_project)) as store:
        assert store.db.scalar("SELECT COUNT(*) FROM erasures") == 0


def test_forgetting_someone_never_stored_still_keeps_them_out(members_project: Path) -> None:
    code, output = cli(members_project, "subscribers", "forget", "zed@example.org", "-y")

    assert code == 0 and "nobody was stored" in output
    added = cli(members_project, "subscribers", "add", "zed@example.org", "--list", "members")
    assert added[0] == 6


def test_show_of_nobody_says_so(members_project: Path) -> None:
    code, output = cli(members_project, "subscribers", "show", "nobody@example.org")

    assert code == 6
    assert "no subscriber 'nobody@example.org' in the store" in output


def test_their_own_confirmed_sign_up_brings_an_erased_person_back(members_project: Path) -> None:
    loaded = load_config(members_project)
    with open_store(loaded) as store:
        store.ensure_list("guests")
    cli(members_project, "subscribers", "forget", AMIRA, "-y")
    with open_store(loaded) as store:
        made = request_signup(store, AMIRA, "Amira", ["guests"], "form", "0" * 64)
        assert made is not None
        signer = ConfirmSigner("secret")
        confirm_signup(store, signer, signer.make(made), 3600)
        assert store.status_on(AMIRA, "guests") is SubscriberStatus.SUBSCRIBED
        assert store.db.scalar("SELECT COUNT(*) FROM erasures") == 0


def test_forget_and_show_work_alike_on_each_backend(
    sample_project: Path, store_location: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the deleted rows are vacuumed away rather than overwritten in a file;
    what the commands answer and what the store keeps are the same."""
    use_store(sample_project, store_location, monkeypatch)
    build_first_issue(import_members(sample_project))
    assert cli(sample_project, "send", "--list", "members")[0] == 0

    code, output = cli(sample_project, "subscribers", "forget", AMIRA, "--yes")

    assert code == 0, output
    with open_store(load_config(sample_project)) as store:
        assert store.get(AMIRA) is None
        assert store.count() == 24
        assert store.db.scalar("SELECT COUNT(*) FROM send_ledger") == 24
        assert store.db.scalar("SELECT COUNT(*) FROM erasures") == 1
    code, output = cli(sample_project, "subscribers", "show", AMIRA, "--json")
    assert code == 0, output
    assert json.loads(output)["held"] == "a keyed hash only"
    code, output = cli(sample_project, "subscribers", "add", AMIRA, "--list", "members")
    assert code == 6 and "was erased at their request on" in output
