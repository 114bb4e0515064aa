"""The run lock: two ``newsletter run`` or ``build`` processes never work at the same time.

``build`` takes it as ``run`` does: a build by hand racing a timer's run would otherwise
give two issues numbered alike, or one slot two issues. Sends are kept apart per issue
by the ledger's own send lock instead, which works across hosts and lets several senders
share one send.

The lock is an ``flock`` on an open file, not the file's existence: the kernel drops it
when its process ends, however it ends, so a run killed with SIGKILL or by a reboot never
leaves a lock that has to be removed by hand. The file only carries who holds it (host, pid,
start time) for the message a second run prints.

The file is emptied on release, never deleted: deleting it would let one process lock the
old, unlinked file while another locks a new one at the same path, and both would run.
A file that still names a holder but is not locked was left by a process that died; the
next run takes it over and reports whom it took it from.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from .errors import LockedError

LOCK_DIR = ".newsletter"
LOCK_NAME = "run.lock"
DEFAULT_STALE_AFTER = timedelta(hours=6)
COMMANDS = ("run", "build")


def default_lock_path(base_dir: Path) -> Path:
    """Where a newsletter's run lock lives: beside newsletter.yml, in .newsletter/."""
    return base_dir / LOCK_DIR / LOCK_NAME


@dataclass(frozen=True)
class LockHolder:
    host: str
    pid: int
    started_at: datetime
    command: str = "run"
    """The newsletter command holding it, for the message a second process prints."""

    def line(self) -> str:
        started = self.started_at.isoformat(timespec="seconds")
        return f"{self.host} {self.pid} {started} {self.command}\n"

    @classmethod
    def parse(cls, text: str) -> LockHolder | None:
        """Read the file's one line; anything else (empty, torn, foreign) means unknown.

        A line of three fields was written before the command was recorded: a run's."""
        parts = text.split()
        if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] not in COMMANDS):
            return None
        host, pid, started = parts[:3]
        command = parts[3] if len(parts) == 4 else "run"
        try:
            started_at = datetime.fromisoformat(started)
            holder = cls(host=host, pid=int(pid), started_at=started_at, command=command)
        except ValueError:
            return None
        return holder if started_at.tzinfo is not None else None

    def __str__(self) -> str:
        return f"pid {self.pid} on host {self.host}, since {self.started_at.isoformat()}"


class RunLock:
    """``with RunLock(path, stale_after=...) as lock:`` holds the lock for the block.

    ``stale_after`` never breaks a lock (a live holder keeps it until it exits); past it
    the message for a second run says the holder looks stuck and how to stop it.
    """

    def __init__(
        self,
        path: Path,
        *,
        stale_after: timedelta = DEFAULT_STALE_AFTER,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        command: str = "run",
    ) -> None:
        if command not in COMMANDS:
            raise ValueError(f"the run lock is taken by {COMMANDS}, not {command!r}")
        self.path = Path(path)
        self.stale_after = stale_after
        self.command = command
        self._clock = clock
        self._fd: int | None = None
        self.holder: LockHolder | None = None
        """Who holds the lock now (this process), once acquired."""
        self.took_over_from: LockHolder | None = None
        """The holder a leftover lock file named, when a dead run's lock was taken over."""

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            current = LockHolder.parse(_read(fd))
            os.close(fd)
            raise self._locked(current) from None
        except BaseException:
            os.close(fd)
            raise
        self.took_over_from = LockHolder.parse(_read(fd))
        import socket  # only a lock taken needs the host's name, not a dry run reading the cache

        self.holder = LockHolder(socket.gethostname(), os.getpid(), self._clock(), self.command)
        _rewrite(fd, self.holder.line())
        self._fd = fd
        _HELD.add(fd)
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        _HELD.discard(fd)
        try:
            _rewrite(fd, "")  # a clean exit leaves nothing to take over
        finally:
            os.close(fd)  # closing drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def _locked(self, holder: LockHolder | None) -> LockedError:
        if holder is None:  # the holder has locked but not yet written its line
            who = "another `newsletter run` or `newsletter build` (just starting)"
        else:
            who = f"another `newsletter {holder.command}` ({holder})"
        message = (
            f"{who} holds {self.path}; it will finish on its own; if it is stuck, stop that process"
        )
        hint = None
        if holder is not None:
            running_for = self._clock() - holder.started_at
            if running_for > self.stale_after:
                hint = (
                    f"it has been running for {_duration(running_for)}, longer than a run "
                    f"should take; check it with `ps -p {holder.pid}` on {holder.host} and "
                    f"stop it with `kill {holder.pid}`"
                )
        return LockedError(message, hint=hint)


_HELD: set[int] = set()
"""Descriptors of the run locks this process holds."""


def _forget_in_child() -> None:
    """A forked child (a send's worker process) closes its copies of the run locks: the
    kernel keeps an ``flock`` while any copy is open, so a worker outliving a killed run by
    a moment would otherwise make the next run think the dead one still runs."""
    for fd in _HELD:
        with suppress(OSError):
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _rewrite(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, text.encode("utf-8"))
    os.fsync(fd)


def _duration(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
