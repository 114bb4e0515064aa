from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.errors import LockedError
from newsletter.lock import LockHolder, RunLock, default_lock_path

HOLD_AND_SLEEP = textwrap.dedent(
    """
    import sys, time
    from datetime import timedelta
    from newsletter.lock import RunLock

    with RunLock(sys.argv[1], stale_after=timedelta(hours=1)):
        print("locked", flush=True)
        time.sleep(60)
    """
)


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return default_lock_path(tmp_path)


@pytest.fixture
def holder(lock_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A second process that takes the lock and sleeps, as a running `newsletter run` would."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_SLEEP, str(lock_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "locked"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def test_lock_lives_beside_the_config(tmp_path: Path) -> None:
    assert default_lock_path(tmp_path) == tmp_path / ".newsletter" / "run.lock"


def test_a_second_process_is_refused_with_who_holds_the_lock(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(LockedError) as caught, RunLock(lock_path, stale_after=timedelta(hours=1)):
        pytest.fail("the lock was acquired while another process held it")
    message = str(caught.value)
    assert message.startswith(
        f"another `newsletter run` (pid {holder.pid} on host {socket.gethostname()}, since "
    )
    assert message.endswith(
        f") holds {lock_path}; it will finish on its own; if it is stuck, stop that process"
    )
    assert caught.value.exit_code == 8
    assert "hint" not in message


def test_the_lock_is_free_at_once_when_the_holder_is_terminated(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    holder.terminate()  # SIGTERM ends the sleep without running the with-block's exit
    holder.wait(timeout=10)
    with RunLock(lock_path, stale_after=timedelta(hours=1)) as lock:
        assert lock.held
        assert lock.took_over_from is not None and lock.took_over_from.pid == holder.pid


def test_a_killed_runs_lock_is_taken_over_and_reported(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    assert lock_path.read_text().split()[1] == str(holder.pid)  # the dead run's line is left

    with RunLock(lock_path, stale_after=timedelta(hours=1)) as lock:
        assert lock.took_over_from is not None
        assert lock.took_over_from.pid == holder.pid
        assert lock.took_over_from.host == socket.gethostname()
        assert lock_path.read_text().split()[:2] == [socket.gethostname(), str(os.getpid())]


def test_a_clean_release_leaves_nothing_to_take_over(lock_path: Path) -> None:
    with RunLock(lock_path, stale_after=timedelta(hours=1)) as first:
        assert first.took_over_from is None
    assert not first.held
    assert lock_path.exists() and lock_path.read_text() == ""
    with RunLock(lock_path, stale_after=timedelta(hours=1)) as second:
        assert second.took_over_from is None


def test_two_locks_in_one_process_also_exclude_each_other(lock_path: Path) -> None:
    first = RunLock(lock_path, stale_after=timedelta(hours=1)).acquire()
    with pytest.raises(LockedError, match=rf"\(pid {os.getpid()} on host "):
        RunLock(lock_path, stale_after=timedelta(hours=1)).acquire()
    first.release()
    with RunLock(lock_path, stale_after=timedelta(hours=1)) as again:
        assert again.held


def test_a_holder_running_past_stale_after_gets_a_hint_but_keeps_the_lock(
    lock_path: Path,
) -> None:
    start = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    with RunLock(lock_path, stale_after=timedelta(hours=2), clock=lambda: start) as held:
        later = RunLock(
            lock_path,
            stale_after=timedelta(hours=2),
            clock=lambda: start + timedelta(hours=7, minutes=5),
        )
        with pytest.raises(LockedError) as caught:
            later.acquire()
        assert held.held
    assert str(caught.value).endswith(
        "\n  hint: it has been running for 7 h 05 min, longer than a run should take; "
        f"check it with `ps -p {os.getpid()}` on {socket.gethostname()} and "
        f"stop it with `kill {os.getpid()}`"
    )


def test_a_holder_that_has_not_written_its_line_yet_is_just_starting(lock_path: Path) -> None:
    lock_path.parent.mkdir(parents=True)
    with lock_path.open("a") as raw:
        fcntl.flock(raw, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(LockedError) as caught:
            RunLock(lock_path, stale_after=timedelta(hours=1)).acquire()
    assert str(caught.value).startswith(
        f"another `newsletter run` or `newsletter build` (just starting) holds {lock_path}; "
    )


def test_holder_lines_that_cannot_be_read_mean_unknown() -> None:
    assert LockHolder.parse("") is None
    assert LockHolder.parse("host 12 yesterday") is None
    assert LockHolder.parse("host 12 2026-11-24T08:00:00") is None  # naive time
    parsed = LockHolder.parse("web1 12 2026-11-24T08:00:00+00:00\n")
    assert parsed == LockHolder("web1", 12, datetime(2026, 11, 24, 8, tzinfo=UTC))
    assert LockHolder.parse("web1 12 2026-11-24T08:00:00+00:00 build\n") == LockHolder(
        "web1", 12, datetime(2026, 11, 24, 8, tzinfo=UTC), "build"
    )
    assert LockHolder.parse("web1 12 2026-11-24T08:00:00+00:00 rm\n") is None
    assert str(parsed) == "pid 12 on host web1, since 2026-11-24T08:00:00+00:00"
