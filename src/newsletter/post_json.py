"""A ``Post`` as JSON and back, exactly: what the build's cache keeps and keys on.

Exactly means the time zone too: a post dated in a named zone comes back in that zone
(not a bare UTC offset), so a date written in the post's own zone reads the same.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from .models import ItemWarning, Post, PostKind, SourceResult


class NotKept(ValueError):
    """A value this module cannot write so that it reads back the same."""


def moment_to_json(moment: datetime) -> dict[str, Any]:
    zone = moment.tzinfo
    if isinstance(zone, ZoneInfo):
        name: str | None = zone.key
    elif isinstance(zone, timezone):
        name = None
    else:  # a zone from elsewhere (dateutil, say) might not read back as the same zone
        raise NotKept(f"time zone {zone!r}")
    return {"at": moment.isoformat(), "zone": name, "fold": moment.fold}


def moment_from_json(data: dict[str, Any]) -> datetime:
    moment = datetime.fromisoformat(data["at"])
    if data["zone"] is not None:
        moment = moment.replace(tzinfo=ZoneInfo(data["zone"]))
    return moment.replace(fold=data["fold"])


def post_to_json(post: Post) -> dict[str, Any]:
    fields = asdict(post)
    fields["published"] = moment_to_json(post.published)
    fields["kind"] = post.kind.value
    fields["tags"] = list(post.tags)
    return fields


def post_from_json(data: dict[str, Any]) -> Post:
    return Post(
        **{
            **data,
            "published": moment_from_json(data["published"]),
            "kind": PostKind(data["kind"]),
            "tags": tuple(data["tags"]),
        }
    )


def result_to_json(result: SourceResult) -> dict[str, Any]:
    """The result as JSON; NotKept when it would not read back exactly as it is."""
    data = {
        "name": result.name,
        "posts": [post_to_json(post) for post in result.posts],
        "warnings": [asdict(warning) for warning in result.warnings],
    }
    if repr(result_from_json(data)) != repr(result):
        raise NotKept(f"source '{result.name}'")
    return data


def result_from_json(data: dict[str, Any]) -> SourceResult:
    return SourceResult(
        name=data["name"],
        posts=tuple(post_from_json(post) for post in data["posts"]),
        warnings=tuple(ItemWarning(**warning) for warning in data["warnings"]),
    )
