"""newsletter.yml validation: every message names the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.config import load_config, parse_config, resolve_secret
from newsletter.errors import ConfigError
from newsletter.packaged import packaged_template

REPO = Path(__file__).resolve().parents[1]

MINIMAL = """\
newsletter:
  name: Leading Together
  site_url: https://example.org
  sender: {name: Editors, address: news@example.org}
  postal_address: 1 Example Street
sources:
  - name: blog
    type: markdown
    path: content
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "newsletter.yml")
    return caught.value.problems


def test_the_bundled_config_is_valid() -> None:
    loaded = load_config(REPO / "newsletter.yml")
    assert loaded.settings.newsletter.language == "en-GB"
    assert [s.name for s in loaded.settings.sources] == ["blog", "partners"]
    assert loaded.issues_dir == REPO / "issues"


def test_minimal_config_gets_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.selection.posts == 5
    assert config.provider.type == "outbox"
    assert config.newsletter.public_archive_url == "https://example.org/newsletter"


def test_yaml_syntax_error_names_the_line() -> None:
    found = problems(MINIMAL + "selection:\n  posts: [5\n")
    assert len(found) == 1
    assert found[0].startswith("newsletter.yml:12: YAML syntax error")


def test_misspelt_key_suggests_the_closest() -> None:
    found = problems(MINIMAL + "selection:\n  guest_colums: 2\n")
    assert found == [
        "newsletter.yml:11: selection.guest_colums: unknown key; did you mean 'guest_columns'?"
    ]


def test_unknown_key_without_a_close_match() -> None:
    found = problems(MINIMAL + "colour_scheme: dark\n")
    assert found == ["newsletter.yml:10: colour_scheme: unknown key; remove it"]


def test_wrong_type_says_what_was_expected_and_what_was_given() -> None:
    found = problems(MINIMAL + "selection:\n  posts: ten\n")
    assert found == ["newsletter.yml:11: selection.posts: expected a whole number, got 'ten'"]


def test_missing_required_field_names_its_parent_line() -> None:
    text = MINIMAL.replace("  postal_address: 1 Example Street\n", "")
    assert problems(text) == [
        "newsletter.yml:1: newsletter.postal_address: required but missing; add it"
    ]


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    text = MINIMAL.replace("type: markdown", "type: markdwn") + "selection:\n  posts: -1\n"
    found = problems(text)
    assert (
        found[0]
        == "newsletter.yml:8: sources[0].type: expected 'markdown' or 'feed', got 'markdwn'"
    )
    assert found[1].startswith("newsletter.yml:11: selection.posts: input should be greater than")
    assert len(found) == 2


def test_secrets_must_be_environment_references() -> None:
    found = problems(MINIMAL + "provider:\n  sendgrid:\n    api_key: SG.abc123\n")
    assert len(found) == 1
    assert found[0].startswith("newsletter.yml:12: provider.sendgrid.api_key: secrets never live")


def test_secret_reference_is_resolved_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NL_TEST_KEY", "s3cret")
    assert resolve_secret("${NL_TEST_KEY}", field="provider.sendgrid.api_key") == "s3cret"
    monkeypatch.delenv("NL_TEST_KEY")
    with pytest.raises(ConfigError, match="the environment variable NL_TEST_KEY is not set"):
        resolve_secret("${NL_TEST_KEY}", field="provider.sendgrid.api_key")


def test_bad_values_are_explained() -> None:
    text = MINIMAL.replace("https://example.org", "example.org").replace(
        "news@example.org", "not-an-address"
    )
    text += "newsletter_extra: 1\n"
    found = problems(text)
    assert any("newsletter.site_url: expected an http(s) URL" in p for p in found)
    assert (
        "newsletter.yml:4: newsletter.sender.address: 'not-an-address' is not a valid e-mail "
        "address: An email address must have an @-sign."
    ) in found


