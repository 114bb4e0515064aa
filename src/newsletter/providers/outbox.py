"""The default provider: every message becomes an .eml file in a folder, nothing leaves.

A first send needs no account and no server, and the files open in any mail client, so
an editor sees exactly what subscribers would get.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import ProviderError
from ..message import PreparedIssue
from ..send_models import Delivery, Outcome, Recipient, RecipientRow
from .base import Provider

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
        self, issue: PreparedIssue, rows: Sequence[RecipientRow]
    ) -> list[tuple[int, Path, bytes]]:
        folder = self.directory / safe_name(issue.issue.issue_id)
        domain = self.domain_for(issue)
        payload = []
        for sid, email, name, values, token in rows:
            recipient = Recipient(sid, email, name, values, issue.issue.unsubscribe_url(token))
            data = issue.render(recipient, issue.values_for(recipient), message_id_domain=domain)
            payload.append((sid, folder / f"{sid}-{safe_name(email)}.eml", data))
        return payload

    def post(
        self, payload: list[tuple[int, Path, bytes]], subscriber_ids: Sequence[int]
    ) -> Delivery:
        """Each message written whole (or not at all); a write that fails stops the send,
        since the next ones would fail the same way (a full disk, a missing folder)."""
        for index, (_, path, data) in enumerate(payload):
            try:
                _write_atomically(path, data)
            except OSError as exc:
                stop = ProviderError(
                    f"outbox: cannot write {path}: {exc.strerror or exc}; "
                    "check provider.outbox.directory and its permissions"
                )
                written = {sid: (Outcome.ACCEPTED, "") for sid, _, _ in payload[:index]}
                return Delivery(
                    tuple(subscriber_ids), Outcome.NOT_DELIVERED, stop.message, written, halt=stop
                )
        return Delivery.of_all(subscriber_ids, Outcome.ACCEPTED, provider_id=self.name)


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers never see half a message: write beside it, then rename over it.

    Messages carry addresses and personal links, so folders are 0700 and files 0600."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".eml")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
