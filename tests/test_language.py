"""The newsletter's language: CLDR dates, the template's words from a catalogue."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from conftest import run_cli
from newsletter.config import PREHEADER, parse_config
from newsletter.errors import ConfigError
from newsletter.language import LOCALES, long_date, shipped_languages, translations_for

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "default"
WORDS = re.compile(r"""_\(\s*(["'])(.+?)\1\s*\)""")


def template_words() -> set[str]:
    """Every string the default template and the default preheader pass to _()."""
    found = {
        match.group(2)
        for path in TEMPLATES.glob("*.j2")
        for match in WORDS.finditer(path.read_text(encoding="utf-8"))
    }
    found |= {match.group(2) for match in WORDS.finditer(PREHEADER)}
    return found | {"By %(who)s"}  # the byline's, in render/byline.py


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en-GB", "24 November 2026"),
        ("en", "November 24, 2026"),
        ("fr", "24 novembre 2026"),
        ("cy", "24 Tachwedd 2026"),
        ("de-AT", "24. November 2026"),
    ],
)
def test_dates_take_the_languages_own_long_form(language: str, expected: str) -> None:
    assert long_date(date(2026, 11, 24), language) == expected


@pytest.mark.parametrize("language", shipped_languages())
def test_every_shipped_catalogue_translates_every_word_of_the_template(language: str) -> None:
    words = template_words()
    assert len(words) >= 15
    translations = translations_for(language)
    missing = sorted(word for word in words if translations.gettext(word) == word)
    assert missing == [], f"{LOCALES / language / 'newsletter.po'} lacks {missing}"


def test_french_is_shipped() -> None:
    assert "fr" in shipped_languages()
    assert translations_for("fr-CA").gettext("GUEST COLUMNS") == "TRIBUNES"  # falls back to fr
    assert translations_for("es").gettext("GUEST COLUMNS") == "GUEST COLUMNS"  # English


def test_an_issue_in_french(members_project: Path) -> None:
    text = members_project.read_text(encoding="utf-8").replace("language: en-GB", "language: fr")
    members_project.write_text(text, encoding="utf-8")
    result = run_cli(["build", "--config", str(members_project), "--date", "2026-11-24"])
    assert result.exit_code == 0, result.output
    folder = next((members_project.parent / "issues").glob("001-*"))
    html = (folder / "email.html").read_text(encoding="utf-8")
    plain = (folder / "email.txt").read_text(encoding="utf-8")
    for words in (
        "À LA UNE",
        "TRIBUNES",
        "Lire la suite",
        "Se désabonner",
        "24 novembre 2026",
        "Aussi dans ce numéro :",
        "Bonjour %%first_name|à toutes et à tous%%,",
    ):
        assert words in html, words
    for words in (
        "À LA UNE\n--------",
        "TRIBUNES\n--------",
        "Liens\n-----",
        "Se désabonner:",
        "24 novembre 2026",
    ):
        assert words in plain, words
    assert 'lang="fr"' in html
    assert "LEAD STORY" not in html and "Unsubscribe<" not in html
    # The sentence with a link in it keeps the link, escaped nowhere it should not be.
    assert re.search(r"abonné·e à Leading Together sur <a href=\"https://[^\"]+\"[^>]*>", html)


def test_a_language_cldr_does_not_know_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "newsletter: {name: N, site_url: 'https://e.org', language: xx-YY,"
            " sender: {name: T, address: a@e.org}, postal_address: x}\n"
            "sources: [{name: b, type: feed, url: f.xml}]\n"
        )
    assert "newsletter.language" in str(caught.value)
    assert "'xx-YY' is not a language Babel (CLDR) knows" in str(caught.value)
