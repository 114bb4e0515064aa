"""docs/config-reference.md is the schema's own account of itself, kept current."""

from __future__ import annotations

from conftest import REPO
from newsletter.config import WebSettings
from newsletter.config_docs import reference_markdown, settings_of


def test_the_committed_reference_matches_the_schema() -> None:
    committed = (REPO / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert committed == reference_markdown(), (
        "docs/config-reference.md is out of date: run scripts/config-reference and commit it"
    )


def test_the_reference_has_a_row_for_every_setting_with_its_default_and_words() -> None:
    text = reference_markdown()
    port = next(s for s in settings_of(WebSettings) if s.name == "port")
    row = f"| `port` | whole number, at least 1, at most 65535 | `8080` | {port.description} |"
    assert row in text
    assert "| `type` | one of `outbox`, `smtp`, `sendgrid` | `outbox` |" in text
    assert "## `provider.smtp`" in text
    assert "## `sources[] (type: feed)`" in text
    assert "| `site_url` | string | required |" in text
