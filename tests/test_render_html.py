"""The HTML body of an issue, rendered with the default templates from real posts."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from newsletter.config import LoadedConfig, parse_config
from newsletter.models import IssueMeta, Post, PostKind, RenderedIssue, Selection
from newsletter.render import Renderer, render_issue

DEFAULT_TEMPLATES = Path(__file__).parents[1] / "templates" / "default"
SITE = "https://leading-together.example.org"
VIEW_URL = f"{SITE}/newsletter/007-2026-11-24/email.html"

CONFIG = f"""
newsletter:
  name: Leading Together
  description: notes on leading teams
  site_url: {SITE}
  language: en-GB
  timezone: Europe/London
  sender: {{name: Leading Together, address: news@leading-together.example.org}}
  postal_address: "1 High Street, London N1 1AA"
sources: [{{type: markdown, name: blog, path: posts}}]
template:
  directory: {{directory}}
  theme: {{theme}}
"""


def loaded_config(
    template_dir: Path = DEFAULT_TEMPLATES, theme: str = "{}", tmp: Path | None = None
) -> LoadedConfig:
    text = CONFIG.replace("{directory}", str(template_dir)).replace("{theme}", theme)
    return LoadedConfig(settings=parse_config(text), path=(tmp or Path("/nonexistent")) / "n.yml")


def make_post(index: int, kind: PostKind = PostKind.POST, **changes: object) -> Post:
    fields: dict[str, object] = {
        "id": f"post-{index}",
        "source": "blog",
        "title": f"Post number {index} on trust in teams",
        "url": f"{SITE}/posts/{index}/",
        "published": datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
        "kind": kind,
        "author": f"Author {index}",
        "author_role": "Director of People" if kind is PostKind.GUEST else None,
        "summary": f"Summary {index}: " + "what good leaders do on an ordinary Tuesday. " * 4,
    }
    fields.update(changes)
    return Post(**fields)  # type: ignore[arg-type]


def make_selection(count: int = 6, guests: int = 2, **lead_changes: object) -> Selection:
    lead = make_post(0, **lead_changes)
    posts = tuple(make_post(i) for i in range(1, count - guests))
    guest_posts = tuple(make_post(i, PostKind.GUEST) for i in range(count - guests, count))
    return Selection(lead=lead, posts=posts, guests=guest_posts)


META = IssueMeta(
    number=7,
    date=date(2026, 11, 24),
    subject="Leading Together #7: trust",
    preheader="Trust, one-to-ones and the quiet work of leading.",
)


def render(selection: Selection | None = None, **config: object) -> RenderedIssue:
    return render_issue(loaded_config(**config), META, selection or make_selection(), VIEW_URL)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def issue() -> RenderedIssue:
    return render()


def hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html)


def test_html_is_a_complete_document_in_the_newsletter_language(issue: RenderedIssue) -> None:
    assert issue.html.lower().startswith("<!doctype html>")
    assert 'lang="en-GB"' in issue.html
    assert "<title>Leading Together #7: trust</title>" in issue.html
    assert "Trust, one-to-ones and the quiet work of leading." in issue.html  # preview text


def test_every_item_title_and_section_appears(issue: RenderedIssue) -> None:
    for post in issue.selection.items:
        assert post.title in issue.html
        assert f'href="{post.url}"' in issue.html
    assert "Director of People" in issue.html
    assert "LEAD STORY" in issue.html
    assert "GUEST COLUMNS" in issue.html
    assert "Read more" in issue.html
    assert "Issue 7" in issue.html and "24 November 2026" in issue.html
    assert "20 November 2026" in issue.html


def test_footer_says_why_and_how_to_leave(issue: RenderedIssue) -> None:
    assert "You are receiving this because you subscribed to Leading Together at" in issue.html
    assert "1 High Street, London N1 1AA" in issue.html
    assert "Hello %%first_name|there%%," in issue.html
    assert 'href="%%unsubscribe_url%%"' in issue.html
    assert hrefs(issue.html).count(VIEW_URL) == 2  # top bar and footer


def test_links_are_absolute_or_placeholders(issue: RenderedIssue) -> None:
    links = hrefs(issue.html)
    assert len(links) > 10
    for link in links:
        assert link.startswith("https://") or link == "%%unsubscribe_url%%", link


def test_no_template_syntax_left_and_no_font_host(issue: RenderedIssue) -> None:
    for marker in ("{{", "}}", "{%", "%}", "{#", "mj-"):
        assert marker not in issue.html.replace("mj-column", "").replace("mj-outlook", ""), marker
    assert "fonts.googleapis.com" not in issue.html


def test_css_is_inlined_but_media_queries_and_outlook_comments_stay(issue: RenderedIssue) -> None:
    assert "@media only screen and (max-width: 480px)" in issue.html
    assert "<!--[if mso" in issue.html
    body = issue.html.split("<body", 1)[1]
    assert 'style="' in body
    # the .headline a rule from mj-style is copied onto the title links
    title_link = re.search(r'<a href="https://[^"]*/posts/1/"[^>]*>', body)
    assert title_link is not None and "text-decoration:none" in title_link.group(0)


def test_titles_are_escaped_and_query_strings_survive() -> None:
    selection = make_selection(
        title="Tools <b>& tricks</b>", url=f"{SITE}/posts/tools/?utm=a&ref=b"
    )
    html = render(selection).html
    assert "Tools &lt;b&gt;&amp; tricks&lt;/b&gt;" in html
    assert "<b>& tricks" not in html
    assert f'href="{SITE}/posts/tools/?utm=a&amp;ref=b"' in html


def test_lead_image_and_logo_come_from_the_theme() -> None:
    theme = "{logo_url: 'https://cdn.example.org/logo.png', logo_alt: 'LT logo', logo_width: 120}"
    html = render(make_selection(image="https://cdn.example.org/lead.jpg"), theme=theme).html
    logo = re.search(r'<img[^>]*src="https://cdn.example.org/logo.png"[^>]*>', html)
    assert logo is not None
    assert 'alt="LT logo"' in logo.group(0) and 'width="120"' in logo.group(0)
    assert 'src="https://cdn.example.org/lead.jpg"' in html


def test_font_url_adds_the_font_and_colours_follow_the_theme() -> None:
    theme = (
        "{font_family: 'Inter, Arial, sans-serif', font_url: 'https://fonts.example.org/inter.css',"
        " accent_color: '#aa3311'}"
    )
    html = render(theme=theme).html
    assert "https://fonts.example.org/inter.css" in html
    assert "#aa3311" in html


def test_same_inputs_give_identical_bytes() -> None:
    selection = make_selection(20, 4)
    first = render(selection)
    second = Renderer(DEFAULT_TEMPLATES).render(loaded_config(), META, selection, VIEW_URL)
    assert first.html == second.html
    assert first.text == second.text


def test_twenty_items_stay_under_gmails_clip() -> None:
    # Speed is bench/bench_build.py's to measure, not a test's.
    selection = make_selection(20, 4)
    renderer = Renderer(DEFAULT_TEMPLATES)
    loaded = loaded_config()
    html = renderer.render(loaded, META, selection, VIEW_URL).html
    assert len(html.encode("utf-8")) < 102 * 1024  # Gmail clips larger messages


def test_an_issue_with_only_a_lead_story() -> None:
    lead = make_post(0, author=None, summary="")
    issue = render(Selection(lead=lead, posts=(), guests=()))
    assert lead.title in issue.html and lead.title in issue.text
    assert "GUEST COLUMNS" not in issue.html and "GUEST COLUMNS" not in issue.text
    assert "MORE FROM" not in issue.html and "MORE FROM" not in issue.text
    assert "By " not in issue.text
