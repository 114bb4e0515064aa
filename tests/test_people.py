"""Authors from the config's list, on items of every source; one byline everywhere."""

from __future__ import annotations

import re
import shutil
import textwrap
from datetime import date
from pathlib import Path

import pytest

from newsletter.build import build_issue
from newsletter.config import LoadedConfig, parse_config
from newsletter.errors import ConfigError
from newsletter.sources import read_sources

REPO = Path(__file__).resolve().parents[1]

FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Partners</title><link>https://partners.example.org</link><description>x</description>
<item><title>What winter taught us</title><link>https://partners.example.org/winter</link>
<guid>w1</guid><pubDate>Mon, 23 Nov 2026 09:00:00 +0000</pubDate><dc:creator>asmith</dc:creator>
<category>guest</category><description>Lessons from a hard winter.</description></item>
<item><title>Budgets, plainly</title><link>https://partners.example.org/budgets</link>
<guid>b1</guid><pubDate>Sun, 22 Nov 2026 09:00:00 +0000</pubDate>
<dc:creator>  BEN   okafor </dc:creator><description>What the numbers say.</description></item>
<item><title>Data that saves lives</title><link>https://partners.example.org/data</link>
<guid>d1</guid><pubDate>Sat, 21 Nov 2026 09:00:00 +0000</pubDate>
<description>Sharing well.</description></item>
<item><title>An old column</title><link>https://partners.example.org/2015</link>
<guid>o1</guid><pubDate>Tue, 03 Mar 2015 09:00:00 +0000</pubDate><dc:creator>Cy Jones</dc:creator>
<category>guest</category><description>From the archive.</description></item>
</channel></rss>
"""

AUTHORS = """\
authors:
  - name: Ann Smith
    role: Director of Nursing
    organisation: Leeds Teaching Hospitals
    link: https://partners.example.org/people/ann
    photo: https://partners.example.org/people/ann.jpg
    aliases: [asmith]
  - name: Ben Okafor
    role: Finance Lead
"""


def project(tmp_path: Path, authors: str = AUTHORS) -> LoadedConfig:
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / "feed.xml").write_text(FEED, encoding="utf-8")
    text = (
        textwrap.dedent(
            """\
        newsletter:
          name: Test Letter
          language: en-GB
          site_url: https://example.org
          sender: {name: Test, address: news@example.org}
          postal_address: 1 Test Street, Testville
        selection: {guest_columns: 2}
        sources:
          - {name: partners, type: feed, url: feed.xml, guest: {tags: [guest]}}
        """
        )
        + authors
    )
    path = tmp_path / "newsletter.yml"
    path.write_text(text, encoding="utf-8")
    return LoadedConfig(settings=parse_config(text), path=path)


def posts_by_title(loaded: LoadedConfig) -> dict[str, object]:
    return {post.title: post for result in read_sources(loaded) for post in result.posts}


def test_feed_authors_are_matched_by_alias_and_by_name_ignoring_case_and_spaces(
    tmp_path: Path,
) -> None:
    posts = posts_by_title(project(tmp_path))
    ann, ben, nobody, cy = (
        posts[title]
        for title in ("What winter taught us", "Budgets, plainly", "Data that saves lives",
                      "An old column")
    )  # fmt: skip
    assert (ann.author, ann.author_role, ann.author_organisation) == (
        "Ann Smith", "Director of Nursing", "Leeds Teaching Hospitals",
    )  # fmt: skip
    assert ann.author_photo == "https://partners.example.org/people/ann.jpg"
    assert (ben.author, ben.author_role, ben.author_organisation) == (
        "Ben Okafor", "Finance Lead", None,
    )  # fmt: skip
    assert nobody.author is None
    assert (cy.author, cy.author_role) == ("Cy Jones", None)  # not on the list: left as it is


def test_one_byline_in_every_section_and_both_versions(tmp_path: Path) -> None:
    rendered = build_issue(project(tmp_path), on=date(2026, 11, 24), dry_run=True).rendered
    html, text = rendered.html, rendered.text
    ann = "By Ann Smith, Director of Nursing, Leeds Teaching Hospitals · 23 November 2026"
    ben = "By Ben Okafor, Finance Lead · 22 November 2026"
    old = "By Cy Jones · 3 March 2015"  # a column from 2015 says so
    for line in (ann, ben, old, "21 November 2026"):
        assert line in html and line in " ".join(text.split()), line
    # Every byline has the one shape: "By who · date" or the date alone.
    found = re.findall(r">\s*((?:By [^<·]+ · )?\d{1,2} \w+ \d{4})\s*<", html)
    assert len(found) == 4 and set(found) == {ann, ben, old, "21 November 2026"}
    assert 'alt="Ann Smith"' in html and "people/ann.jpg" in html


def test_what_an_item_says_of_itself_wins(tmp_path: Path) -> None:
    loaded = project(tmp_path)
    folder = tmp_path / "posts"
    folder.mkdir()
    (folder / "note.md").write_text(
        "---\ntitle: A note\ndate: 2026-11-20\nauthor: ann smith\n"
        "author_role: Chief Nurse\n---\nBody.\n",
        encoding="utf-8",
    )
    text = loaded.path.read_text(encoding="utf-8").replace(
        "sources:\n", "sources:\n  - {name: notes, type: markdown, path: posts}\n"
    )
    loaded = LoadedConfig(settings=parse_config(text), path=loaded.path)
    note = posts_by_title(loaded)["A note"]
    assert (note.author, note.author_role, note.author_organisation) == (
        "Ann Smith", "Chief Nurse", "Leeds Teaching Hospitals",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("authors", "message"),
    [
        ("authors:\n  - {name: Ann}\n  - {name: ' ann '}\n", "the name 'ann' is used twice"),
        (
            "authors:\n  - {name: Ann, aliases: [bo]}\n  - {name: Bo}\n",
            "the name 'bo' is used twice",
        ),
        ("authors:\n  - {name: Ann, photo: ann.jpg}\n", "expected an http(s) URL"),
        ("authors:\n  - {role: Director}\n", "newsletter.yml:11: authors[0].name: required"),
    ],
)
def test_a_bad_authors_list_is_a_config_error(tmp_path: Path, authors: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        project(tmp_path, authors)
    assert message in str(caught.value)
