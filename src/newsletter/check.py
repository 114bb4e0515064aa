"""`newsletter check`: what would embarrass an issue, found before anyone receives it.

Each check reads the issue as it will be sent (the archived ``email.html`` and
``email.txt``) and returns findings that name the element and how to fix it. The config
says which findings block a send (``check.blocking``) and which only warn; ``send`` and
``run`` run the check first. Links are checked for form offline; with ``--links`` each is
also fetched (see ``links.py``).

The checks and why:
- ``gmail-clip``: Gmail cuts a message over 102 KB and hides the rest, unsubscribe link
  included, behind "[Message clipped]".
- ``link-relative`` / ``link-malformed``: a relative or broken URL goes nowhere in an inbox.
- ``link-text``: "click here" says nothing to a screen reader listing the links.
- ``text-missing-link``: the plain-text version is the whole message for some readers.
- ``image-alt`` / ``image-size``: images are often blocked; without alt text and a width
  the layout collapses or says nothing.
- ``contrast``: WCAG AA, 4.5:1 for text, 3:1 for large text, from the inlined styles.
- ``heading-order`` / ``lang``: screen readers navigate by headings and pick a voice by
  the language.
- ``dark-mode``: clients that darken a message without being told how invert colours
  badly; the message should declare its schemes and carry a dark variant.
- ``hidden-text``: visible text in the background's colour or at 1 px is a spam
  filter's tell (the preheader is hidden with ``display:none`` instead).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import lxml.html
from lxml import etree

from .archive import Archive, message_parts
from .config import LoadedConfig, Theme
from .contrast import AA_LARGE, AA_SMALL, contrast_ratio
from .links import fetch_all
from .lock import LOCK_DIR
from .merge import PLACEHOLDER
from .models import ArchivedIssue

GMAIL_CLIP_BYTES = 102 * 1024
CODES: dict[str, str] = {
    "gmail-clip": "HTML larger than Gmail shows before clipping",
    "link-relative": "a link that is not absolute",
    "link-malformed": "a link that is not a well-formed URL",
    "link-broken": "a link that did not answer with success (--links)",
    "link-text": "link text that says nothing out of context",
    "text-missing-link": "a link of the HTML missing from the text version",
    "image-alt": "an image without alt text",
    "image-size": "an image without a width",
    "contrast": "text below WCAG AA contrast against its background",
    "heading-order": "a heading that skips a level",
    "lang": "no language declared",
    "dark-mode": "no dark mode declared",
    "hidden-text": "visible text hidden by colour or size",
}
VAGUE_LINK_TEXT = frozenset({"click here", "here", "this link", "link", "click"})
_URL_IN_TEXT = re.compile(r"(?:https?|mailto):[^\s<>\"')\]]+|%%[a-z_][a-z0-9_]*(?:\|[^%]*)?%%")
_STYLE_PART = re.compile(r"\s*([a-zA-Z-]+)\s*:\s*([^;]+)")
_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}\b")
_NAMED = {"white": "#ffffff", "black": "#000000"}
_SIZE = re.compile(r"([\d.]+)px")


@dataclass(frozen=True)
class Finding:
    code: str
    element: str
    """The element as a reader of the source would find it, shortened."""
    message: str
    fix: str
    blocking: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class CheckReport:
    issue: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def blocking(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.blocking]

    def as_dict(self) -> dict[str, object]:
        return {
            "issue": self.issue,
            "blocking": len(self.blocking),
            "warnings": len(self.findings) - len(self.blocking),
            "findings": [finding.as_dict() for finding in self.findings],
        }


def check_issue(
    loaded: LoadedConfig, issue_ref: str = "latest", *, links: bool = False
) -> CheckReport:
    """Check an archived issue as it will be sent; ``links`` also fetches every link."""
    issue = Archive(loaded.issues_dir, newsletter=loaded.settings.newsletter).find(issue_ref)
    return check_archived(loaded, issue, links=links)


def check_archived(
    loaded: LoadedConfig, issue: ArchivedIssue, *, links: bool = False
) -> CheckReport:
    """``check_issue`` for an issue already found (a send has it in hand)."""
    html, text = message_parts(issue)
    settings = loaded.settings.check
    findings = check_message(
        html,
        text,
        blocking=settings.blocking,
        dark_pairs=dark_pairs(loaded.settings.template.theme),
    )
    if links:
        findings += _fetched_links(loaded, html, settings.blocking)
    ignored = set(settings.ignore)
    return CheckReport(issue.slug, [f for f in findings if f.code not in ignored])


def dark_pairs(theme: Theme) -> list[Pair]:
    """The dark theme's text and background pairs, which its CSS applies only in dark mode."""
    dark = theme.dark
    return [
        Pair(dark.text_color, dark.card_color, "body text"),
        Pair(dark.muted_color, dark.card_color, "bylines and dates"),
        Pair(dark.muted_color, dark.background_color, "the view-in-browser bar and footer"),
        Pair(dark.accent_color, dark.card_color, "kicker labels and 'read more' links"),
        Pair(dark.button_text_color, dark.accent_color, "button text"),
        Pair(dark.primary_color, dark.card_color, "links and headlines"),
        Pair(dark.primary_color, dark.background_color, "links outside the card"),
    ]


