"""The conventions every command shares: --config before or after the command and
NEWSLETTER_CONFIG, -v and -q, and log lines (text or JSON) for each event of a build and
a send, one per batch and never one per recipient."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import SAMPLE_ISSUE, configure, run_cli
from servers.sendgrid_fake import Reply, rate_limited

ON = "2026-11-24"


def json_lines(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_config_before_the_command(sample_project: Path) -> None:
    result = run_cli(["--config", str(sample_project), "validate"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{sample_project}: valid.")


def test_config_from_the_environment(
    sample_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no newsletter.yml here
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(sample_project))
    result = run_cli(["validate"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{sample_project}: valid.")


def test_a_config_named_on_the_command_line_wins(
    sample_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.yml"
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(missing))
    assert run_cli(["--config", str(sample_project), "validate"]).exit_code == 0
    assert run_cli(["validate", "--config", str(sample_project)]).exit_code == 0
    after = run_cli(["--config", str(sample_project), "validate", "--config", str(missing)])
    assert after.exit_code == 2
    assert f"{missing}: invalid configuration" in after.stderr
    from_environment = run_cli(["validate"])
    assert from_environment.exit_code == 2
    assert f"{missing}: invalid configuration" in from_environment.stderr


def test_no_log_lines_by_default_and_one_per_build_step_with_v(sample_project: Path) -> None:
    quiet = run_cli(["--config", str(sample_project), "build", "--date", ON, "--dry-run"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == ""
    loud = run_cli(["-v", "--config", str(sample_project), "build", "--date", ON, "--dry-run"])
    assert loud.exit_code == 0, loud.output
    lines = loud.stderr.splitlines()
    assert [line.split(" ", 3)[1:3] for line in lines] == [["INFO", "newsletter.build:"]] * 4
    assert "source blog: 9 item(s) read, 0 skipped" in lines[0]
    assert "source partners: 3 item(s) read, 0 skipped" in lines[1]
    assert "issue 1: 5 post(s) and 2 guest column(s) selected" in lines[2]
    assert (
        f"issue 1 would be filed at {sample_project.parent / 'issues' / SAMPLE_ISSUE}" in (lines[3])
    )


def test_json_log_lines_for_a_send_one_per_batch(members_project: Path) -> None:
    config = str(members_project)
    assert run_cli(["build", "--config", config, "--date", ON]).exit_code == 0
    # --rate 10 makes batches of 10: 25 recipients are 3 batches, so 3 batch lines.
    sent = run_cli(
        ["-v", "--log-format", "json", "--config", config, "send", "--list", "members",
         "--rate", "10"]
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    lines = json_lines(sent.stderr)
    assert len(lines) == len(sent.stderr.splitlines()), sent.stderr
    events = [line["event"] for line in lines]
    assert events == ["send-started", "batch", "batch", "batch", "send-finished"]
    batches = [line for line in lines if line["event"] == "batch"]
    assert [(b["batch"], b["recipients"], b["accepted"]) for b in batches] == [
        (1, 10, 10), (2, 10, 10), (3, 5, 5)
    ]  # fmt: skip
    finished = lines[-1]
    assert finished["status"] == "complete" and finished["sent"] == 25
    assert all(line["level"] == "info" and str(line["time"]).endswith("Z") for line in lines)
    assert "@" not in sent.stderr  # no line names a recipient


def test_backoff_and_retries_are_logged(built_project: Path, sendgrid_api: Any) -> None:
    config, fake = built_project, sendgrid_api.mail
    configure(config, sending={"retry_base": 0.05, "retry_cap": 0.2})
    fake.script(Reply(), rate_limited(reset_in=0), rate_limited(reset_in=0))
    sent = run_cli(
        ["-v", "--log-format", "json", "send", SAMPLE_ISSUE, "--config", str(config),
         "--list", "members"]
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    lines = json_lines(sent.stderr)
    backoffs = [line for line in lines if line["event"] == "backoff"]
    assert [line["failures"] for line in backoffs] == [1, 2]
    assert all(line["level"] == "warning" and "429" in str(line["reason"]) for line in backoffs)
    assert any(line["event"] == "batch-retry" for line in lines)
    assert lines[-1]["event"] == "send-finished" and lines[-1]["sent"] == 25


def test_quiet_leaves_out_warnings(sample_project: Path) -> None:
    sample_project.parent.joinpath("newsletter.db").write_bytes(b"")
    sample_project.parent.joinpath("newsletter.db").chmod(0o644)
    warned = run_cli(["--config", str(sample_project), "validate"])
    assert "warning:" in warned.stderr
    quiet = run_cli(["-q", "--config", str(sample_project), "validate"])
    assert quiet.exit_code == 0
    assert quiet.stderr == ""
    assert "valid." in quiet.stdout


def test_v_and_q_together_are_refused(sample_project: Path) -> None:
    result = run_cli(["-v", "-q", "--config", str(sample_project), "validate"])
    assert result.exit_code == 2
    assert "choose one of -v and -q" in result.stderr


def test_shell_completion_as_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_NEWSLETTER_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "newsletter send --re")
    monkeypatch.setenv("COMP_CWORD", "2")
    from click.testing import CliRunner

    from newsletter.cli import main

    result = CliRunner().invoke(main, [], prog_name="newsletter")
    assert result.stdout.splitlines() == ["plain,--resend-unconfirmed", "plain,--retry-refused"]
