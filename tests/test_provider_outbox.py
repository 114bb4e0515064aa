import email
import email.policy
import os
import resource
import signal
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from newsletter.config import OutboxSettings, ProviderSettings, load_config
from newsletter.errors import ProviderError, SendError
from newsletter.message import PreparedIssue
from newsletter.providers import OutboxProvider, get_provider
from newsletter.send_models import Outcome
from servers.samples import deliver, outcomes, row, sample_issue, url_of

ISSUE_FOLDER = "001-2026-11-24"


def _read(path: Path) -> email.message.EmailMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def _files(folder: Path) -> list[str]:
    """Every file in the folder, hidden ones (an unfinished write's) included."""
    return sorted(path.name for path in folder.iterdir())


@contextmanager
def _file_size_limit(size: int) -> Iterator[None]:
    """Writes past ``size`` bytes fail with EFBIG, as on a full disk, part-way through."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_each_recipient_becomes_a_parseable_eml_file(tmp_path: Path) -> None:
    settings = ProviderSettings(outbox=OutboxSettings(directory="out"))
    people = [row(1, "ann@example.com", "Ann Smith"), row(2, "bo@example.com")]
    with get_provider(settings, base_dir=tmp_path) as provider:
        delivery = deliver(provider, people)

    assert outcomes(delivery) == {1: Outcome.ACCEPTED, 2: Outcome.ACCEPTED}
    assert delivery.halt is None and delivery.reason == ""
    assert delivery.provider_id == "outbox"
    folder = tmp_path / "out" / ISSUE_FOLDER
    assert _files(folder) == ["1-ann@example.com.eml", "2-bo@example.com.eml"]

    ann = _read(folder / "1-ann@example.com.eml")
    assert ann["To"] == "Ann Smith <ann@example.com>"
    assert ann["Subject"] == "Issue #1 for Ann: leading together"
    text = ann.get_body(("plain",)).get_content()
    html = ann.get_body(("html",)).get_content()
    assert "Dear Ann," in text and "<p>Dear Ann,</p>" in html
    assert url_of(people[0]) in text
    assert f'href="{url_of(people[0])}"' in html
    assert str(ann["List-Unsubscribe"]).startswith(f"<{url_of(people[0])}>,")
    bo = _read(folder / "2-bo@example.com.eml")
    assert bo["Subject"] == "Issue #1 for friends: leading together"
    assert "Dear reader," in bo.get_body(("plain",)).get_content()
    assert url_of(people[1]) in bo.get_body(("plain",)).get_content()


def test_messages_are_readable_by_their_owner_alone(tmp_path: Path) -> None:
    """They carry addresses and personal unsubscribe links."""
    previous = os.umask(0o022)
    try:
        with OutboxProvider(tmp_path / "out") as provider:
            deliver(provider, [row(4, "di@example.com", "Di")])
    finally:
        os.umask(previous)
    folder = tmp_path / "out" / ISSUE_FOLDER
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "4-di@example.com.eml").stat().st_mode) == 0o600


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    with OutboxProvider(tmp_path) as provider:
        deliver(provider, [row(3, "c@example.com", "Cy")])
    assert _files(tmp_path / ISSUE_FOLDER) == ["3-c@example.com.eml"]


def test_a_message_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    """A write that fails part-way (here: past the file size limit) leaves no half message
    under the recipient's name, keeps the messages written before it and stops the send."""
    issue = sample_issue(text=sample_issue().text + "%%biography|%%\n")
    people = [
        row(1, "ann@example.com", "Ann"),
        row(2, "bo@example.com", "Bo", biography="A long life. " * 80_000),
        row(3, "cy@example.com", "Cy"),
    ]
    folder = tmp_path / ISSUE_FOLDER
    folder.mkdir()
    with OutboxProvider(tmp_path) as provider, _file_size_limit(256 * 1024):
        delivery = deliver(provider, people, issue)

    assert outcomes(delivery) == {
        1: Outcome.ACCEPTED,
        2: Outcome.NOT_DELIVERED,
        3: Outcome.NOT_DELIVERED,
    }
    assert isinstance(delivery.halt, ProviderError)
    assert f"outbox: cannot write {folder / '2-bo@example.com.eml'}: File too large" in str(
        delivery.halt
    )
    assert _files(folder) == ["1-ann@example.com.eml"]
    assert "Dear Ann," in _read(folder / "1-ann@example.com.eml").get_body(("plain",)).get_content()


