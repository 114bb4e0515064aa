import email
import email.policy
from pathlib import Path

import pytest

from newsletter.config import OutboxSettings, ProviderSettings, load_config
from newsletter.errors import ProviderError, SendError
from newsletter.models import Recipient
from newsletter.providers import OutboxProvider, get_provider
from servers.samples import recipient, sample_issue


def _read(path: Path) -> email.message.EmailMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def test_each_recipient_becomes_a_parseable_eml_file(tmp_path: Path) -> None:
    settings = ProviderSettings(outbox=OutboxSettings(directory="out"))
    people = [recipient(1, "ann@example.com", "Ann Smith"), recipient(2, "bo@example.com")]
    with get_provider(settings, base_dir=tmp_path) as provider:
        results = provider.send(sample_issue(), people)

    assert [r.subscriber_id for r in results] == [1, 2]
    assert all(r.ok and r.error is None for r in results)
    assert results[0].provider_id == "001-2026-11-24/1-ann@example.com.eml"
    files = sorted(p.name for p in (tmp_path / "out" / "001-2026-11-24").iterdir())
    assert files == ["1-ann@example.com.eml", "2-bo@example.com.eml"]

    ann = _read(tmp_path / "out" / results[0].provider_id)
    assert ann["To"] == "Ann Smith <ann@example.com>"
    assert ann["Subject"] == "Issue #1 for Ann: leading together"
    text = ann.get_body(("plain",)).get_content()
    html = ann.get_body(("html",)).get_content()
    assert "Dear Ann," in text and "<p>Dear Ann,</p>" in html
    assert people[0].unsubscribe_url in text
    bo = _read(tmp_path / "out" / results[1].provider_id)
    assert bo["Subject"] == "Issue #1 for friends: leading together"
    assert "Dear reader," in bo.get_body(("plain",)).get_content()


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    with OutboxProvider(tmp_path) as provider:
        provider.send(sample_issue(), [recipient(3, "c@example.com", "Cy")])
    assert [p.name for p in (tmp_path / "001-2026-11-24").iterdir()] == ["3-c@example.com.eml"]


def test_unsafe_characters_in_addresses_stay_inside_the_folder(tmp_path: Path) -> None:
    odd = Recipient(4, "../../etc/x@example.com", "Odd")
    with OutboxProvider(tmp_path) as provider:
        [result] = provider.send(sample_issue(), [odd])
    assert result.ok
    written = tmp_path / result.provider_id
    assert written.is_file()
    assert written.parent == tmp_path / "001-2026-11-24"


def test_a_bad_recipient_fails_alone(tmp_path: Path) -> None:
    bad = recipient(5, "eve@example.com", "Eve\r\nBcc: all@example.com")
    good = recipient(6, "fay@example.com", "Fay")
    with OutboxProvider(tmp_path) as provider:
        results = provider.send(sample_issue(), [bad, good])
    assert results[0].ok is False
    assert "subscriber 5" in results[0].error and "line break" in results[0].error
    assert results[1].ok is True


def test_duplicate_address_in_one_batch_is_sent_once(tmp_path: Path) -> None:
    with OutboxProvider(tmp_path) as provider:
        results = provider.send(
            sample_issue(), [recipient(7, "g@example.com"), recipient(8, "G@example.com")]
        )
    assert [r.ok for r in results] == [True, False]
    assert "appears twice" in results[1].error


def test_oversized_batch_is_refused(tmp_path: Path) -> None:
    provider = OutboxProvider(tmp_path)
    people = [recipient(n, f"p{n}@example.com") for n in range(provider.max_batch_size + 1)]
    with provider, pytest.raises(SendError, match="split it"):
        provider.send(sample_issue(), people)


def test_unwritable_outbox_is_a_provider_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with OutboxProvider(blocker) as provider, pytest.raises(ProviderError, match="cannot write"):
        provider.send(sample_issue(), [recipient(1, "a@example.com")])


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
        [result] = provider.send(sample_issue(), [recipient(1, "a@example.com")])
    assert (config.parent / "sent-mail" / result.provider_id).is_file()
