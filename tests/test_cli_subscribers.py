"""``newsletter subscribers ...`` as a user runs it: exit codes and what is printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.addresses import refusals
from newsletter.cli.subscribers import subscribers
from newsletter.send_models import SubscriberStatus
from newsletter.store import Store
from newsletter.store.subscribers import NewSubscriber

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "subscribers.csv"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    text = (ROOT / "newsletter.yml").read_text(encoding="utf-8")
    text, replaced = re.subn(r"(?m)^(  path: )newsletter\.db$", r"\1data/subscribers.db", text)
    assert replaced == 1
    path = tmp_path / "newsletter.yml"
    path.write_text(text, encoding="utf-8")
    return path


def run(config: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(subscribers, [*args, "--config", str(config)], input=input)


def store_of(config: Path) -> Store:
    return Store.open(config.parent / "data" / "subscribers.db")


def test_import_prints_counts_and_is_idempotent(config: Path) -> None:
    result = run(config, "import", str(SAMPLE), "--list", "members")
    assert result.exit_code == 0, result.output
    assert "25 rows; 25 added, 0 updated, 0 unchanged" in result.output
    again = run(config, "import", str(SAMPLE))  # the config's only list is the default
    assert again.exit_code == 0
    assert "0 added, 0 updated, 25 unchanged" in again.output
    with store_of(config) as store:
        assert store.count("members") == 25


def test_import_lists_bad_rows_with_line_numbers(config: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "email,name\nann@example.org,Ann\nnot-an-address,Bob\nann@example.org,Ann 2\n"
    )
    result = run(config, "import", str(csv_file), "--list", "members")
    assert result.exit_code == 0
    assert "1 added" in result.output
    assert f"{csv_file}:3: 'not-an-address' is not a valid e-mail address" in result.output
    assert f"{csv_file}:4: ann@example.org is a duplicate of line 2" in result.output


def test_import_of_an_unusable_file_fails_with_the_store_status(
    config: Path, tmp_path: Path
) -> None:
    no_email = tmp_path / "no-email.csv"
    no_email.write_text("address,name\nann@example.org,Ann\n")
    result = run(config, "import", str(no_email), "--list", "members")
    assert result.exit_code == 6
    assert "no e-mail column; columns found: 'address', 'name'" in result.stderr
    mapped = run(config, "import", str(no_email), "--map", "address=email")
    assert mapped.exit_code == 0
    assert "1 added" in mapped.output

    all_bad = tmp_path / "all-bad.csv"
    all_bad.write_text("email\nnope\n")
    failed = run(config, "import", str(all_bad))
    assert failed.exit_code == 6
    assert f"{all_bad}:2: 'nope' is not a valid e-mail address" in failed.stdout
    assert "none of its 1 rows could be imported" in failed.stderr

    bad_map = run(config, "import", str(all_bad), "--map", "email")
    assert bad_map.exit_code == 2
    assert "expected NAME=VALUE" in bad_map.output


def test_unknown_list_is_refused(config: Path) -> None:
    result = run(config, "import", str(SAMPLE), "--list", "membres")
    assert result.exit_code == 6
    assert "no list named 'membres' (lists: members)" in result.stderr


def test_add_unsubscribe_and_no_silent_resubscribe(config: Path) -> None:
    added = run(config, "add", "Ann@Example.org", "--name", "Ann", "--attr", "team=ops")
    assert added.exit_code == 0, added.output
    assert "added Ann@example.org on 'members' (subscribed)" in added.output
    assert "updated" in run(config, "add", "ann@example.org", "--name", "Ann B").output

    gone = run(config, "unsubscribe", "ann@example.org")
    assert gone.exit_code == 0
    assert "unsubscribed Ann@example.org" in gone.output
    assert "already unsubscribed" in run(config, "unsubscribe", "ann@example.org").output

    refused = run(config, "add", "ann@example.org")
    assert refused.exit_code == 6
    assert "is unsubscribed and is not added back" in refused.stderr
    assert "--force" in refused.stderr
    assert run(config, "add", "ann@example.org", "--force").exit_code == 0
    with store_of(config) as store:
        ann = store.get("ann@example.org")
        assert (ann.name, ann.status, ann.attributes) == (
            "Ann B",
            SubscriberStatus.SUBSCRIBED,
            {"team": "ops"},
        )

    invalid = run(config, "add", "ann@@example.org")
    assert invalid.exit_code == 2
    assert "'ann@@example.org' is not a valid e-mail address" in invalid.stderr


def test_add_refuses_what_no_transport_can_carry_and_stores_nothing(config: Path) -> None:
    non_ascii = run(config, "add", "josé@example.org", "--name", "José")
    assert non_ascii.exit_code == 2
    assert non_ascii.stderr == (
        "error: josé@example.org: the part before @ has non-ASCII characters (é); newsletter "
        "sends only to ASCII mailboxes, ask the person for another address\n"
    )
    broken_name = run(config, "add", "eve@example.org", "--name", "Eve\nBcc: all@example.com")
    assert broken_name.exit_code == 2
    assert broken_name.stderr == (
        "error: eve@example.org: the name 'Eve\\nBcc: all@example.com' contains a line break "
        "(CR or LF), which an e-mail header cannot carry; correct the name\n"
    )
    broken_attribute = run(config, "add", "eve@example.org", "--attr", "team=Ops\r\nX: 1")
    assert broken_attribute.exit_code == 2
    assert "the attribute 'team' ('Ops\\r\\nX: 1') contains a line break" in (
        broken_attribute.stderr
    )
    with store_of(config) as store:
        assert store.count() == 0

    idn = run(config, "add", "ann@bücher.de", "--name", "Okafor, Ann")
    assert idn.exit_code == 0, idn.output
    assert idn.output == "added ann@xn--bcher-kva.de on 'members' (subscribed)\n"
    with store_of(config) as store:
        ann = store.get("ann@bücher.de")
        assert (ann.email, ann.name) == ("ann@xn--bcher-kva.de", "Okafor, Ann")


def test_import_lists_rows_no_transport_can_carry(config: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "email,name\nann@example.org,Ann\njosé@example.org,José\nbob@example.org,Bob\x00\n",
        encoding="utf-8",
    )
    result = run(config, "import", str(csv_file), "--list", "members")
    assert result.exit_code == 0
    assert "3 rows; 1 added, 0 updated, 0 unchanged, 0 skipped (left earlier), 2 invalid" in (
        result.output
    )
    assert (
        f"{csv_file}:3: josé@example.org: the part before @ has non-ASCII characters (é); "
        "newsletter sends only to ASCII mailboxes, ask the person for another address"
    ) in result.output
    assert (
        f"{csv_file}:4: bob@example.org: the name 'Bob\\x00' contains a NUL character "
        "(U+0000), which an e-mail header cannot carry; correct the name"
    ) in result.output
    with store_of(config) as store:
        assert [s.email for s in store.subscribers_of("members")] == ["ann@example.org"]


def test_addresses_stored_before_the_checks_can_still_be_removed(config: Path) -> None:
    assert run(config, "add", "ann@example.org").exit_code == 0
    with store_of(config) as store:  # as an older version stored them, unchecked
        store.upsert_many(
            [NewSubscriber("josé@example.org"), NewSubscriber("ben@bücher.de")], "members"
        )
        rows = [(s.id, s.email, s.name) for s in store.subscribers_of("members")]
    emails = {subscriber_id: email for subscriber_id, email, _ in rows}
    refused = {emails[subscriber_id]: reason for subscriber_id, reason in refusals(rows).items()}
    assert sorted(refused) == ["ben@bücher.de", "josé@example.org"]
    assert "ask the person for another address" in refused["josé@example.org"]
    assert refused["ben@bücher.de"].endswith("remove the subscriber and add them again")

    removed = run(config, "remove", "josé@example.org", "--yes")
    assert removed.exit_code == 0, removed.output
    assert removed.output == "removed josé@example.org and their history\n"
    gone = run(config, "remove", "BEN@BÜCHER.DE", "--yes")
    assert gone.exit_code == 0, gone.output
    assert run(config, "add", "ben@bücher.de").exit_code == 0
    with store_of(config) as store:
        members = [(s.id, s.email, s.name) for s in store.subscribers_of("members")]
    assert [email for _, email, _ in members] == ["ann@example.org", "ben@xn--bcher-kva.de"]
    assert refusals(members) == {}


def test_list_and_export(config: Path, tmp_path: Path) -> None:
    run(config, "import", str(SAMPLE))
    run(config, "unsubscribe", "ben.okafor@example.com")
    listed = run(config, "list", "--list", "members", "--status", "unsubscribed")
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].split() == ["EMAIL", "NAME", "STATUS"]
    assert lines[1].split() == ["ben.okafor@example.com", "Ben", "Okafor", "unsubscribed"]
    assert lines[-1] == "1 unsubscribed subscriber(s) on 'members'"
    assert run(config, "list").output.splitlines()[-1] == "25 subscriber(s)"

    out = tmp_path / "export.csv"
    exported = run(config, "export", "-o", str(out))
    assert exported.exit_code == 0
    assert f"wrote 25 subscribers of 'members' to {out}" in exported.stderr
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "email,name,status,organisation"
    assert "zoe.fischer@example.org,Zoë Fischer,subscribed,Harbour Schools Partnership" in text
    to_stdout = run(config, "export", "--status", "unsubscribed")
    assert to_stdout.stdout.splitlines()[1].startswith("ben.okafor@example.com,Ben Okafor,")


def test_remove_asks_and_deletes(config: Path) -> None:
    run(config, "add", "ann@example.org")
    declined = run(config, "remove", "ann@example.org", input="n\n")
    assert declined.exit_code == 1
    assert "Delete ann@example.org and all their history for good?" in declined.output
    removed = run(config, "remove", "ann@example.org", input="y\n")
    assert removed.exit_code == 0
    assert "removed ann@example.org" in removed.output
    missing = run(config, "remove", "ann@example.org", "--yes")
    assert missing.exit_code == 6
    assert "no subscriber 'ann@example.org'" in missing.stderr


@pytest.mark.parametrize("command", ["import", "export", "add", "remove", "unsubscribe", "list"])
def test_every_command_explains_itself(command: str) -> None:
    result = CliRunner().invoke(subscribers, [command, "--help"])
    assert result.exit_code == 0
    assert "--config" in result.output
    assert len(result.output.split("Options:")[0].split()) > 8
