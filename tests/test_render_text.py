"""The plain-text body: same content as the HTML, wrapped, with numbered link references."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.models import PostKind, RenderedIssue, Selection
from newsletter.render import render_issue
from newsletter.render.environment import wrap_text
from test_render_errors import VALID_MJML, templates
from test_render_html import (
    META,
    SITE,
    VIEW_URL,
    loaded_config,
    make_post,
    make_selection,
    render,
)


@pytest.fixture(scope="module")
def issue() -> RenderedIssue:
    return render(make_selection(20, 4))


def references(text: str) -> dict[int, str]:
    listed = text.split("\nLinks\n-----\n", 1)[1]
    return {int(n): url for n, url in re.findall(r"^\[(\d+)\] (\S+)$", listed, re.MULTILINE)}


def test_every_item_is_there_with_its_author(issue: RenderedIssue) -> None:
    for post in issue.selection.items:
        assert post.title in issue.text
        assert post.author in issue.text
    for guest in issue.selection.guests:
        assert f"{guest.author}, Director of People" in issue.text
    assert META.preheader in issue.text
    assert f"View in your browser: {VIEW_URL}" in issue.text
    assert "Issue 7 - 24 November 2026" in issue.text


def test_summaries_are_present_once_wrapped(issue: RenderedIssue) -> None:
    flowing = " ".join(issue.text.split())
    for post in issue.selection.items:
        assert " ".join(post.summary.split()) in flowing


def test_links_are_numbered_in_reading_order(issue: RenderedIssue) -> None:
    refs = references(issue.text)
    items = issue.selection.items
    assert refs == {n: post.url for n, post in enumerate(items, start=1)}
    for number, post in enumerate(items, start=1):
        assert re.search(rf"{re.escape(post.title)}\s+\[{number}\]", issue.text), post.title


def test_a_repeated_url_keeps_its_number() -> None:
    lead = make_post(0)
    twin = make_post(1, title="Same link again", url=lead.url)
    other = make_post(2, PostKind.GUEST)
    text = render(Selection(lead=lead, posts=(twin,), guests=(other,))).text
    assert references(text) == {1: lead.url, 2: other.url}
    assert re.search(r"Same link again\s+\[1\]", text)


def test_lines_fit_76_columns_except_long_urls(issue: RenderedIssue) -> None:
    for line in issue.text.splitlines():
        assert len(re.sub(r"https?://\S+", "URL", line)) <= 76, line
    long_url = f"{SITE}/posts/" + "very-long-slug-" * 8
    text = render(make_selection(url=long_url)).text
    assert f"[1] {long_url}" in text  # never broken across lines


def test_footer_and_placeholders(issue: RenderedIssue) -> None:
    assert "Unsubscribe: %%unsubscribe_url%%" in issue.text
    assert "Hello %%first_name|there%%," in issue.text
    assert "You are receiving this because you subscribed to Leading Together" in issue.text
    assert "1 High Street, London N1 1AA" in issue.text


def test_text_is_not_html_escaped_and_has_no_template_syntax() -> None:
    text = render(make_selection(title='Tools <b>& "tricks"')).text
    assert 'Tools <b>& "tricks"' in text
    assert not re.search(r"&(?:amp|lt|gt|quot|#\d+);", text)
    for marker in ("{{", "{%", "{#"):
        assert marker not in text
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert not re.search(r"[ \t]$", text, re.MULTILINE)


def test_wrap_keeps_paragraphs_and_indents() -> None:
    wrapped = wrap_text("one two three four\n\nfive six", width=10, indent="  ")
    assert wrapped == "  one two\n  three\n  four\n\n  five six"


def test_merge_fields_of_the_whole_issue_are_filled_when_rendering(tmp_path: Path) -> None:
    text = "Read online: {{ merge('view_url') }}\nHi {{ merge('first_name', 'there') }}\n"
    mjml = VALID_MJML.replace("</mj-body>", "<mj-section><mj-column><mj-text>"
                              "<a href=\"{{ merge('view_url') }}\">web</a></mj-text></mj-column>"
                              "</mj-section></mj-body>")  # fmt: skip
    rendered = render_issue(
        loaded_config(templates(tmp_path, mjml=mjml, text=text)), META, make_selection(), VIEW_URL
    )
    assert f"Read online: {VIEW_URL}\n" in rendered.text
    assert "Hi %%first_name|there%%" in rendered.text
    assert f'href="{VIEW_URL}"' in rendered.html
    assert "%%view_url" not in rendered.html + rendered.text
