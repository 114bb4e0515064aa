"""`newsletter run` on a frozen clock: build and send what is due, once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import run_cli
from newsletter.config import load_config
from newsletter.send import SendOptions, send_issue

TUESDAY = "2026-11-24T08:05"  # the schedule is "0 8 * * 2" in Europe/London


def run_at(config: Path, now: str) -> object:
    return run_cli(["run", "--config", str(config), "--now", now])


def eml_count(config: Path) -> int:
    return len(list((config.parent / "outbox").rglob("*.eml")))


def issue_folders(config: Path) -> list[str]:
    issues = config.parent / "issues"
    return sorted(p.name for p in issues.iterdir() if p.is_dir()) if issues.exists() else []


def test_due_slot_is_built_and_sent_once(members_project: Path) -> None:
    first = run_at(members_project, TUESDAY)
    assert first.exit_code == 0, first.output
    assert "built issue 1:" in first.stdout
    assert "issue 001-2026-11-24 sent: 25 sent, 0 refused, 0 unconfirmed" in first.stdout
    assert eml_count(members_project) == 25

    again = run_at(members_project, "2026-11-24T08:20")
    assert again.exit_code == 0
    assert "issue 001-2026-11-24 was already sent; nothing to do" in again.stdout
    assert eml_count(members_project) == 25
    assert issue_folders(members_project) == ["001-2026-11-24"]


def test_next_slot_builds_the_next_issue_then_nothing_new(members_project: Path) -> None:
    assert run_at(members_project, TUESDAY).exit_code == 0
    second = run_at(members_project, "2026-12-01T09:00")
    assert second.exit_code == 0, second.output
    assert "issue 002-2026-12-01 sent: 25 sent" in second.stdout
    third = run_at(members_project, "2026-12-08T08:01")
    assert third.exit_code == 10
    assert "not enough new items" in third.stdout
    assert issue_folders(members_project) == ["001-2026-11-24", "002-2026-12-01"]
    assert eml_count(members_project) == 50


def test_missed_slots_produce_one_issue_for_the_latest(members_project: Path) -> None:
    # The machine was off for three weeks: one issue, dated for the latest slot.
    result = run_at(members_project, "2026-12-16T10:00")
    assert result.exit_code == 0, result.output
    assert issue_folders(members_project) == ["001-2026-12-15"]


def test_an_issue_built_ahead_is_the_one_sent(members_project: Path) -> None:
    built = run_cli(["build", "--config", str(members_project), "--date", "2026-11-23"])
    assert built.exit_code == 0
    result = run_at(members_project, TUESDAY)
    assert "issue 001-2026-11-23 sent" in result.stdout
    assert issue_folders(members_project) == ["001-2026-11-23"]


def test_a_slot_whose_send_has_begun_keeps_that_issue(members_project: Path) -> None:
    """A newer issue built by hand for the same slot is not sent over a begun one."""
    from newsletter.store import Ledger, open_store

    first = run_cli(["build", "--config", str(members_project), "--date", "2026-11-23"])
    assert first.exit_code == 0, first.output
    with open_store(load_config(members_project)) as store:
        Ledger(store).open_send("001-2026-11-23", ["members"])  # a send that began, then died
    second = run_cli(["build", "--config", str(members_project), "--date", "2026-11-24"])
    assert second.exit_code == 0, second.output
    assert issue_folders(members_project) == ["001-2026-11-23", "002-2026-11-24"]

    result = run_at(members_project, TUESDAY)
    assert result.exit_code == 0, result.output
    assert "issue 001-2026-11-23 resumed and finished: 25 sent" in result.stdout
    assert eml_count(members_project) == 25
    with open_store(load_config(members_project)) as store:
        assert Ledger(store).find_send("002-2026-11-24") is None


def hold_run_lock(config: Path, command: str) -> subprocess.Popen[str]:
    """Another process holding the newsletter's run lock as ``command`` would."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from newsletter.lock import RunLock, "
         "default_lock_path; RunLock(default_lock_path(Path(sys.argv[1])), "
         "command=sys.argv[2]).acquire(); print('locked', flush=True); time.sleep(60)",
         str(config.parent), command],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_build_refuses_while_a_run_holds_the_lock(
    members_project: Path,
) -> None:
    holder = hold_run_lock(members_project, "run")
    try:
        result = run_cli(["build", "--config", str(members_project), "--date", "2026-11-24"])
        assert result.exit_code == 8, result.output
        assert f"another `newsletter run` (pid {holder.pid} on host" in result.stderr
        assert issue_folders(members_project) == []
        dry = run_cli(["build", "--config", str(members_project), "--dry-run"])
        assert dry.exit_code == 0, dry.output  # a dry run files nothing, so needs no lock
    finally:
        holder.kill()
        holder.wait()
    assert run_cli(["build", "--config", str(members_project)]).exit_code == 0