def _fetched_links(loaded: LoadedConfig, html: str, blocking: Sequence[str]) -> list[Finding]:
    root = lxml.html.document_fromstring(html)
    anchors: dict[str, str] = {}
    for anchor in root.iter("a"):
        href = (anchor.get("href") or "").strip()
        if href.startswith(("http://", "https://")) and _url_problem(href) is None:
            anchors.setdefault(href, _shown(anchor))
    settings = loaded.settings.check
    statuses = fetch_all(
        anchors,
        timeout=settings.link_timeout,
        concurrency=settings.link_concurrency,
        cache_path=loaded.base_dir / LOCK_DIR / "link-cache.json",
        cache_hours=settings.link_cache_hours,
    )
    return [
        Finding(
            "link-broken",
            anchors[url],
            f"{url} answered {status.detail}",
            "fix or remove the link in the post or template",
            "link-broken" in blocking,
        )
        for url, status in statuses.items()
        if not status.ok
    ]


def check_message(
    html: str, text: str, *, blocking: Sequence[str] = (), dark_pairs: Sequence[Pair] = ()
) -> list[Finding]:
    """Every finding of the offline checks, in document order within each check."""
    root = lxml.html.document_fromstring(html)
    found: list[Finding] = []
    found += _size(html)
    found += _links(root, text)
    found += _images(root)
    texts = list(_texts(root))  # each text's inherited styles, read once for both checks
    found += _contrast(texts)
    found += _dark_pairs(dark_pairs)
    found += _structure(root, html)
    found += _hidden_text(texts)
    chosen = set(blocking)
    return [Finding(f.code, f.element, f.message, f.fix, f.code in chosen) for f in found]


@dataclass(frozen=True)
class Pair:
    """A text colour on a background, with what uses it (for the dark theme)."""

    foreground: str
    background: str
    where: str
    large: bool = False


# --- the checks ------------------------------------------------------------------------------