def test_sender_and_reply_to_are_checked_as_the_message_writer_would() -> None:
    text = MINIMAL.replace(
        "{name: Editors, address: news@example.org}",
        '{name: "Editors\\r\\nBcc: all@example.com", address: news@example.org}',
    )
    assert problems(text) == [
        "newsletter.yml:4: newsletter.sender.name: the sender name "
        "'Editors\\r\\nBcc: all@example.com' contains a line break (CR or LF), which an "
        "e-mail header cannot carry; correct the sender name"
    ]
    text = MINIMAL.replace("address: news@example.org", "address: josé@example.org")
    text += 'unsubscribe:\n  mailto: "leave\\x00@example.org"\n'
    assert problems(text) == [
        "newsletter.yml:4: newsletter.sender.address: josé@example.org: the part before @ has "
        "non-ASCII characters (é); newsletter sends only to ASCII mailboxes, ask the person "
        "for another address",
        "newsletter.yml:11: unsubscribe.mailto: 'leave\\x00@example.org' is not a valid e-mail "
        "address: The email address contains invalid characters before the @-sign: U+0000.",
    ]


def test_the_newsletter_name_must_fit_in_the_list_id_header() -> None:
    text = MINIMAL.replace("name: Leading Together", 'name: "Leading\\nTogether"')
    assert problems(text) == [
        "newsletter.yml:2: newsletter.name: the newsletter name 'Leading\\nTogether' contains "
        "a line break (CR or LF), which an e-mail header cannot carry; correct the newsletter "
        "name"
    ]


def test_internationalised_domains_are_kept_in_the_form_every_transport_carries() -> None:
    text = MINIMAL.replace("address: news@example.org", "address: news@bücher.de")
    text = text.replace("  postal_address", "  reply_to: Editors@Bücher.de\n  postal_address")
    newsletter = parse_config(text).newsletter
    assert newsletter.sender.address == "news@xn--bcher-kva.de"
    assert newsletter.reply_to == "Editors@xn--bcher-kva.de"


def test_unknown_time_zone() -> None:
    found = problems(
        MINIMAL.replace("  postal_address", "  timezone: Europe/Londn\n  postal_address")
    )
    assert found == [
        "newsletter.yml:5: newsletter.timezone: expected an IANA time zone such as "
        "'Europe/London', got 'Europe/Londn'"
    ]


def test_duplicate_source_names() -> None:
    text = MINIMAL + "  - name: blog\n    type: feed\n    url: feed.xml\n"
    assert any("the name 'blog' is used twice" in p for p in problems(text))


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "newsletter.yml")
    assert "file not found" in str(caught.value)
    assert str(tmp_path / "newsletter.yml") in str(caught.value)


def test_a_file_that_is_not_a_mapping() -> None:
    assert problems("- just\n- a list\n") == [
        "newsletter.yml:1: expected a mapping of settings (newsletter:, sources:, ...)"
    ]


def test_paths_resolve_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "newsletter.yml").write_text(MINIMAL)
    (tmp_path / "templates" / "default").mkdir(parents=True)
    loaded = load_config(tmp_path / "newsletter.yml")
    assert loaded.resolve("content") == tmp_path / "content"
    assert loaded.template_dir == tmp_path / "templates" / "default"


def test_the_default_template_is_the_packaged_one_when_none_is_beside_the_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "newsletter.yml").write_text(MINIMAL)
    loaded = load_config(tmp_path / "newsletter.yml")
    assert loaded.template_dir == packaged_template()
    assert (loaded.template_dir / "email.mjml.j2").is_file()


def test_a_template_folder_named_by_hand_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "newsletter.yml").write_text(MINIMAL + "template:\n  directory: mine\n")
    loaded = load_config(tmp_path / "newsletter.yml")
    assert loaded.template_dir == tmp_path / "mine"


@pytest.mark.parametrize(
    ("extra", "key", "path"),
    [
        ("store:\n  path: issues/newsletter.db\n", "store.path", "issues/newsletter.db"),
        ("store:\n  path: ./issues/../issues/x.db\n", "store.path", "./issues/../issues/x.db"),
        ("provider:\n  outbox:\n    directory: issues/outbox\n", "provider.outbox.directory",
         "issues/outbox"),
        ("output:\n  directory: .\n", "store.path", "newsletter.db"),
    ],
    ids=["store", "store via ..", "outbox", "published project folder"],
)  # fmt: skip
def test_the_store_and_the_outbox_may_not_live_in_the_published_folder(
    extra: str, key: str, path: str
) -> None:
    found = problems(MINIMAL + extra)

    assert any(
        f"{key}: {path!r} is inside output.directory" in p and "which is published" in p
        for p in found
    ), found


def test_a_store_beside_the_issues_folder_is_fine() -> None:
    config = parse_config(
        MINIMAL + "store:\n  path: data/issues.db\noutput:\n  directory: issues\n"
    )
    assert config.store.path == "data/issues.db"
