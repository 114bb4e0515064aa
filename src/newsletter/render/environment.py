"""The Jinja environment shared by an issue's HTML and text templates, and its error messages.

One environment per template folder, built once: compiling templates costs far more
than rendering them, and a warm render is what a scheduled build pays. Autoescaping is
chosen by file name so the MJML template escapes and the text template does not, while
both read the same context. The environment is the bounded sandbox (``sandbox``): a
template reaches only the data it is given, within a time and an output limit.
"""

from __future__ import annotations

import textwrap
import traceback
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from ..errors import NewsletterError, TemplateError
from ..language import long_date
from ..merge import ISSUE_FIELDS, placeholder
from ..sandbox import (
    SANDBOX_HINT,
    RenderLimitExceeded,
    RenderLimits,
    render_bounded,
    sandboxed_environment,
)

HTML_TEMPLATE = "email.mjml.j2"
TEXT_TEMPLATE = "email.txt.j2"
TEXT_WIDTH = 76


@jinja2.pass_context
def merge_field(context: jinja2.runtime.Context, name: str, fallback: str | None = None) -> Markup:
    """A per-recipient placeholder; safe because its syntax never holds markup.

    A field that is the same for every recipient (the view-in-browser URL) is filled here,
    so the sender has nothing to do for it.
    """
    if name in ISSUE_FIELDS and context.get(name):
        return Markup.escape(str(context[name]))
    return Markup(placeholder(name, fallback))


@jinja2.pass_context
def format_date(context: jinja2.runtime.Context, value: date | datetime) -> str:
    """'24 November 2026' in the newsletter's language (CLDR's long form, not strftime's, so
    the host's locale changes nothing); a post's timestamp in the newsletter's time zone."""
    if isinstance(value, datetime):
        newsletter = context.get("newsletter")
        zone = getattr(newsletter, "timezone", None)
        if zone and value.tzinfo is not None:
            value = value.astimezone(ZoneInfo(zone))
        value = value.date()
    language = getattr(context.get("newsletter"), "language", None) or "en-GB"
    return long_date(value, language)


def wrap_text(
    text: str, width: int = TEXT_WIDTH, indent: str = "", first_indent: str | None = None
) -> str:
    """Fill each paragraph to ``width`` columns without ever splitting a word or a URL.

    Paragraphs are separated by blank lines and stay separated; a URL longer than a line
    is left whole so it stays clickable.
    """
    paragraphs = [" ".join(p.split()) for p in str(text).split("\n\n")]
    wrapper = textwrap.TextWrapper(
        width=width,
        initial_indent=indent if first_indent is None else first_indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return "\n\n".join(wrapper.fill(p) for p in paragraphs if p)


def build_environment(template_dir: Path) -> jinja2.Environment:
    env = sandboxed_environment(
        loader=jinja2.FileSystemLoader(str(template_dir), encoding="utf-8"),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("mjml.j2", "html.j2", "mjml", "html", "xml"),
            disabled_extensions=("txt.j2", "txt"),
            default_for_string=True,
            default=True,
        ),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["merge"] = merge_field
    env.filters["date"] = format_date
    env.filters["wrap"] = wrap_text
    return env


def render_template(
    env: jinja2.Environment,
    template_dir: Path,
    name: str,
    context: dict[str, Any],
    limits: RenderLimits,
) -> str:
    """Render one template, turning any failure into a TemplateError that names file and line."""
    try:
        return render_bounded(env.get_template(name), context, limits)
    except RenderLimitExceeded as exc:
        where = _failing_line(exc, template_dir) or name
        raise RenderLimitExceeded(f"{where}: {exc.message}", hint=exc.hint) from None
    except NewsletterError:
        raise
    except Exception as exc:  # a template can fail in any filter or attribute lookup
        raise template_error(exc, template_dir, name, sorted(context)) from None


def template_error(
    exc: BaseException, template_dir: Path, name: str, variables: list[str]
) -> TemplateError:
    if isinstance(exc, jinja2.TemplateNotFound):
        missing = exc.name or name
        # An include or extends of a missing file: say which template line asked for it.
        asked_by = _failing_line(exc, template_dir) if missing != name else None
        return TemplateError(
            f"{asked_by + ': ' if asked_by else ''}template '{missing}' not found in "
            f"{template_dir}",
            hint="check template.directory in newsletter.yml; the folder must hold "
            f"{HTML_TEMPLATE} and {TEXT_TEMPLATE}",
        )
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = _shown_name(exc.filename, template_dir) or exc.name or name
        return TemplateError(
            f"{where}:{exc.lineno}: {exc.message}",
            hint="fix the template syntax at that line",
        )
    if isinstance(exc, UnicodeDecodeError):
        return TemplateError(
            f"{name} (or a template it includes): not UTF-8 text (byte "
            f"0x{exc.object[exc.start]:02x} at offset {exc.start})",
            hint="save the template as UTF-8",
        )
    where = _failing_line(exc, template_dir) or name
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateError(
            f"{where}: {exc.message}",
            hint="the template uses a variable or attribute the issue does not provide; "
            f"available variables: {', '.join(variables)}",
        )
    problem = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return TemplateError(f"{where}: {problem}", hint=SANDBOX_HINT)
    return TemplateError(f"{where}: {problem}")


def _shown_name(filename: str | None, template_dir: Path) -> str | None:
    if not filename:
        return None
    try:
        return Path(filename).resolve().relative_to(template_dir.resolve()).as_posix()
    except ValueError:
        return Path(filename).name


def _failing_line(exc: BaseException, template_dir: Path) -> str | None:
    """'email.mjml.j2:14' from the innermost template frame of the traceback.

    Jinja rewrites tracebacks so each template appears as a frame whose file is the
    template and whose line is the template line; Python frames end in .py.
    """
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        # Only template files count: the standard library's frozen modules (<frozen codecs>)
        # do not end in .py either.
        inside = frame.filename and Path(frame.filename).resolve().is_relative_to(
            template_dir.resolve()
        )
        if inside and frame.lineno:
            shown = _shown_name(frame.filename, template_dir)
            return f"{shown}:{frame.lineno}"
    return None
