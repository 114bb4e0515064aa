"""The render stage: an issue's data -> one HTML body and one plain-text body.

Jinja fills ``email.mjml.j2`` and ``email.txt.j2`` from the same context; MJML turns the
first into table-based responsive HTML and premailer inlines its CSS. The issue is
rendered once for everyone: per-recipient values stay ``%%name%%`` placeholders that the
sender fills in.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import jinja2

from ..config import LoadedConfig
from ..errors import TemplateError
from ..language import translations_for
from ..models import IssueMeta, RenderedIssue, Selection
from ..sandbox import (
    SANDBOX_HINT,
    RenderLimitExceeded,
    RenderLimits,
    render_bounded,
    sandboxed_environment,
)
from .byline import byline
from .environment import (
    HTML_TEMPLATE,
    TEXT_TEMPLATE,
    build_environment,
    format_date,
    merge_field,
    render_template,
)
from .html import inline_css, mjml_to_html
from .text import LinkReferences, tidy_text

__all__ = [
    "Renderer",
    "issue_context",
    "render_issue",
    "render_meta_text",
    "renderer_for",
]


class Renderer:
    """Renders issues from one template folder, compiling each template only once."""

    def __init__(self, template_dir: Path) -> None:
        self.template_dir = Path(template_dir)
        self.environment = build_environment(self.template_dir)
        self.environment.globals["byline"] = byline

    def render(
        self, loaded: LoadedConfig, meta: IssueMeta, selection: Selection, view_url: str
    ) -> RenderedIssue:
        context = issue_context(loaded, meta, selection, view_url)
        limits = template_limits(loaded)
        mjml_text = render_template(
            self.environment, self.template_dir, HTML_TEMPLATE, context, limits
        )
        html = inline_css(mjml_to_html(mjml_text, template_name=HTML_TEMPLATE))
        links = LinkReferences()
        text_context = {**context, "ref": links.ref, "links": links}
        text = render_template(
            self.environment, self.template_dir, TEXT_TEMPLATE, text_context, limits
        )
        return RenderedIssue(
            meta=meta, selection=selection, html=html, text=tidy_text(text), view_url=view_url
        )


_renderers: dict[Path, Renderer] = {}
_renderers_lock = threading.Lock()


def renderer_for(template_dir: Path) -> Renderer:
    """The cached Renderer of a template folder, so repeated builds skip compiling."""
    key = Path(template_dir).resolve()
    with _renderers_lock:
        renderer = _renderers.get(key)
        if renderer is None:
            renderer = _renderers[key] = Renderer(key)
        return renderer


def template_limits(loaded: LoadedConfig) -> RenderLimits:
    settings = loaded.settings.template
    return RenderLimits(seconds=settings.time_limit, characters=settings.output_limit)


def issue_context(
    loaded: LoadedConfig, meta: IssueMeta, selection: Selection, view_url: str
) -> dict[str, Any]:
    """Everything a template may use; the hint of an undefined-variable error lists these."""
    settings = loaded.settings
    return {
        "newsletter": settings.newsletter,
        "theme": settings.template.theme,
        "issue": meta,
        "lead": selection.lead,
        "posts": selection.posts,
        "guests": selection.guests,
        "items": selection.items,
        "view_url": view_url,
        "_": translations_for(settings.newsletter.language).gettext,
    }


def render_issue(
    loaded: LoadedConfig, meta: IssueMeta, selection: Selection, view_url: str
) -> RenderedIssue:
    return renderer_for(loaded.template_dir).render(loaded, meta, selection, view_url)


# --- subject and preheader ---------------------------------------------------------------

_meta_environment = sandboxed_environment(
    autoescape=False,  # a subject is a header value, not HTML
    undefined=jinja2.StrictUndefined,
)
META_CHARACTERS = 10_000
"""A one-line setting never needs more; a longer result is a mistake, not a subject."""
_meta_environment.globals["merge"] = merge_field
_meta_environment.filters["date"] = format_date


@functools.lru_cache(maxsize=64)
def _compile_meta(template_text: str) -> jinja2.Template:
    return _meta_environment.from_string(template_text)


def render_meta_text(
    loaded: LoadedConfig, template_text: str, *, field: str, context: dict[str, Any]
) -> str:
    """Render a one-line setting such as issue.subject; whitespace collapses to single spaces.

    A newline in a subject would break the message header, so none can survive.
    """
    limits = replace(
        template_limits(loaded),
        characters=min(META_CHARACTERS, loaded.settings.template.output_limit),
    )
    try:
        rendered = render_bounded(_compile_meta(template_text), context, limits)
    except jinja2.TemplateSyntaxError as exc:
        raise _meta_error(loaded, field, f"template syntax error: {exc.message}", context) from None
    except jinja2.UndefinedError as exc:
        raise _meta_error(loaded, field, str(exc.message), context) from None
    except (RenderLimitExceeded, jinja2.exceptions.SecurityError) as exc:
        hint = exc.hint if isinstance(exc, RenderLimitExceeded) else SANDBOX_HINT
        raise TemplateError(
            f"{loaded.path.name}: {field}: {exc.message}",
            hint=f"{hint}; fix {field} in {loaded.path}",
        ) from None
    except Exception as exc:  # a filter given the wrong type, a bad merge field name, ...
        raise _meta_error(loaded, field, str(exc) or type(exc).__name__, context) from None
    return " ".join(rendered.split())


def _meta_error(
    loaded: LoadedConfig, field: str, problem: str, context: dict[str, Any]
) -> TemplateError:
    return TemplateError(
        f"{loaded.path.name}: {field}: {problem}",
        hint=f"fix {field} in {loaded.path}; it may use: {', '.join(sorted(context))}",
    )
