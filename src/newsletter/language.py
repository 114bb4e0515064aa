"""The newsletter's language: dates from CLDR (Babel) and the template's words from a catalogue.

``newsletter.language`` is a BCP 47 tag ("en-GB", "fr"). Dates take the locale's own long
form ("24 November 2026", "24 novembre 2026"); the default template's words come from
``locales/<language>/newsletter.po`` (the full tag first, then the language alone), and
stay English where no catalogue has them. Catalogues are read as ``.po`` text, so a
translator edits one file and nothing has to be compiled. This module stands outside
``render`` so that checking a config's language does not load the renderer.
"""

from __future__ import annotations

import functools
import io
from datetime import date
from gettext import NullTranslations
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALES = Path(__file__).resolve().parent / "locales"
DOMAIN = "newsletter"


@functools.lru_cache(maxsize=16)
def locale_for(language: str) -> Locale:
    """Raises ValueError naming the tag when CLDR does not know the language."""
    try:
        return Locale.parse(language, sep="-")
    except (UnknownLocaleError, ValueError) as exc:
        raise ValueError(f"{language!r} is not a language Babel (CLDR) knows: {exc}") from None


def long_date(value: date, language: str) -> str:
    return babel_format_date(value, format="long", locale=locale_for(language))


@functools.lru_cache(maxsize=16)
def translations_for(language: str) -> NullTranslations:
    """The catalogue for ``language``, or none (English) when there is no catalogue."""
    for tag in _candidates(language):
        path = LOCALES / tag / f"{DOMAIN}.po"
        if path.is_file():
            with path.open("rb") as handle:
                catalog = read_po(handle, locale=tag.replace("-", "_"), domain=DOMAIN)
            compiled = io.BytesIO()
            write_mo(compiled, catalog)
            compiled.seek(0)
            return Translations(compiled, domain=DOMAIN)
    return NullTranslations()


def shipped_languages() -> list[str]:
    return sorted(path.parent.name for path in LOCALES.glob(f"*/{DOMAIN}.po"))


def _candidates(language: str) -> list[str]:
    base = language.split("-", 1)[0]
    return [language, base] if base != language else [language]
