"""Files that hold a secret, and which of them other accounts on the machine can read.

newsletter.yml holds no secret (secrets are ``${VAR}`` references) and no setting points at
a key file, so the one such file is the SQLite store: it holds the subscribers and, when
NEWSLETTER_SECRET is unset, the secret that signs unsubscribe links, with which anyone can
unsubscribe anyone. SQLite's -wal and -shm files beside it hold recent pages of it too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .config import LoadedConfig


def readable_secret_files(loaded: LoadedConfig) -> list[str]:
    """A warning for each file holding a secret that group or others may read."""
    if os.name != "posix":  # mode bits mean nothing elsewhere
        return []
    if loaded.settings.store.url is not None:  # the server keeps it, under its own rights
        return []
    store = loaded.store_path
    candidates = [store, store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")]
    return [warning for path in candidates if (warning := _exposed(path)) is not None]


def _exposed(path: Path) -> str | None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    readers = [
        who for who, bit in (("group", stat.S_IRGRP), ("others", stat.S_IROTH)) if mode & bit
    ]
    if not readers:
        return None
    return (
        f"{path} is readable by {' and '.join(readers)} (mode {mode:04o}) but holds the "
        "subscriber list and, unless NEWSLETTER_SECRET is set, the secret that signs "
        f"unsubscribe links; run: chmod 600 {path}"
    )
