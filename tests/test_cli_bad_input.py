"""Every kind of bad input the composer meets: a clear message, a non-zero exit, nothing written.

These drive the real ``newsletter build`` command on a copy of the sample project,
breaking one thing at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import closed_port, edit, run_cli

ON = "2026-11-24"


def yaml_syntax(config: Path) -> None:
    edit(config, "  posts: 5\n", "  posts: [5\n")


def misspelt_key(config: Path) -> None:
    edit(config, "  guest_columns: 2", "  guest_colums: 2")


def wrong_type(config: Path) -> None:
    edit(config, "  posts: 5\n", "  posts: five\n")


def missing_field(config: Path) -> None:
    edit(config, "  postal_address: Leading Together Network", "  # postal_address: x")


def missing_source_path(config: Path) -> None:
    edit(config, "path: samples/content", "path: samples/no-such-folder")


def unreachable_feed(config: Path) -> None:
    edit(config, "url: samples/partners-feed.xml", f"url: http://127.0.0.1:{closed_port()}/feed")


def malformed_feed(config: Path) -> None:
    (config.parent / "samples" / "partners-feed.xml").write_text("this is not a feed <<<")


def feed_item_without_date(config: Path) -> None:
    feed = config.parent / "samples" / "partners-feed.xml"
    text = feed.read_text(encoding="utf-8")
    start = text.index("<pubDate>")
    end = text.index("</pubDate>") + len("</pubDate>")
    feed.write_text(text[:start] + text[end:], encoding="utf-8")


def invalid_front_matter(config: Path) -> None:
    post = sorted((config.parent / "samples" / "content").glob("*.md"))[0]
    text = post.read_text(encoding="utf-8")
    post.write_text(text.replace("title:", "title: [unclosed", 1), encoding="utf-8")


def missing_template(config: Path) -> None:
    (config.parent / "templates" / "default" / "email.mjml.j2").unlink()


def jinja_syntax(config: Path) -> None:
    template = config.parent / "templates" / "default" / "email.mjml.j2"
    template.write_text(template.read_text() + "\n{% if %}\n")


def undefined_variable(config: Path) -> None:
    template = config.parent / "templates" / "default" / "email.mjml.j2"
    edit(template, '">{{ lead.title }}</a>', '">{{ lead.titel }}</a>')


def invalid_mjml(config: Path) -> None:
    template = config.parent / "templates" / "default" / "email.mjml.j2"
    template.write_text("<mjml><mj-body><mj-section>\n")


def lead_post(config: Path) -> Path:
    """The newest sample post, dated after every other item so it leads (and titles) the issue."""
    post = sorted((config.parent / "samples" / "content").glob("*.md"))[-1]
    edit(post, "date: 2026-11-17 07:45", "date: 2026-11-23 07:45")
    return post


def retitle_the_lead(config: Path, separator: str) -> tuple[str, str]:
    """Put ``separator`` (YAML double-quoted) between the lead's first word and the rest."""
    post = lead_post(config)
    title = next(line for line in post.read_text().splitlines() if line.startswith("title: "))
    first, rest = title.removeprefix("title: ").split(" ", 1)
    edit(post, title, f'title: "{first}{separator}{rest}"')
    return first, rest


def control_character_in_the_subject(config: Path) -> None:
    retitle_the_lead(config, " \\x96 ")  # a Windows-1252 dash read as Latin-1: U+0096


def line_break_in_the_sender_name(config: Path) -> None:
    edit(config, "    name: Leading Together\n", '    name: "Leading Together\\r\\nBcc: x@y.org"\n')


def unwritable_output(config: Path) -> None:
    (config.parent / "blocker").write_text("a file where a folder should be")
    edit(config, "directory: issues", "directory: blocker/issues")


