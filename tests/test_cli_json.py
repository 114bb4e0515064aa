"""`--json` on every command that reports something: the shapes docs/cli-json.md shows.

The key sets are spelled out here on purpose: a script reads these, so a key that
disappears or is renamed must fail a test (a key added must be added here and there)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import SAMPLE_ISSUE, run_cli

ON = "2026-11-24"
BUILD_KEYS = {"dry_run", "issue", "items", "html_bytes", "text_bytes", "seconds", "warnings"}
ISSUE_KEYS = {"number", "date", "slug", "path", "subject", "preheader"}
SEND_KEYS = {
    "issue_id", "lists", "provider", "mode", "status", "started_at", "finished_at",
    "duration_s", "sent", "refused", "unconfirmed", "deferred", "already_sent",
    "recovered_unconfirmed", "requeued", "remaining", "totals", "rate_per_s", "error",
    "refusals", "unconfirmed_list", "notes", "exit_status",
}  # fmt: skip
RUN_KEYS = {"action", "message", "exit_status", "slot", "next_slot", "issue", "took_over_from",
            "built", "send"}  # fmt: skip
STATES = {"queued", "sending", "retry", "sent", "unconfirmed", "refused", "skipped"}


def as_json(*args: str, status: int = 0) -> Any:
    result = run_cli([*args, "--json"])
    assert result.exit_code == status, result.output
    return json.loads(result.stdout)


def test_validate(sample_project: Path) -> None:
    shown = as_json("validate", "--config", str(sample_project))
    assert set(shown) == {"config", "valid", "template", "items", "posts", "guest_columns",
                          "sources", "warnings"}  # fmt: skip
    assert shown["config"] == str(sample_project)
    assert (shown["valid"], shown["items"], shown["posts"], shown["guest_columns"]) == (
        True, 12, 9, 3
    )  # fmt: skip
    assert [source["name"] for source in shown["sources"]] == ["blog", "partners"]
    assert set(shown["sources"][0]) == {"name", "items", "posts", "guest_columns", "skipped"}
    assert shown["warnings"] == []


def test_build(sample_project: Path) -> None:
    shown = as_json("build", "--config", str(sample_project), "--date", ON)
    assert set(shown) == BUILD_KEYS and set(shown["issue"]) == ISSUE_KEYS
    assert shown["dry_run"] is False
    assert shown["issue"]["slug"] == SAMPLE_ISSUE
    assert shown["issue"]["path"] == str(sample_project.parent / "issues" / SAMPLE_ISSUE)
    assert Path(shown["issue"]["path"], "email.html").stat().st_size == shown["html_bytes"]
    assert [item["role"] for item in shown["items"]] == ["lead"] + ["post"] * 4 + ["guest"] * 2
    assert set(shown["items"][0]) == {"role", "id", "title", "url"}
    assert set(shown["seconds"]) == {"sources", "select", "render", "archive"}


def test_send_and_its_dry_run(built_project: Path) -> None:
    config = str(built_project)
    dry = as_json("send", SAMPLE_ISSUE, "--config", config, "--list", "members", "--dry-run")
    assert set(dry) == SEND_KEYS | {"sample"}
    assert (dry["mode"], dry["remaining"], dry["sent"]) == ("dry-run", 25, 0)
    assert "Subject: Leading Together #1" in dry["sample"]
    sent = as_json("send", SAMPLE_ISSUE, "--config", config, "--list", "members")
    assert set(sent) == SEND_KEYS
    assert (sent["mode"], sent["status"], sent["sent"], sent["exit_status"]) == (
        "send", "complete", 25, 0
    )  # fmt: skip
    assert set(sent["totals"]) == STATES and sent["totals"]["sent"] == 25


def test_run_then_already_sent(members_project: Path) -> None:
    config = str(members_project)
    first = as_json("run", "--config", config, "--now", "2026-11-24T08:05")
    assert set(first) == RUN_KEYS
    assert (first["action"], first["issue"], first["exit_status"]) == ("sent", SAMPLE_ISSUE, 0)
    assert first["slot"] == "2026-11-24T08:00:00+00:00"
    assert first["next_slot"] == "2026-12-01T08:00:00+00:00"
    assert set(first["built"]) == BUILD_KEYS and set(first["send"]) == SEND_KEYS
    assert first["send"]["sent"] == 25
    again = as_json("run", "--config", config, "--now", "2026-11-24T08:20")
    assert (again["action"], again["built"], again["send"]) == ("already-sent", None, None)


def test_schedule(sample_project: Path) -> None:
    shown = as_json("schedule", "--config", str(sample_project), "--count", "3")
    assert set(shown) == {"expression", "zone", "catch_up", "latest", "next"}
    assert (shown["expression"], shown["zone"]) == ("0 8 * * 2", "Europe/London")
    assert len(shown["next"]) == 3
    assert all(slot.endswith(("+00:00", "+01:00")) for slot in shown["next"])


def test_report_and_check_keep_their_shapes(built_project: Path) -> None:
    config = str(built_project)
    assert run_cli(["send", SAMPLE_ISSUE, "--config", config, "--list", "members"]).exit_code == 0
    report = as_json("report", SAMPLE_ISSUE, "--config", config)
    assert set(report) == {"issue_id", "lists", "status", "completed_at", "counts",
                           "not_yet_reached", "last_run", "recipients"}  # fmt: skip
    assert set(report["counts"]) == STATES and report["status"] == "complete"
    check = as_json("check", SAMPLE_ISSUE, "--config", config)
    assert set(check) == {"issue", "blocking", "warnings", "findings"}


def test_a_failure_is_a_json_error_with_the_exit_status(
    sample_project: Path, tmp_path: Path
) -> None:
    missing = as_json("build", "--config", str(tmp_path / "nope.yml"), status=2)
    assert set(missing) == {"error"}
    error = missing["error"]
    assert set(error) == {"type", "status", "message", "hint", "problems"}
    assert (error["type"], error["status"]) == ("ConfigError", 2)
    assert error["problems"] == ["file not found; create it (see the README) or pass --config FILE"]
    # Every sample post is dated after this day: nothing qualifies yet.
    nothing = as_json("build", "--config", str(sample_project), "--date", "2020-01-01", status=10)
    assert (nothing["error"]["type"], nothing["error"]["status"]) == ("NothingNewError", 10)