def test_unsafe_characters_in_addresses_stay_inside_the_folder(tmp_path: Path) -> None:
    odd = row(4, "../../etc/x@example.com", "Odd")
    with OutboxProvider(tmp_path) as provider:
        delivery = deliver(provider, [odd])
    assert outcomes(delivery) == {4: Outcome.ACCEPTED}
    [written] = (tmp_path / ISSUE_FOLDER).iterdir()
    assert written.is_file()
    assert written.name.startswith("4-") and written.name.endswith("_etc_x@example.com.eml")
    assert list(tmp_path.iterdir()) == [tmp_path / ISSUE_FOLDER]


def test_a_bad_recipient_fails_alone(tmp_path: Path) -> None:
    bad = row(5, "eve@example.com", "Eve\r\nBcc: all@example.com")
    good = row(6, "fay@example.com", "Fay")
    with OutboxProvider(tmp_path) as provider:
        delivery = deliver(provider, [bad, good])
    assert outcomes(delivery) == {5: Outcome.REFUSED, 6: Outcome.ACCEPTED}
    reason = delivery.outcome_of(5)[1]
    assert "eve@example.com" in reason and "line break" in reason
    assert delivery.halt is None
    assert _files(tmp_path / ISSUE_FOLDER) == ["6-fay@example.com.eml"]


def test_a_line_break_in_a_merge_value_of_the_subject_fails_alone(tmp_path: Path) -> None:
    issue = sample_issue(subject="%%city|Your%% news")
    people = [
        row(1, "ann@example.com", "Ann", city="Leeds\r\nBcc: all@example.com"),
        row(2, "bo@example.com", "Bo", city="York"),
    ]
    with OutboxProvider(tmp_path) as provider:
        delivery = deliver(provider, people, issue)
    assert outcomes(delivery) == {1: Outcome.REFUSED, 2: Outcome.ACCEPTED}
    assert "merge field 'city' is used in the Subject" in delivery.outcome_of(1)[1]
    assert _read(tmp_path / ISSUE_FOLDER / "2-bo@example.com.eml")["Subject"] == "York news"


def test_duplicate_address_in_one_batch_is_sent_once(tmp_path: Path) -> None:
    with OutboxProvider(tmp_path) as provider:
        delivery = deliver(provider, [row(7, "g@example.com"), row(8, "G@example.com")])
    assert outcomes(delivery) == {7: Outcome.ACCEPTED, 8: Outcome.REFUSED}
    assert "appears twice" in delivery.outcome_of(8)[1]
    assert _files(tmp_path / ISSUE_FOLDER) == ["7-g@example.com.eml"]


def test_oversized_batch_is_refused(tmp_path: Path) -> None:
    provider = OutboxProvider(tmp_path)
    people = [row(n, f"p{n}@example.com") for n in range(provider.max_batch_size + 1)]
    with provider, pytest.raises(SendError, match="split it"):
        deliver(provider, people)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_outbox_stops_the_send_with_nothing_delivered(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with OutboxProvider(blocker) as provider:
        delivery = deliver(provider, [row(1, "a@example.com"), row(2, "b@example.com")])
    assert outcomes(delivery) == {1: Outcome.NOT_DELIVERED, 2: Outcome.NOT_DELIVERED}
    assert isinstance(delivery.halt, ProviderError)
    assert "cannot write" in str(delivery.halt)
    assert "check provider.outbox.directory and its permissions" in str(delivery.halt)
    assert "cannot write" in delivery.reason
    assert blocker.read_text() == "not a folder"


def test_nothing_is_written_once_the_send_has_stopped(tmp_path: Path) -> None:
    with OutboxProvider(tmp_path) as provider:
        delivery = provider.deliver(
            PreparedIssue(sample_issue()), [row(1, "a@example.com")], going_out=lambda: False
        )
    assert outcomes(delivery) == {1: Outcome.NOT_DELIVERED}
    assert "the send stopped" in delivery.reason
    assert delivery.halt is None
    assert not (tmp_path / ISSUE_FOLDER).exists()


def test_outbox_from_newsletter_yml_is_beside_the_file(tmp_path: Path) -> None:
    config = tmp_path / "site" / "newsletter.yml"
    config.parent.mkdir()
    config.write_text(
        "newsletter:\n"
        "  name: Leading Together\n"
        "  site_url: https://leading-together.example.org\n"
        "  sender: {name: Leading Together, address: news@leading-together.example.org}\n"
        "  postal_address: 1 High Street, Leeds\n"
        "sources:\n"
        "  - {type: markdown, name: posts, path: posts}\n"
        "provider:\n"
        "  outbox: {directory: sent-mail}\n",
        encoding="utf-8",
    )
    provider = get_provider(load_config(config))
    assert isinstance(provider, OutboxProvider)
    with provider:
        delivery = deliver(provider, [row(1, "a@example.com")])
    assert outcomes(delivery) == {1: Outcome.ACCEPTED}
    assert (config.parent / "sent-mail" / ISSUE_FOLDER / "1-a@example.com.eml").is_file()
