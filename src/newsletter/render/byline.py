"""One byline for every section and both versions of an issue.

Posts once read "date · author" and guest columns "author, role" with no date, so a
column from 2015 looked like last week's. Every item now says who and when the same way:
"By Ann Smith, Director of Nursing, Leeds Trust · 24 November 2026", or the date alone.
"""

from __future__ import annotations

from collections.abc import Callable

import jinja2

from ..models import Post
from .environment import format_date

SEPARATOR = " · "


@jinja2.pass_context
def byline(context: jinja2.runtime.Context, post: Post) -> str:
    when = format_date(context, post.published)
    if not post.author:
        return when
    who = ", ".join(
        part for part in (post.author, post.author_role, post.author_organisation) if part
    )
    translate: Callable[[str], str] = context.get("_") or (lambda text: text)
    return translate("By %(who)s") % {"who": who} + SEPARATOR + when
