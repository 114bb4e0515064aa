"""Make any source's HTML safe to put in an e-mail, and its text readable on one line.

Both readers pass every body through here, so the rest of the pipeline can trust
``Post.body_html`` without knowing where they came from. Nothing in
this module raises on bad input: broken markup is repaired or dropped, never an error.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "div",
        "dl", "dt", "em", "figcaption", "figure", "h2", "h3", "h4", "h5", "h6", "hr", "i",
        "img", "ins", "li", "mark", "ol", "p", "pre", "q", "s", "small", "span", "strong",
        "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "ol": {"start"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}
# Their content is code or an embedded document, never text a reader should see.
DROPPED_WITH_CONTENT = frozenset({"script", "style", "template", "iframe", "object", "noscript"})
SAFE_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
URL_ATTRIBUTES = frozenset({"href", "src"})
_BLOCK_START = re.compile(
    r"<(?=/?(?:p|div|br|li|ul|ol|h[1-6]|blockquote|tr|td|th|pre|figure|figcaption|dd|dt)\b)",
    re.IGNORECASE,
)
_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+\n")


def absolute_url(value: str, base_url: str) -> str | None:
    """``value`` resolved against ``base_url``, or None when the result is not a safe link.

    Checked after joining, because urljoin drops tabs and newlines and so can turn
    text that looked relative (``java\\nscript:``) into a script URL.
    """
    try:
        joined = urljoin(base_url, value.strip())
        scheme = urlsplit(joined).scheme.lower()
    except ValueError:
        return None
    return joined if scheme in SAFE_SCHEMES else None


def web_url(value: str, base_url: str) -> str | None:
    """Like ``absolute_url`` but only http(s): for a post's own URL and its image."""
    joined = absolute_url(value, base_url)
    return joined if joined and urlsplit(joined).scheme.lower() in ("http", "https") else None


def clean_html(markup: str, base_url: str) -> str:
    """Keep only e-mail-safe tags and attributes; make every link and image URL absolute."""
    import nh3  # a build whose sources are answered from the cache reads no HTML

    def resolve_urls(tag: str, attribute: str, value: str) -> str | None:
        if attribute in URL_ATTRIBUTES:
            return absolute_url(value, base_url)
        return value

    cleaned = nh3.clean(
        markup,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=resolve_urls,
        url_schemes=set(SAFE_SCHEMES),
        link_rel=None,
        strip_comments=True,
    )
    # Dropped scripts leave runs of empty lines behind; one blank line is enough.
    return _BLANK_LINES.sub("\n\n", cleaned).strip()


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment on one line: tags dropped, entities decoded."""
    import html  # only what is read afresh, as in clean_html

    import nh3

    spaced = _BLOCK_START.sub(" <", markup)
    stripped = nh3.clean(spaced, tags=set(), clean_content_tags=set(DROPPED_WITH_CONTENT))
    return _SPACES.sub(" ", html.unescape(stripped)).strip()
