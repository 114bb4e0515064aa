"""`newsletter init`: a newsletter of one's own that validates and builds as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from newsletter.config import Config, load_config, parse_config
from newsletter.config_docs import settings_of
from newsletter.packaged import packaged_template
from newsletter.scaffold import STARTER, starter_config


def test_init_writes_a_newsletter_that_validates_and_builds(tmp_path: Path) -> None:
    result = run_cli(["init", str(tmp_path / "ours")])
    assert result.exit_code == 0, result.output
    config = tmp_path / "ours" / "newsletter.yml"
    assert config.is_file()
    assert sorted(p.name for p in (tmp_path / "ours" / "content").glob("*.md"))
    assert not (tmp_path / "ours" / "templates").exists()
    commands = [line.split("#")[0].strip() for line in result.output.splitlines()[-3:]]
    assert commands == ["newsletter validate", "newsletter build", "newsletter preview"]
    assert f"cd {tmp_path / 'ours'}" in result.output

    assert load_config(config).template_dir == packaged_template()
    validated = run_cli(["validate", "--config", str(config)])
    assert validated.exit_code == 0, validated.output
    built = run_cli(["build", "--config", str(config), "--date", "2026-11-24"])
    assert built.exit_code == 0, built.output
    assert (tmp_path / "ours" / "issues" / "001-2026-11-24" / "email.html").is_file()


def test_the_written_config_is_the_starter_settings_and_the_schema_defaults() -> None:
    assert parse_config(starter_config()) == Config.model_validate(STARTER)


def test_every_key_of_the_written_config_has_a_comment_above_it() -> None:
    lines = starter_config().splitlines()
    keys = [n for n, line in enumerate(lines) if re.match(r"^ *(- )?[a-z_]+:", line)]
    assert len(keys) > 80
    for number in keys:
        assert lines[number - 1].lstrip().startswith("#"), f"no comment above {lines[number]!r}"


def test_every_setting_of_the_schema_says_what_it_does() -> None:
    """A new setting without a docstring would leave a key of the written config and of
    docs/config-reference.md unexplained."""
    missing = []

    def walk(model: type, path: str) -> None:
        for setting in settings_of(model):
            key = f"{path}{setting.name}"
            if not setting.description:
                missing.append(key)
            for inner in setting.models:
                walk(inner, key + ".")

    walk(Config, "")
    assert missing == []


def test_with_template_copies_the_template_and_the_config_uses_the_copy(tmp_path: Path) -> None:
    result = run_cli(["init", str(tmp_path), "--with-template"])
    assert result.exit_code == 0, result.output
    copied = tmp_path / "templates" / "default"
    assert (copied / "email.mjml.j2").read_bytes() == (
        packaged_template() / "email.mjml.j2"
    ).read_bytes()
    assert load_config(tmp_path / "newsletter.yml").template_dir == copied


@pytest.mark.parametrize("existing", ["newsletter.yml", "content", "templates"])
def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path, existing: str) -> None:
    if existing == "newsletter.yml":
        (tmp_path / existing).write_text("mine\n")
    else:
        (tmp_path / existing).mkdir()
    before = sorted(os.listdir(tmp_path))
    result = run_cli(["init", str(tmp_path), "--with-template"])
    assert result.exit_code == 2
    assert f"{tmp_path / existing} already exists" in result.output
    assert "choose another folder" in result.output
    assert sorted(os.listdir(tmp_path)) == before
    if existing == "newsletter.yml":
        assert (tmp_path / existing).read_text() == "mine\n"


def test_init_without_a_folder_writes_into_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli(["init"])
    assert result.exit_code == 0, result.output
    assert "cd " not in result.output
    assert yaml.safe_load((tmp_path / "newsletter.yml").read_text())["sources"][0]["path"] == (
        "content"
    )
