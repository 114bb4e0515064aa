"""A config checked before is read back from .newsletter/cache/config/ as the same settings,
and only while its text, the code and the variables it was expanded from are unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import REPO, edit
from newsletter.config import load_config, parse_config
from newsletter.errors import ConfigError
from newsletter.memo import cache_dir

WITH_EVERY_KIND = """\
newsletter:
  name: Leading Together
  site_url: https://example.org/
  language: fr
  sender: {name: Editors, address: news@bücher.example}
  postal_address: 1 Example Street
sources:
  - {name: blog, type: markdown, path: content, guest: {folders: [guest]}}
  - {name: partners, type: feed, url: "https://partner.example.net/feed.xml", timeout: 2.5}
authors:
  - {name: Ann Smith, role: Director, aliases: [asmith]}
lists:
  - {name: members}
provider:
  type: smtp
  smtp: {host: mail.example.org, password: "${SMTP_PASSWORD}"}
schedule: {cron: "0 8 * * 2", lists: [members]}
output:
  directory: ${ISSUES_DIR}
store:
  url: postgresql://newsletter:${PGPASSWORD}@db.example.org/newsletter
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ISSUES_DIR", "published")
    monkeypatch.setenv("SMTP_PASSWORD", "correct-horse-battery-staple")
    monkeypatch.setenv("PGPASSWORD", "tr0ub4dor-and-3")
    config = tmp_path / "newsletter.yml"
    config.write_text(WITH_EVERY_KIND, encoding="utf-8")
    return config


def kept(config: Path) -> list[Path]:
    return sorted((cache_dir(config.parent) / "config").glob("*.json"))


@pytest.mark.parametrize("text", [None, WITH_EVERY_KIND])
def test_a_config_read_back_is_the_config_checked(project: Path, text: str | None) -> None:
    config = project if text else REPO / "newsletter.yml"
    checked = parse_config(config.read_text(encoding="utf-8"))

    first, again = load_config(config).settings, load_config(config).settings

    assert kept(config)
    assert repr(first) == repr(checked) == repr(again)
    assert again == checked
    assert again.newsletter.sender.address == checked.newsletter.sender.address


def test_an_edited_config_is_checked_again(project: Path) -> None:
    load_config(project)
    edit(project, "timeout: 2.5", "timeout: -1")

    with pytest.raises(ConfigError) as caught:
        load_config(project)

    assert "newsletter.yml:9: sources[1].timeout" in str(caught.value)


def test_a_changed_variable_is_read_again(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config(project).settings.output.directory == "published"

    monkeypatch.setenv("ISSUES_DIR", "elsewhere")
    assert load_config(project).settings.output.directory == "elsewhere"

    monkeypatch.delenv("ISSUES_DIR")
    with pytest.raises(ConfigError, match="ISSUES_DIR is not set"):
        load_config(project)


def test_a_secret_is_neither_kept_nor_part_of_a_key(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_config(project)
    [entry] = kept(project)
    for secret in ("correct-horse-battery-staple", "tr0ub4dor-and-3"):
        assert secret not in entry.read_text(encoding="utf-8")
    for name in ("SMTP_PASSWORD", "PGPASSWORD"):
        assert name not in entry.read_text(encoding="utf-8").split('"settings"')[0]

    monkeypatch.setenv("SMTP_PASSWORD", "another")
    monkeypatch.setenv("PGPASSWORD", "another")
    load_config(project)

    assert kept(project) == [entry]  # the same entry answered: the secret is read when used


def test_an_entry_that_does_not_name_its_variables_is_not_trusted(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_config(project)
    [entry] = kept(project)
    settings = json.loads(entry.read_text(encoding="utf-8"))["settings"]
    entry.write_text(json.dumps({"settings": settings}), encoding="utf-8")

    monkeypatch.setenv("ISSUES_DIR", "elsewhere")

    assert load_config(project).settings.output.directory == "elsewhere"


SPOILS = {
    "not JSON": lambda text: "{",
    "another environment": lambda text: '{"variables": [], "environment": null}',
    "a section missing": lambda text: text.replace('"newsletter":', '"x":', 1),
    "an unknown source type": lambda text: text.replace('"type":"markdown"', '"type":"other"'),
}


@pytest.mark.parametrize("spoil", SPOILS.values(), ids=SPOILS.keys())
def test_an_entry_that_cannot_be_used_means_checking_again(
    project: Path, spoil: Callable[[str], str]
) -> None:
    checked = load_config(project).settings
    [entry] = kept(project)
    spoilt = spoil(entry.read_text(encoding="utf-8"))
    assert spoilt != entry.read_text(encoding="utf-8")
    entry.write_text(spoilt, encoding="utf-8")

    assert repr(load_config(project).settings) == repr(checked)
    assert entry.read_text(encoding="utf-8") != spoilt  # checked, and kept again
