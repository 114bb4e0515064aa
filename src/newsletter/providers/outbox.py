"""The default provider: every message becomes an .eml file in a folder, nothing leaves.

A first send needs no account and no server, and the files open in any mail client, so
an editor sees exactly what subscribers would get.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ..errors import ProviderError
from ..message import PreparedIssue
from ..models import DeliveryResult
from .base import Checked, Provider

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


def safe_name(text: str) -> str:
    """A file-name part that cannot leave its folder or upset any file system."""
    return _UNSAFE.sub("_", text).lstrip(".") or "_"


class OutboxProvider(Provider):
    name = "outbox"
    max_batch_size = 100

    def __init__(self, directory: str | Path, *, message_id_domain: str | None = None) -> None:
        super().__init__(message_id_domain=message_id_domain)
        self.directory = Path(directory)

    def build_payload(
        self, prepared: PreparedIssue, checked: Checked
    ) -> list[tuple[int, Path, bytes]]:
        folder = self.directory / safe_name(prepared.issue.issue_id)
        domain = self.domain_for(prepared.issue)
        return [
            (
                recipient.subscriber_id,
                folder / f"{recipient.subscriber_id}-{safe_name(recipient.email)}.eml",
                prepared.render(recipient, values, message_id_domain=domain),
            )
            for recipient, values in checked
        ]

    def post(self, payload: list[tuple[int, Path, bytes]]) -> list[tuple[int, Path]]:
        written = []
        for subscriber_id, path, data in payload:
            try:
                _write_atomically(path, data)
            except OSError as exc:
                raise ProviderError(
                    f"outbox: cannot write {path}: {exc.strerror or exc}; "
                    "check provider.outbox.directory and its permissions"
                ) from exc
            written.append((subscriber_id, path))
        return written

    def parse_results(
        self, payload: list[tuple[int, Path, bytes]], reply: list[tuple[int, Path]]
    ) -> list[DeliveryResult]:
        return [
            DeliveryResult(
                subscriber_id, ok=True, provider_id=path.relative_to(self.directory).as_posix()
            )
            for subscriber_id, path in reply
        ]


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers never see half a message: write beside it, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".eml")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