CASES: list[tuple[Callable[[Path], None], int, list[str]]] = [
    (yaml_syntax, 2, ["newsletter.yml:", "YAML syntax error"]),
    (misspelt_key, 2, ["selection.guest_colums: unknown key; did you mean 'guest_columns'?"]),
    (wrong_type, 2, ["selection.posts: expected a whole number, got 'five'"]),
    (missing_field, 2, ["newsletter.postal_address: required but missing"]),
    (missing_source_path, 3, ["blog", "no-such-folder"]),
    (unreachable_feed, 3, ["partners", "http://127.0.0.1:"]),
    (malformed_feed, 3, ["partners"]),
    (missing_template, 4, ["email.mjml.j2", "template.directory"]),
    (jinja_syntax, 4, ["email.mjml.j2:"]),
    (undefined_variable, 4, ["email.mjml.j2:", "titel"]),
    (invalid_mjml, 4, ["email.mjml.j2", "MJML"]),
    (
        control_character_in_the_subject,
        4,
        [
            "newsletter.yml: issue.subject: the subject 'Leading Together #1: Sharing \\x96 data",
            "contains a control character (U+0096); a subject must be one line of printable text",
            "hint: remove the character from the post title",
        ],
    ),
    (line_break_in_the_sender_name, 2, ["newsletter.yml:11: newsletter.sender.name:"]),
    (unwritable_output, 5, ["blocker"]),
]


@pytest.mark.parametrize(
    ("breakage", "status", "fragments"), CASES, ids=[case[0].__name__ for case in CASES]
)
def test_bad_input_fails_clearly_and_writes_nothing(
    sample_project: Path, breakage: Callable[[Path], None], status: int, fragments: list[str]
) -> None:
    breakage(sample_project)
    result = run_cli(["build", "--config", str(sample_project), "--date", ON])
    assert result.exit_code == status, result.output
    assert result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    issues = sample_project.parent / "issues"
    assert not issues.exists() or not any(p.name.startswith("0") for p in issues.iterdir())


@pytest.mark.parametrize("breakage", [feed_item_without_date, invalid_front_matter])
def test_a_broken_item_is_skipped_with_a_warning(
    sample_project: Path, breakage: Callable[[Path], None]
) -> None:
    breakage(sample_project)
    result = run_cli(["build", "--config", str(sample_project), "--date", ON])
    assert result.exit_code == 0, result.output
    assert "warning: source '" in result.stderr
    assert (sample_project.parent / "issues" / f"001-{ON}" / "issue.json").is_file()


@pytest.mark.parametrize("breakage", [feed_item_without_date, invalid_front_matter])
def test_strict_turns_a_skipped_item_into_an_error(
    sample_project: Path, breakage: Callable[[Path], None]
) -> None:
    breakage(sample_project)
    result = run_cli(["build", "--config", str(sample_project), "--date", ON, "--strict"])
    assert result.exit_code == 3, result.output
    assert not (sample_project.parent / "issues").exists()


def test_script_and_onclick_in_a_post_are_removed_not_fatal(sample_project: Path) -> None:
    post = sorted((sample_project.parent / "samples" / "content").glob("*.md"))[0]
    post.write_text(
        post.read_text(encoding="utf-8")
        + '\n<script>alert("x")</script><p onclick="steal()">Click</p>'
        '<a href="javascript:alert(1)">bad link</a>\n',
        encoding="utf-8",
    )
    result = run_cli(["build", "--config", str(sample_project), "--date", ON])
    assert result.exit_code == 0, result.output
    html = (sample_project.parent / "issues" / f"001-{ON}" / "email.html").read_text()
    assert "<script" not in html
    assert "onclick" not in html
    assert "javascript:" not in html


def test_a_line_break_in_a_post_title_is_folded_into_a_one_line_subject(
    sample_project: Path,
) -> None:
    first, rest = retitle_the_lead(sample_project, "\\r\\n")
    result = run_cli(["build", "--config", str(sample_project), "--date", ON])
    assert result.exit_code == 0, result.output
    subject = f"Leading Together #1: {first} {rest}"
    assert f"  subject:   {subject}\n" in result.stdout
    issue = sample_project.parent / "issues" / f"001-{ON}" / "issue.json"
    assert json.loads(issue.read_text(encoding="utf-8"))["subject"] == subject


def test_validate_refuses_a_sender_name_no_header_can_carry(sample_project: Path) -> None:
    line_break_in_the_sender_name(sample_project)
    result = run_cli(["validate", "--config", str(sample_project)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {sample_project}: invalid configuration:\n"
        f"  {sample_project}:11: newsletter.sender.name: the sender name "
        "'Leading Together\\r\\nBcc: x@y.org' contains a line break (CR or LF), which an "
        "e-mail header cannot carry; correct the sender name\n"
    )


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_cli(["build", "--config", str(tmp_path / "nope.yml")])
    assert result.exit_code == 2
    assert "file not found" in result.stderr