def test_a_run_refuses_while_a_build_holds_the_lock(members_project: Path) -> None:
    holder = hold_run_lock(members_project, "build")
    try:
        result = run_at(members_project, TUESDAY)
        assert result.exit_code == 8, result.output
        assert f"another `newsletter build` (pid {holder.pid} on host" in result.stderr
        assert issue_folders(members_project) == [] and eml_count(members_project) == 0
    finally:
        holder.kill()
        holder.wait()


def test_a_partly_sent_issue_is_resumed(members_project: Path) -> None:
    assert (
        run_cli(["build", "--config", str(members_project), "--date", "2026-11-24"]).exit_code == 0
    )
    send_issue(load_config(members_project), "latest", SendOptions(lists=("members",), limit=7))
    result = run_at(members_project, TUESDAY)
    assert "issue 001-2026-11-24 resumed and finished: 18 sent" in result.stdout
    assert eml_count(members_project) == 25


def test_two_runs_at_once(members_project: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from newsletter.lock import RunLock, "
         "default_lock_path; lock = RunLock(default_lock_path(Path(sys.argv[1]))).acquire(); "
         "print('locked', flush=True); time.sleep(60)", str(members_project.parent)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = run_at(members_project, TUESDAY)
        assert result.exit_code == 8
        assert f"pid {holder.pid}" in result.stderr
        assert issue_folders(members_project) == []
    finally:
        holder.kill()
        holder.wait()  # its lock went with it: the kernel drops a dead process's locks
    after = run_at(members_project, TUESDAY)
    assert after.exit_code == 0, after.output


def test_schedule_shows_upcoming_slots(members_project: Path) -> None:
    result = run_cli(["schedule", "--config", str(members_project), "--count", "3"])
    assert result.exit_code == 0, result.output
    assert "schedule '0 8 * * 2' in Europe/London" in result.stdout
    lines = [line for line in result.stdout.splitlines() if "next:" in line]
    assert len(lines) == 3
    assert all(line.strip().startswith("next:        Tue") and "08:00" in line for line in lines)


def test_invalid_cron_is_a_config_error(members_project: Path) -> None:
    text = members_project.read_text().replace('cron: "0 8 * * 2"', 'cron: "0 25 * * 2"')
    members_project.write_text(text)
    result = run_at(members_project, TUESDAY)
    assert result.exit_code == 2
    assert "schedule.cron: '0 25 * * 2' is not a valid cron expression" in result.stderr


def test_bad_now_is_a_usage_error(members_project: Path) -> None:
    result = run_at(members_project, "next tuesday")
    assert result.exit_code == 2
    assert "is not a date and time" in result.output


def test_a_run_killed_mid_send_is_finished_by_the_next_run(
    built_project: Path, sendgrid_api: Any
) -> None:
    from conftest import configure, ledger_counts
    from servers.sendgrid_fake import Reply

    configure(
        built_project,
        provider={"type": "sendgrid",
                  "sendgrid": {"host": sendgrid_api.url, "batch_size": 10, "timeout": 60.0}},
    )  # fmt: skip
    sendgrid_api.mail.script(Reply(), Reply(delay=30))  # the second batch hangs
    command = [sys.executable, "-m", "newsletter", "run", "--config", str(built_project),
               "--now", TUESDAY]  # fmt: skip
    process = subprocess.Popen(command, env=os.environ.copy())
    deadline = time.monotonic() + 30
    while len(sendgrid_api.mail.requests) < 2 and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    counts = ledger_counts(built_project)
    # One batch answered, one out; the third claimed but never posted, if it was claimed.
    assert (counts["sent"], counts["sending"]) == (10, 10) and counts["queued"] in (0, 5)

    sendgrid_api.mail.replies.clear()
    again = run_at(built_project, "2026-11-24T08:20")
    # Everyone reached; the batch that was out when the run died is unconfirmed (11).
    assert again.exit_code == 11, again.output
    assert "issue 001-2026-11-24 resumed and finished: 5 sent" in again.stdout
    assert "10 recipient(s) were being sent when an earlier run stopped" in again.stdout
    assert "took over the run lock" in again.stdout  # the killed run's lock file is reclaimed
    # The ledger says the issue went out: the next run does nothing, and sends no one twice.
    later = run_at(built_project, "2026-11-24T08:40")
    assert later.exit_code == 0, later.output
    assert "was already sent; nothing to do" in later.stdout
    assert len(sendgrid_api.mail.requests) == 3
