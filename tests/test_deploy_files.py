"""The operator files in deploy/ are examples people copy as they are: they must work."""

from __future__ import annotations

import configparser
import shlex
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml
from croniter import croniter

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
RUN_COMMAND = (
    "cd /srv/newsletter && set -a && . /etc/newsletter/env && set +a && "
    ".venv/bin/newsletter run --config newsletter.yml >> /var/log/newsletter.log 2>&1"
)


def crontab_entries() -> list[str]:
    text = (DEPLOY / "crontab.example").read_text()
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def unit(name: str) -> configparser.ConfigParser:
    # systemd keys are case-sensitive and may repeat; strict=False and optionxform keep both.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


def workflow() -> dict[Any, Any]:
    loaded = yaml.safe_load((DEPLOY / "github-actions-newsletter.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


# --- crontab --------------------------------------------------------------------------------


def test_crontab_runs_newsletter_every_15_minutes() -> None:
    (entry,) = crontab_entries()
    fields = entry.split(None, 5)
    timing, command = " ".join(fields[:5]), fields[5]
    assert croniter.is_valid(timing)
    assert timing == "*/15 * * * *"
    assert command == RUN_COMMAND
    assert "%" not in command  # cron turns an unescaped % into a newline


def test_crontab_command_is_valid_shell() -> None:
    (entry,) = crontab_entries()
    assert shlex.split(entry.split(None, 5)[5])[:2] == ["cd", "/srv/newsletter"]
    result = subprocess.run(["sh", "-n", "-c", entry.split(None, 5)[5]], capture_output=True)
    assert result.returncode == 0, result.stderr


def test_crontab_explains_the_exit_statuses() -> None:
    text = (DEPLOY / "crontab.example").read_text()
    assert "#    0  done, or nothing was due" in text
    assert "#   10  due, but nothing new to send" in text


# --- systemd --------------------------------------------------------------------------------


def test_service_is_a_hardened_oneshot_run() -> None:
    service = unit("newsletter.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["WorkingDirectory"] == "/srv/newsletter"
    assert service["ExecStart"].startswith("/srv/newsletter/.venv/bin/newsletter run --config ")
    assert service["SuccessExitStatus"] == "10"
    assert service["EnvironmentFile"] == "/etc/newsletter/env"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/srv/newsletter"
    assert service["User"] != "root"


def test_timer_fires_every_15_minutes_and_catches_up_after_downtime() -> None:
    timer = unit("newsletter.timer")
    assert timer["Timer"]["OnCalendar"] == "*:0/15"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["Unit"] == "newsletter.service"
    assert int(timer["Timer"]["RandomizedDelaySec"]) <= 120
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # verify checks that ExecStart exists, so point the units at a stand-in install.
    install = tmp_path / "srv"
    (install / ".venv" / "bin").mkdir(parents=True)
    program = install / ".venv" / "bin" / "newsletter"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    units = ("newsletter.service", "newsletter.timer", "newsletter-web.service")
    for name in units:
        text = (DEPLOY / "systemd" / name).read_text().replace("/srv/newsletter", str(install))
        (tmp_path / name).write_text(text)

    result = subprocess.run(
        [analyze, "verify", *units],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    complaints = [
        line for line in result.stderr.splitlines() if "newsletter" in line or str(tmp_path) in line
    ]
    assert result.returncode == 0, result.stderr
    assert complaints == []  # unknown keys and bad values are only warnings to verify

    calendar = subprocess.run(
        [analyze, "calendar", "*:0/15"], capture_output=True, text=True, timeout=30
    )
    assert "Normalized form: *-*-* *:00/15:00" in calendar.stdout


# --- GitHub Actions -------------------------------------------------------------------------


def test_workflow_runs_on_a_valid_schedule_and_by_hand() -> None:
    loaded = workflow()
    # YAML 1.1 reads the bare key `on` as the boolean true.
    triggers = loaded.get("on", loaded.get(True))
    assert isinstance(triggers, dict)
    cron = triggers["schedule"][0]["cron"]
    assert croniter.is_valid(cron) and len(cron.split()) == 5
    assert cron == "*/30 * * * *"
    assert "workflow_dispatch" in triggers


def test_workflow_runs_newsletter_with_secrets_and_accepts_status_10() -> None:
    steps = workflow()["jobs"]["run"]["steps"]
    uses = [step.get("uses", "") for step in steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert any(u.startswith("actions/setup-python@") for u in uses)
    assert any(step.get("run") == "pip install ." for step in steps)
    (run_step,) = [step for step in steps if "newsletter run" in step.get("run", "")]
    assert run_step["env"]["SENDGRID_API_KEY"] == "${{ secrets.SENDGRID_API_KEY }}"
    assert '"$status" -ne 10' in run_step["run"]


def test_workflow_step_treats_status_10_as_success(tmp_path: Path) -> None:
    """Run the step's script with a stand-in `newsletter` that exits with each status."""
    steps = workflow()["jobs"]["run"]["steps"]
    (run_step,) = [step for step in steps if "newsletter run" in step.get("run", "")]
    fake = tmp_path / "newsletter"
    for status, job_status in ((0, 0), (10, 0), (2, 2), (7, 7)):
        fake.write_text(f"#!/bin/sh\nexit {status}\n")
        fake.chmod(0o755)
        result = subprocess.run(
            ["bash", "-e", "-c", run_step["run"]],
            env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
            capture_output=True,
            timeout=30,
        )
        assert result.returncode == job_status, (status, result.stderr)


def test_workflow_commits_the_issues_and_the_ledger_even_after_a_failed_send() -> None:
    loaded = workflow()
    steps = loaded["jobs"]["run"]["steps"]
    (commit,) = [step for step in steps if "git push" in step.get("run", "")]
    assert "git add issues/" in commit["run"]
    assert 'git add --force "$STORE"' in commit["run"]
    assert commit["if"] == "${{ !cancelled() }}"
    assert loaded["permissions"]["contents"] == "write"
    assert loaded["concurrency"]["cancel-in-progress"] is False


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=30
    ).stdout


def test_workflow_commit_step_pushes_issues_and_a_complete_store(tmp_path: Path) -> None:
    """Run the commit step in a clone, with a store whose last writer died mid-WAL."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    steps = workflow()["jobs"]["run"]["steps"]
    (commit,) = [step for step in steps if "git push" in step.get("run", "")]
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        **workflow()["jobs"]["run"]["env"],
    }
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    _git("init", "--bare", "--initial-branch=main", str(remote), cwd=tmp_path)
    _git("clone", str(remote), str(work), cwd=tmp_path)
    (work / ".gitignore").write_text("*.db\n")
    _git("add", ".gitignore", cwd=work)
    _git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-m", "start", cwd=work)
    _git("push", "origin", "HEAD:main", cwd=work)
    _git("branch", "--set-upstream-to=origin/main", cwd=work)

    (work / "issues" / "2026-11-24").mkdir(parents=True)
    (work / "issues" / "2026-11-24" / "index.html").write_text("<h1>Issue 1</h1>")
    writer = (
        "import os, sqlite3; c = sqlite3.connect('newsletter.db', isolation_level=None); "
        "c.execute('PRAGMA journal_mode = WAL'); "
        "c.execute('CREATE TABLE send_ledger (address TEXT)'); "
        "c.execute(\"INSERT INTO send_ledger VALUES ('ada@example.org')\"); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", writer], cwd=work, check=True, timeout=30)
    assert (work / "newsletter.db-wal").stat().st_size > 0  # the row lives only in the WAL

    script = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", commit["run"]]
    result = subprocess.run(script, cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

    check = tmp_path / "check"
    _git("clone", str(remote), str(check), cwd=tmp_path)
    assert (check / "issues" / "2026-11-24" / "index.html").read_text() == "<h1>Issue 1</h1>"
    with closing(sqlite3.connect(check / "newsletter.db")) as db:
        assert db.execute("SELECT address FROM send_ledger").fetchall() == [("ada@example.org",)]

    again = subprocess.run(script, cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "nothing new to commit" in again.stdout


def test_operating_guide_shows_the_same_crontab_line() -> None:
    guide = (DEPLOY.parent / "docs" / "operating.md").read_text()
    (entry,) = crontab_entries()
    assert " ".join(entry.split()) in guide
