"""The confirmation e-mail of a sign-up: its own template, the newsletter's language, and
a transactional message through the configured provider (not a send: no ledger, no
unsubscribe link, since the person is not on any list until they confirm).

As with an issue, the message is rendered once (per set of lists) and the link is a merge
field filled per recipient; ``ConfirmationMailer`` sends from a queue in batches through
one provider kept open, so a thousand sign-ups a second cost a thousand fills, not a
thousand renders and connections.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import LoadedConfig
from .language import translations_for
from .message import PreparedIssue
from .packaged import packaged_template
from .providers import Provider, get_provider
from .render.environment import build_environment, render_template
from .sandbox import RenderLimits
from .send import list_id_for
from .send_models import OutgoingIssue, RecipientRow

HTML_TEMPLATE = "confirm.html.j2"
TEXT_TEMPLATE = "confirm.txt.j2"
ISSUE_ID = "confirmations"
"""What the provider is told the message belongs to (the outbox's folder, SendGrid's category)."""
_LIMITS = RenderLimits(seconds=10, characters=200_000)
_log = logging.getLogger("newsletter.web")


@dataclass(frozen=True)
class ListShown:
    name: str
    title: str
    description: str


def list_title(name: str) -> str:
    """How a list's name reads on a page or in an e-mail: members-news -> Members news."""
    return name.replace("-", " ").replace("_", " ").capitalize()


def shown_lists(loaded: LoadedConfig, names: list[str]) -> list[ListShown]:
    described = {lst.name: lst.description for lst in loaded.settings.lists}
    return [ListShown(name, list_title(name), described.get(name, "")) for name in names]


def template_folder(loaded: LoadedConfig) -> Path:
    """The configured template folder if it has the confirmation templates, else the
    packaged default: a template made before sign-up existed still gets the e-mail."""
    folder = loaded.template_dir
    if (folder / HTML_TEMPLATE).is_file() and (folder / TEXT_TEMPLATE).is_file():
        return folder
    return packaged_template()


LINK_FIELD = "confirm_url"


def confirmation_message(loaded: LoadedConfig, lists: Sequence[str]) -> OutgoingIssue:
    """The confirmation for these lists, its link left as the merge field ``confirm_url``."""
    settings = loaded.settings
    newsletter = settings.newsletter
    gettext = translations_for(newsletter.language).gettext
    subject = gettext("Confirm your subscription to %(name)s") % {"name": newsletter.name}
    context = {
        "newsletter": newsletter,
        "lists": shown_lists(loaded, list(lists)),
        "hours": settings.signup.confirm_within_hours,
        "subject": subject,
        "_": gettext,
    }
    folder = template_folder(loaded)
    env = build_environment(folder)
    html = render_template(env, folder, HTML_TEMPLATE, context, _LIMITS)
    text = render_template(env, folder, TEXT_TEMPLATE, context, _LIMITS)
    return OutgoingIssue(
        issue_id=ISSUE_ID,
        subject=subject,
        html=html,
        text=text,
        from_name=newsletter.sender.name,
        from_address=newsletter.sender.address,
        reply_to=newsletter.reply_to,
        list_id=list_id_for(loaded, lists[0]),
        categories=(ISSUE_ID,),
    )


@dataclass(frozen=True)
class Confirmation:
    """One confirmation e-mail to send."""

    subscriber_id: int
    email: str
    name: str
    lists: tuple[str, ...]
    url: str


class ConfirmationMailer:
    """Sends queued confirmations from a thread of its own, a batch at a time.

    What is still queued when the server stops is lost (the reader signs up again); a
    batch the provider could not take is logged, not retried, for the same reason.
    """

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self._queue: queue.Queue[Confirmation | None] = queue.Queue()
        self._prepared: dict[tuple[str, ...], PreparedIssue] = {}
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def send(self, confirmation: Confirmation) -> None:
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="confirmations", daemon=True)
                self._thread.start()
        self._queue.put(confirmation)

    def close(self, timeout: float = 30) -> None:
        """Send what is queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        provider = get_provider(self.loaded)
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                while len(batch) < provider.max_batch_size:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._deliver(provider, batch)
                        return
                    batch.append(more)
                self._deliver(provider, batch)
        finally:
            provider.close()

    def _deliver(self, provider: Provider, batch: list[Confirmation]) -> None:
        groups: dict[tuple[str, ...], list[Confirmation]] = {}
        for item in batch:
            groups.setdefault(item.lists, []).append(item)
        for lists, items in groups.items():
            # An address twice in a batch (signed up twice quickly) would be refused: the
            # latest link is the one kept.
            latest = {item.email.lower(): item for item in items}
            rows: list[RecipientRow] = [
                (item.subscriber_id, item.email, item.name, {LINK_FIELD: item.url}, "")
                for item in latest.values()
            ]
            try:
                delivery = provider.deliver(self._message(lists), rows)
            except Exception:
                _log.exception("confirmation e-mails for %d sign-ups failed", len(rows))
                provider.close()
                continue
            for sid in delivery.subscriber_ids:
                outcome, reason = delivery.outcome_of(sid)
                _log.info("confirmation e-mail to subscriber %d: %s %s", sid, outcome, reason)

    def _message(self, lists: tuple[str, ...]) -> PreparedIssue:
        prepared = self._prepared.get(lists)
        if prepared is None:
            prepared = self._prepared[lists] = PreparedIssue(
                confirmation_message(self.loaded, lists)
            )
        return prepared
