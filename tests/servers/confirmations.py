"""Confirmation e-mails as the outbox provider writes them, found the way a reader would."""

from __future__ import annotations

import email
import email.policy
import re
import time
from email.message import EmailMessage
from pathlib import Path


def confirmations_folder(config: Path) -> Path:
    """Where the sample project's outbox puts confirmation e-mails."""
    return config.parent / "outbox" / "confirmations"


def confirmation_for(config: Path, address: str, timeout: float = 10) -> EmailMessage:
    """The confirmation e-mail to ``address``, once the server has written it (after its
    answer, so a test waits for the file rather than for a fixed time)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [
            path
            for path in confirmations_folder(config).glob("*.eml")
            if path.name.endswith(f"-{address}.eml")
        ]
        if found:
            message = email.message_from_bytes(found[0].read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            return message
        assert time.monotonic() < deadline, f"no confirmation e-mail to {address}"
        time.sleep(0.02)


def link_in(message: EmailMessage) -> str:
    """The confirmation link of the text part."""
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    match = re.search(r"https?://\S+/confirm/[A-Za-z0-9_-]+", text)
    assert match is not None, text
    return match.group(0)
