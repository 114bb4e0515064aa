"""The default theme: readable colours and a preheader that neither repeats nor hides badly."""

from __future__ import annotations

import json
import re
from html import escape as html_escape
from pathlib import Path

import pytest

from conftest import run_cli
from newsletter.config import Theme, load_config
from newsletter.contrast import AA_SMALL, contrast_ratio, relative_luminance
from newsletter.sources import read_sources

WHITE = "#ffffff"
THEME = Theme()


@pytest.mark.parametrize(
    ("foreground", "background", "where"),
    [
        (THEME.text_color, WHITE, "body text"),
        (THEME.muted_color, WHITE, "bylines and dates"),
        (THEME.muted_color, THEME.background_color, "the view-in-browser bar and footer"),
        (THEME.accent_color, WHITE, "kicker labels and 'read more' links"),
        (WHITE, THEME.accent_color, "button text"),
        (THEME.primary_color, WHITE, "links and the masthead"),
    ],
)
def test_every_default_pair_reaches_wcag_aa_for_small_text(
    foreground: str, background: str, where: str
) -> None:
    assert contrast_ratio(foreground, background) >= AA_SMALL, where


def test_contrast_matches_known_values() -> None:
    assert contrast_ratio("#000", "#fff") == pytest.approx(21.0)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast_ratio("#c8553d", "#ffffff") == pytest.approx(4.35, abs=0.01)
    assert relative_luminance("#ffffff") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="is not a colour"):
        relative_luminance("red")


def test_the_preheader_names_the_other_items_and_is_hidden_without_a_colour_trick(
    built_project: Path,
) -> None:
    folder = next((built_project.parent / "issues").glob("001-*"))
    issue = json.loads((folder / "issue.json").read_text(encoding="utf-8"))
    html = (folder / "email.html").read_text(encoding="utf-8")
    lead, *others = issue["items"]
    assert issue["preheader"] == "Also inside: " + " · ".join(item["title"] for item in others)
    hidden = re.search(r'<div style="(display:none[^"]*)">Also inside: ', html)
    assert hidden is not None
    assert "mso-hide:all" in hidden.group(1) and "max-height:0" in hidden.group(1)
    assert "color" not in hidden.group(1)
    # The lead's summary appears once, in its place, not again at the top.
    posts = {
        post.id: post
        for result in read_sources(load_config(built_project))
        for post in result.posts
    }
    summary = posts[lead["id"]].summary
    assert summary and html.count(html_escape(summary[:60], quote=False)) == 1


def test_a_preheader_of_its_own_is_used(members_project: Path) -> None:
    text = members_project.read_text(encoding="utf-8")
    members_project.write_text(
        re.sub(r"  preheader: .*\n", '  preheader: "Our winter issue, {{ issue.number }}"\n', text),
        encoding="utf-8",
    )
    result = run_cli(["build", "--config", str(members_project), "--date", "2026-11-24"])
    assert result.exit_code == 0, result.output
    folder = next((members_project.parent / "issues").glob("001-*"))
    assert "Our winter issue, 1" in (folder / "email.html").read_text(encoding="utf-8")
