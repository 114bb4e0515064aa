"""MJML -> responsive HTML -> HTML with its CSS inlined, as e-mail clients need it.

Inlining is the slow step of a render (premailer parses every rule for every element),
which is why an issue is rendered once and personalised later through placeholders.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, cast

from mjml import mjml2html

from ..errors import TemplateError

if TYPE_CHECKING:
    from premailer import Premailer


def mjml_to_html(mjml_text: str, *, template_name: str) -> str:
    """Compile MJML; fonts={} so MJML never adds a font host the theme did not ask for."""
    try:
        return mjml2html(mjml_text, fonts={})
    except Exception as exc:  # mjml raises ValueError, but its Rust core may raise others
        raise TemplateError(
            f"{template_name}: the template did not produce valid MJML: {exc}",
            hint="check that every mj-* tag is closed and nested as MJML expects "
            "(https://documentation.mjml.io)",
        ) from None


@functools.cache
def _premailer() -> type[Premailer]:
    """premailer, imported on first use: it loads requests, cssutils and cssselect (a third
    of a build's start-up), which only a render needs, not validate, preview or a send.

    cssutils' property profiles go: premailer validates every inline style against them
    even with validation off, and compiling their patterns took a third of a render's
    time, for warnings nobody reads (the inlined HTML is byte for byte the same).
    """
    import cssutils
    from premailer import Premailer

    cssutils.profile.removeProfile(all=True)
    return cast("type[Premailer]", Premailer)  # premailer ships no type information


def inline_css(html: str) -> str:
    """Copy the stylesheet into style attributes for clients that ignore <style>.

    The <style> blocks stay too: media queries and Outlook conditional comments cannot be
    inlined and are what make the layout responsive. No network: every style is local.
    """
    # premailer keeps a doctype only if it matches lxml's spelling exactly.
    if html[:15].lower() == "<!doctype html>":
        html = "<!DOCTYPE html>" + html[15:]
    inliner = _premailer()(
        html,
        allow_network=False,
        keep_style_tags=True,
        strip_important=False,
        remove_classes=False,
        # MJML already wrote the width/align/bgcolor attributes Outlook reads; premailer's
        # copies from CSS would overwrite them (an image's width="120" became "100%").
        disable_basic_attributes=["align", "valign", "bgcolor", "width", "height"],
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    )
    inlined: str = inliner.transform(pretty_print=False)  # premailer has no type hints
    return inlined
