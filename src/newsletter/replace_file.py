"""Write a file whole or not at all: a reader (or the next import) never sees half of one.

A full disk or a Ctrl-C part-way through an export would otherwise leave a truncated CSV
that looks like a complete list; here the text goes to a temporary file beside the target,
which replaces it only once every byte is written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


@contextlib.contextmanager
def replacing(path: Path, *, encoding: str = "utf-8") -> Iterator[TextIO]:
    """A text handle whose content becomes ``path`` when the block ends without error."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)  # mkstemp's 0600 would surprise whoever opens the export
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
