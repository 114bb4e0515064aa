"""Built-in merge fields belong to the tool: no CSV column or attribute can take their place."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from conftest import SAMPLE_ISSUE, run_cli
from newsletter import merge
from newsletter.errors import ImportFileError, InvalidRecipient
from newsletter.store import Store, import_csv


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(tmp_path / "store.db")
    opened.ensure_list("members")
    return opened


def csv_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "people.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("column", ["unsubscribe_url", "Unsubscribe URL", "view_url"])
def test_a_column_named_like_a_built_in_field_refuses_the_file(
    store: Store, tmp_path: Path, column: str
) -> None:
    path = csv_file(tmp_path, f"email,name,{column}\nann@example.org,Ann,https://evil.example/\n")
    with pytest.raises(ImportFileError) as caught:
        import_csv(store, path, "members")
    field = column.lower().replace(" ", "_")
    assert str(caught.value) == (
        f"{path}: the column '{column}' would be kept as the attribute '{field}', but that is "
        "a built-in merge field (email, first_name, name, unsubscribe_url, view_url) which "
        "the tool fills itself\n"
        f"  hint: rename the column, leave it out with --map '{column}=-', or keep it under "
        f"another name with --map '{column}=NEW_NAME'"
    )
    assert store.count() == 0


def test_a_second_column_for_a_field_refuses_the_file(store: Store, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "Email Address,name,email\nann@example.org,Ann,eve@example.org\n")
    with pytest.raises(ImportFileError, match="the column 'email' would fill 'email' again, "
                       "which column 'Email Address' fills already"):  # fmt: skip
        import_csv(store, path, "members")
    assert store.count() == 0


def test_map_keeps_such_a_column_under_another_name(store: Store, tmp_path: Path) -> None:
    path = csv_file(
        tmp_path, "email,name,unsubscribe_url\nann@example.org,Ann,https://x.example/\n"
    )
    report = import_csv(store, path, "members", mapping={"unsubscribe_url": "old_link"})
    assert report.added == 1
    assert store.get("ann@example.org").attributes == {"old_link": "https://x.example/"}
    with pytest.raises(ImportFileError, match="'unsubscribe_url' would be kept as the attribute"):
        import_csv(store, path, "members", mapping={"unsubscribe_url": "unsubscribe_url"})


def test_add_refuses_an_attribute_named_like_a_built_in_field(store: Store) -> None:
    for name in sorted(merge.BUILT_IN_FIELDS):
        with pytest.raises(InvalidRecipient, match=f"the attribute '{name}' has the name of a "
                           "built-in merge field"):  # fmt: skip
            store.add("ann@example.org", "Ann", "members", {name: "x"})
    assert store.get("ann@example.org") is None


def test_subscribers_add_names_the_attribute(members_project: Path) -> None:
    result = run_cli(
        ["subscribers", "add", "eve@example.org", "--attr", "unsubscribe_url=https://evil.example/",
         "--config", str(members_project), "--list", "members"]
    )  # fmt: skip
    assert result.exit_code == 2
    assert "the attribute 'unsubscribe_url' has the name of a built-in merge field" in (
        result.output
    )
    with Store.open(members_project.parent / "newsletter.db") as store:
        assert store.get("eve@example.org") is None


def test_an_attribute_stored_before_the_rule_never_replaces_the_real_link(
    built_project: Path,
) -> None:
    """A store imported before built-in names were refused may hold such attributes."""
    with Store.open(built_project.parent / "newsletter.db") as store, store.db.transaction():
        store.db.execute(
            "UPDATE subscribers SET attributes = ? WHERE email = ?",
            ('{"unsubscribe_url": "https://evil.example/", "first_name": "Mallory"}',
             "ben.okafor@example.com"),
        )  # fmt: skip
    sent = run_cli(["send", SAMPLE_ISSUE, "--config", str(built_project), "--list", "members"])
    assert sent.exit_code == 0, sent.output
    outbox = built_project.parent / "outbox" / SAMPLE_ISSUE
    (path,) = [p for p in outbox.glob("*.eml") if "ben.okafor" in p.read_text()]
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "evil.example" not in text + html and "Mallory" not in text + html
    link = str(message["List-Unsubscribe"]).split(">")[0].lstrip("<")
    assert f"Unsubscribe: {link}" in text
    assert f'href="{link}"' in html
