"""The JSON that ``--json`` prints, one function per command, as docs/cli-json.md shows it.

Scripts and CI read these, so a shape only grows: a field may be added, none is renamed or
removed. Times are ISO 8601 strings, sizes bytes, durations seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..build import BuildResult
    from ..config import LoadedConfig
    from ..models import SourceResult
    from ..run import RunOutcome
    from ..schedule import Schedule, Slot
    from ..send import SendReport


def validate_shape(
    loaded: LoadedConfig, results: list[SourceResult], warnings: list[str]
) -> dict[str, Any]:
    sources = [
        {
            "name": result.name,
            "items": len(result.posts),
            "posts": sum(not post.is_guest for post in result.posts),
            "guest_columns": sum(post.is_guest for post in result.posts),
            "skipped": len(result.warnings),
        }
        for result in results
    ]
    return {
        "config": str(loaded.path),
        "valid": True,
        "template": str(loaded.template_dir),
        "items": sum(source["items"] for source in sources),
        "posts": sum(source["posts"] for source in sources),
        "guest_columns": sum(source["guest_columns"] for source in sources),
        "sources": sources,
        "warnings": warnings,
    }


def build_shape(result: BuildResult) -> dict[str, Any]:
    meta, selection = result.rendered.meta, result.rendered.selection
    roles = [("lead", selection.lead)]
    roles += [("post", post) for post in selection.posts]
    roles += [("guest", post) for post in selection.guests]
    return {
        "dry_run": result.dry_run,
        "issue": {
            "number": meta.number,
            "date": meta.date.isoformat(),
            "slug": meta.slug,
            "path": str(result.path),
            "subject": meta.subject,
            "preheader": meta.preheader,
        },
        "items": [
            {"role": role, "id": post.id, "title": post.title, "url": post.url}
            for role, post in roles
        ],
        "html_bytes": result.html_bytes,
        "text_bytes": result.text_bytes,
        "seconds": {stage: round(spent, 3) for stage, spent in result.timings.items()},
        "warnings": [str(warning) for warning in result.warnings],
    }


def send_shape(report: SendReport) -> dict[str, Any]:
    """The send's summary as the ledger keeps it, with the exit status the command ends
    with; a dry run adds its personalised sample message."""
    shape = {**report.as_dict(), "exit_status": report.exit_status}
    if report.mode == "dry-run":
        shape["sample"] = report.sample
    return shape


def run_shape(outcome: RunOutcome) -> dict[str, Any]:
    return {
        "action": outcome.action,
        "message": outcome.message,
        "exit_status": outcome.exit_code,
        "slot": _slot(outcome.slot),
        "next_slot": _slot(outcome.next_slot),
        "issue": outcome.issue.slug if outcome.issue is not None else None,
        "took_over_from": str(outcome.took_over_from) if outcome.took_over_from else None,
        "built": build_shape(outcome.built) if outcome.built is not None else None,
        "send": send_shape(outcome.report) if outcome.report is not None else None,
    }


def schedule_shape(plan: Schedule, latest: Slot | None, upcoming: list[Slot]) -> dict[str, Any]:
    return {
        "expression": plan.expression,
        "zone": plan.zone.key,
        "catch_up": plan.catch_up,
        "latest": _slot(latest),
        "next": [_slot(slot) for slot in upcoming],
    }


def _slot(slot: Slot | None) -> str | None:
    return slot.due.isoformat() if slot is not None else None
