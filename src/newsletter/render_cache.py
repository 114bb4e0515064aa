"""An issue rendered before, from the build's cache (``memo``), when nothing it is made of
has changed: the same items, number and date, settings, template files and code.

A hit needs neither Jinja, MJML nor premailer, which is most of a dry run's start-up; a
miss renders as always and keeps the result. Only finished renders are kept, so a
template that fails keeps failing with its own message.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from .config import LoadedConfig
from .memo import Memo, code_stamp, digest, folder_stamp, settings_stamp
from .models import IssueMeta, RenderedIssue, Selection
from .post_json import post_to_json

KEPT = ("subject", "preheader", "html", "text", "view_url")


def render_key(loaded: LoadedConfig, number: int, on: date, selection: Selection) -> str:
    template_dir = loaded.template_dir
    return digest(
        code_stamp(),
        str(loaded.path),
        settings_stamp(loaded.settings),
        str(template_dir),
        folder_stamp(template_dir) if template_dir.is_dir() else None,
        number,
        on.isoformat(),
        {
            "lead": post_to_json(selection.lead),
            "posts": [post_to_json(post) for post in selection.posts],
            "guests": [post_to_json(post) for post in selection.guests],
        },
    )


def remembered_issue(
    loaded: LoadedConfig,
    number: int,
    on: date,
    selection: Selection,
    render: Callable[[], RenderedIssue],
) -> RenderedIssue:
    """The issue as ``render`` makes it, from the cache when it was made before."""
    memo = Memo(loaded.base_dir, "render")
    key = render_key(loaded, number, on, selection)
    kept = memo.get(key)
    if _readable(kept):
        meta = IssueMeta(
            number=number, date=on, subject=kept["subject"], preheader=kept["preheader"]
        )
        return RenderedIssue(
            meta=meta,
            selection=selection,
            html=kept["html"],
            text=kept["text"],
            view_url=kept["view_url"],
        )
    rendered = render()
    memo.put(
        key,
        {
            "subject": rendered.meta.subject,
            "preheader": rendered.meta.preheader,
            "html": rendered.html,
            "text": rendered.text,
            "view_url": rendered.view_url,
        },
    )
    return rendered


def _readable(kept: Any) -> bool:
    return isinstance(kept, dict) and all(isinstance(kept.get(name), str) for name in KEPT)