def _size(html: str) -> Iterator[Finding]:
    size = len(html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        yield Finding(
            "gmail-clip",
            "email.html",
            f"the HTML is {size / 1024:.0f} KB; Gmail clips messages over 102 KB, "
            "hiding the rest and the unsubscribe link",
            "select fewer items (selection.posts, guest_columns) or shorten summaries "
            "(summaries.length)",
        )


def _links(root: etree._Element, text: str) -> Iterator[Finding]:
    in_text = {url.rstrip(".,;:!?") for url in _URL_IN_TEXT.findall(text)}
    for anchor in root.iter("a"):
        href = (anchor.get("href") or "").strip()
        shown = _shown(anchor)
        words = " ".join(anchor.text_content().split())
        if words.casefold() in VAGUE_LINK_TEXT:
            yield Finding(
                "link-text",
                shown,
                f"the link text {words!r} says nothing about where it leads",
                "write what the reader gets, such as the title of the post",
            )
        if PLACEHOLDER.fullmatch(href):
            target = href
        else:
            problem = _url_problem(href)
            if problem is not None:
                code, message = problem
                yield Finding(
                    code, shown, message, "use an absolute https:// URL in the post or template"
                )
                continue
            target = href
        if target not in in_text and not target.startswith("mailto:"):
            yield Finding(
                "text-missing-link",
                shown,
                f"{target} is in the HTML but not in the text version",
                "add it to email.txt.j2 where the HTML template links it",
            )


def _url_problem(href: str) -> tuple[str, str] | None:
    if not href:
        return "link-malformed", "the link has no address"
    try:
        parts = urlsplit(href)
    except ValueError as exc:
        return "link-malformed", f"{href!r} is not a URL: {exc}"
    if parts.scheme == "mailto":
        return None if "@" in parts.path else ("link-malformed", f"{href!r} names no address")
    if not parts.scheme:
        return "link-relative", f"{href!r} is relative; in an inbox it leads nowhere"
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in href:
        return "link-malformed", f"{href!r} is not a well-formed web address"
    return None


def _images(root: etree._Element) -> Iterator[Finding]:
    for image in root.iter("img"):
        shown = _shown(image)
        if image.get("role") != "presentation" and not (image.get("alt") or "").strip():
            yield Finding(
                "image-alt",
                shown,
                "the image has no alt text; with images blocked it says nothing",
                "describe the image (for a logo, the organisation's name)",
            )
        width = image.get("width") or _style(image).get("width", "")
        if not re.fullmatch(r"\d+(?:px)?", width.strip()):
            yield Finding(
                "image-size",
                shown,
                "the image has no width; Outlook shows it at its file's size",
                "give the template's image a width",
            )


def _contrast(texts: Sequence[_Text]) -> Iterator[Finding]:
    for text in texts:
        foreground = text.colour or "#000000"
        background = text.background or "#ffffff"
        try:
            ratio = contrast_ratio(foreground, background)
        except ValueError:
            continue  # a colour this check cannot read (a gradient, a variable)
        needed = AA_LARGE if text.large else AA_SMALL
        if ratio < needed:
            yield Finding(
                "contrast",
                _shown(text.element),
                f"{foreground} on {background} is {ratio:.2f}:1; WCAG AA needs "
                f"{needed:g}:1 for {'large' if text.large else 'body'} text",
                "darken the text colour or lighten the background in template.theme",
            )


def _dark_pairs(pairs: Sequence[Pair]) -> Iterator[Finding]:
    for pair in pairs:
        ratio = contrast_ratio(pair.foreground, pair.background)
        needed = AA_LARGE if pair.large else AA_SMALL
        if ratio < needed:
            yield Finding(
                "contrast",
                f"dark mode: {pair.where}",
                f"{pair.foreground} on {pair.background} is {ratio:.2f}:1; WCAG AA needs "
                f"{needed:g}:1",
                "change template.theme.dark",
            )


def _structure(root: etree._Element, html: str) -> Iterator[Finding]:
    language = (root.get("lang") or "").strip()
    if not language or language == "und":
        yield Finding(
            "lang", "<html>", "the message declares no language", "set newsletter.language"
        )
    level = 0
    for heading in root.iter("h1", "h2", "h3", "h4", "h5", "h6"):
        current = int(heading.tag[1])
        if level and current > level + 1:
            yield Finding(
                "heading-order",
                _shown(heading),
                f"an h{current} follows an h{level}, skipping a level",
                f"make it an h{level + 1}, or give the post's headings a level that fits",
            )
        level = current
    schemes = " ".join(
        (meta.get("content") or "").lower()
        for meta in root.iter("meta")
        if (meta.get("name") or "").lower() in ("color-scheme", "supported-color-schemes")
    )
    if "dark" not in schemes or "prefers-color-scheme: dark" not in html.replace("  ", " "):
        yield Finding(
            "dark-mode",
            "<head>",
            "the message declares no dark colour scheme",
            "add color-scheme and supported-color-schemes meta tags and a "
            "@media (prefers-color-scheme: dark) style, as the default template does",
        )


def _hidden_text(texts: Sequence[_Text]) -> Iterator[Finding]:
    for text in texts:
        tiny = text.pixels is not None and text.pixels <= 2
        try:
            invisible = bool(
                text.colour
                and text.background
                and contrast_ratio(text.colour, text.background) < 1.2
            )
        except ValueError:
            invisible = False
        if tiny or invisible:
            yield Finding(
                "hidden-text",
                _shown(text.element),
                "visible text is hidden by its size or colour, which spam filters score against",
                "remove it, or hide it with display:none as the preheader is",
            )


# --- reading inlined styles ------------------------------------------------------------------


def _style(element: etree._Element) -> dict[str, str]:
    return {
        name.lower(): value.strip()
        for name, value in _STYLE_PART.findall(element.get("style") or "")
    }


def _colour(value: str) -> str | None:
    value = value.strip().lower()
    if value in _NAMED:
        return _NAMED[value]
    match = _HEX.search(value)
    if match is None:
        return None
    digits = match.group(0)[1:]
    return "#" + (digits if len(digits) == 6 else "".join(2 * d for d in digits))  # as written


def _inherited(element: etree._Element, name: str) -> str | None:
    for node in _self_and_ancestors(element):
        value = _style(node).get(name)
        if value:
            return _colour(value) if name == "color" else value
        if name == "color" and node.get("color"):
            return _colour(node.get("color") or "")
    return None


def _background(element: etree._Element) -> str | None:
    for node in _self_and_ancestors(element):
        style = _style(node)
        for value in (style.get("background-color"), style.get("background"), node.get("bgcolor")):
            if value and value.strip().lower() not in ("transparent", "none"):
                found = _colour(value)
                if found:
                    return found
    return None


@dataclass(frozen=True)
class _Text:
    """An element with text of its own, and the styles it shows that text in."""

    element: etree._Element
    colour: str | None
    background: str | None
    pixels: float | None
    bold: bool

    @property
    def large(self) -> bool:
        """WCAG's large text: 24 px, or 18.66 px bold (16 px when no size is set)."""
        pixels = self.pixels if self.pixels is not None else 16.0
        return pixels >= 24 or (self.bold and pixels >= 18.66)


def _texts(root: etree._Element) -> Iterator[_Text]:
    for element in _visible_text_elements(root):
        size = _SIZE.search(_inherited(element, "font-size") or "")
        weight = (_inherited(element, "font-weight") or "").lower()
        yield _Text(
            element,
            _inherited(element, "color"),
            _background(element),
            float(size.group(1)) if size else None,
            weight == "bold" or (weight.isdigit() and int(weight) >= 700),
        )


def _visible_text_elements(root: etree._Element) -> Iterator[etree._Element]:
    body = root.find("body")
    if body is None:
        return
    for element in body.iter():
        if not isinstance(element.tag, str) or element.tag in ("style", "script"):
            continue
        if (element.text or "").strip() and not _hidden(element):
            yield element


def _hidden(element: etree._Element) -> bool:
    for node in _self_and_ancestors(element):
        style = _style(node)
        if style.get("display", "").lower() == "none" or node.get("hidden") is not None:
            return True
    return False


def _self_and_ancestors(element: etree._Element) -> Iterator[etree._Element]:
    node: etree._Element | None = element
    while node is not None:
        yield node
        node = node.getparent()


def _shown(element: etree._Element) -> str:
    """The element's start tag and the start of its text, for a finding's first column."""
    attributes = " ".join(
        f'{name}="{value[:60]}"' for name, value in element.attrib.items() if name != "style"
    )
    words = " ".join(element.text_content().split())[:50]
    tag = f"<{element.tag}{' ' + attributes if attributes else ''}>"
    return f"{tag}{words}" if words else tag
