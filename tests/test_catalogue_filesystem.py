"""Bad-input catalogue, the file system: a read-only issues folder, store or outbox, a
full disk, and paths that name the wrong kind of file. Each command exits non-zero naming
the path, and leaves no half-written issue, no changed store row and nobody sent.

Read-only folders do not stop root, so as root the command runs without the capabilities
that let it ignore permissions (util-linux's setpriv drops them). A full disk is a file
size limit (RLIMIT_FSIZE): a write past it fails with EFBIG, as on a full disk, for root and
for anyone else."""

from __future__ import annotations

import functools
import os
import resource
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bad_input import Case, assert_left_alone, cases, expect_refusal, mentions, setting, written
from conftest import (
    import_members,
)
from disk_state import project_state

NEXT_BUILD = ("build", "--date", "2026-12-08")
SEND = ("send", "--list", "members")
POST = "samples/content/2026-10-15-planning-for-winter.md"
DROP_OVERRIDES = ("setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--")
"""Root without these obeys file permissions like anyone else."""


# --- paths of the wrong kind, in-process -----------------------------------------------------


def not_a_database(config: Path) -> None:
    (config.parent / "newsletter.db").write_bytes(b"this is a spreadsheet, not SQLite" * 200)


IN_PROCESS = cases(
    ("issues folder under a file", setting("output.directory", "newsletter.yml/issues"),
     NEXT_BUILD, 5, "newsletter.yml/issues: cannot write to the issues folder: the path (or a "
     "folder above it) is a file, not a folder"),
    ("store path a folder", setting("store.path", "samples"), ("subscribers", "list"), 6,
     "samples: cannot open the subscriber store"),
    ("store not a database", not_a_database, ("subscribers", "list"), 6,
     "newsletter.db: cannot open the subscriber store: file is not a database"),
    ("outbox a file", setting("provider.outbox.directory", "newsletter.yml"), SEND, 7,
     "outbox: cannot write {project}/newsletter.yml/001-2026-11-24/", True),
    ("store folder missing under a file", setting("store.path", "newsletter.yml/x.db"),
     ("subscribers", "list"), 6, "newsletter.yml/x.db: cannot open the subscriber store"),
    ("feed path a folder", setting("sources.1.url", "samples"), NEXT_BUILD, 3,
     "source 'partners': cannot read the feed file"),
    ("csv path a folder", written("list.csv/x", ""),
     ("subscribers", "import", "{project}/list.csv", "--list", "members"), 2,
     "list.csv' is a directory"),
)  # fmt: skip


@pytest.mark.parametrize("case", IN_PROCESS)
def test_a_path_of_the_wrong_kind_is_named(built_copy: Path, case: Case) -> None:
    expect_refusal(built_copy, case)


# --- read-only folders and a full disk, in a process of their own --------------------------


@functools.cache
def can_drop_overrides() -> bool:
    """Whether a command can be made to obey file permissions: anyone but root does; root
    does once setpriv has dropped its overriding capabilities (a container may not allow
    that)."""
    if os.geteuid() != 0:
        return True
    if shutil.which(DROP_OVERRIDES[0]) is None:
        return False
    probe = subprocess.run([*DROP_OVERRIDES, "true"], capture_output=True, check=False)
    return probe.returncode == 0


def read_only(*relatives: str) -> Callable[[Path], None]:
    def lock(config: Path) -> None:
        for relative in relatives:
            path = config.parent / relative
            if path.exists():
                path.chmod(0o555 if path.is_dir() else 0o444)

    return lock


def unreadable(relative: str) -> Callable[[Path], None]:
    return lambda config: (config.parent / relative).chmod(0)


STORE_FILES = ("newsletter.db", "newsletter.db-wal", "newsletter.db-shm")
"""SQLite writes through its journal files when they exist, whatever their folder allows."""


def unlock(project: Path) -> None:
    for path in [project, *project.rglob("*")]:
        owner = stat.S_IRWXU if path.is_dir() else stat.S_IRUSR | stat.S_IWUSR
        path.chmod(path.stat().st_mode | owner)


def more_subscribers(config: Path) -> None:
    rows = "".join(f"reader{n}@example.org,Reader {n}\n" for n in range(2000))
    (config.parent / "more.csv").write_text("email,name\n" + rows, encoding="utf-8")


def many_members(config: Path) -> None:
    """Enough subscribers that their export is bigger than SQLite's 32 KB shared memory
    file, so a size limit between the two stops the export and not the store."""
    more_subscribers(config)
    import_members(config, config.parent / "more.csv")


def outbox(config: Path) -> None:
    """The folder a send would create, made first so that it can be locked."""
    (config.parent / "outbox").mkdir()


def nothing(config: Path) -> None:
    """The disk alone is the problem."""


IMPORT_MORE = ("subscribers", "import", "{project}/more.csv", "--list", "members")
STORE_SIZE = -1
"""As a file size limit: the size the store has, so it cannot grow."""

OUT_OF_PROCESS = [
    pytest.param(prepare, lock, command, limit, status, says, attempted, id=broken)
    for broken, prepare, lock, command, limit, status, says, attempted in [
        ("read-only issues folder", nothing, read_only("issues"), NEXT_BUILD, None, 5,
         "issues: cannot write to the issues folder: permission denied", False),
        ("read-only store folder, import", more_subscribers, read_only(".", *STORE_FILES),
         IMPORT_MORE, None, 6,
         "newsletter.db: attempt to write a readonly database\n  hint: check that the store "
         "and its folder are writable", False),
        ("read-only store folder, send", nothing, read_only(".", *STORE_FILES), SEND, None, 6,
         "newsletter.db: attempt to write a readonly database", False),
        ("read-only store file, add", nothing, read_only(*STORE_FILES),
         ("subscribers", "add", "zoe@example.org", "--list", "members"), None, 6,
         "newsletter.db: attempt to write a readonly database", False),
        ("read-only outbox", outbox, read_only("outbox"), SEND, None, 7,
         "outbox: cannot write {project}/outbox/" + "001-2026-11-24/", True),
        ("unreadable post", nothing, unreadable(POST), (*NEXT_BUILD, "--strict"), None, 3,
         "source 'blog': samples/content/2026-10-15-planning-for-winter.md: cannot be read: "
         "Permission denied", False),
        ("full disk, build", nothing, nothing, NEXT_BUILD, 8192, 5,
         "issues: cannot write to the issues folder: File too large\n  hint: make the folder "
         "writable and check that its disk has free space", False),
        ("full disk, import", more_subscribers, nothing, IMPORT_MORE, STORE_SIZE, 6,
         "newsletter.db: disk I/O error\n  hint: check that the store and its folder are "
         "writable and that the disk has free space", False),
        ("full disk, export", many_members, nothing,
         ("subscribers", "export", "--list", "members", "-o", "{project}/members.csv"), 40_000,
         6,
         "members.csv: cannot write the file: File too large", False),
    ]
]  # fmt: skip


@pytest.mark.parametrize(
    ("prepare", "lock", "command", "limit", "status", "says", "attempted"), OUT_OF_PROCESS
)
def test_a_read_only_or_full_disk_is_named_and_nothing_is_half_written(
    built_copy: Path,
    prepare: Callable[[Path], None],
    lock: Callable[[Path], None],
    command: tuple[str, ...],
    limit: int | None,
    status: int,
    says: str,
    attempted: bool,
) -> None:
    if lock is not nothing and not can_drop_overrides():
        pytest.skip(
            "root ignores a read-only folder, and setpriv cannot drop the capabilities that "
            "let it (not installed, or not allowed here)"
        )
    built = built_copy
    project = built.parent
    prepare(built)
    before = project_state(project)
    if limit == STORE_SIZE:
        limit = (project / "newsletter.db").stat().st_size
    lock(built)
    try:
        result = run_in_process_of_its_own(
            [part.replace("{project}", str(project)) for part in command], built, limit,
            drop_overrides=lock is not nothing,
        )  # fmt: skip
    finally:
        unlock(project)
    output = result.stdout + result.stderr
    assert result.returncode == status, output
    assert mentions(output, says.replace("{project}", str(project))), (says, output)
    assert "Traceback" not in output
    assert_left_alone(built, before, attempted=attempted)


def run_in_process_of_its_own(
    command: list[str], config: Path, limit: int | None, *, drop_overrides: bool
) -> subprocess.CompletedProcess[str]:
    def limit_file_size() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    prefix = list(DROP_OVERRIDES) if drop_overrides and os.geteuid() == 0 else []
    environment = {k: v for k, v in os.environ.items() if k != "NEWSLETTER_SECRET"}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "newsletter", *command, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit_file_size,
        env=environment,
        check=False,
    )
