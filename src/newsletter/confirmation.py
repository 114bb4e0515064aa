"""The confirmation e-mail of a sign-up: its own template, the newsletter's language, and
one transactional message through the configured provider (not a send: no ledger, no
unsubscribe link, since the person is not on any list until they confirm)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import LoadedConfig
from .language import translations_for
from .message import PreparedIssue
from .models import Delivery, OutgoingIssue, RecipientRow
from .packaged import packaged_template
from .providers import get_provider
from .render.environment import build_environment, render_template
from .sandbox import RenderLimits
from .send import list_id_for

HTML_TEMPLATE = "confirm.html.j2"
TEXT_TEMPLATE = "confirm.txt.j2"
ISSUE_ID = "confirmations"
"""What the provider is told the message belongs to (the outbox's folder, SendGrid's category)."""
_LIMITS = RenderLimits(seconds=10, characters=200_000)


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


def confirmation_message(loaded: LoadedConfig, lists: list[str], confirm_url: str) -> OutgoingIssue:
    settings = loaded.settings
    newsletter = settings.newsletter
    gettext = translations_for(newsletter.language).gettext
    subject = gettext("Confirm your subscription to %(name)s") % {"name": newsletter.name}
    context = {
        "newsletter": newsletter,
        "lists": shown_lists(loaded, lists),
        "confirm_url": confirm_url,
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


def send_confirmation(
    loaded: LoadedConfig, subscriber_id: int, email: str, name: str, message: OutgoingIssue
) -> Delivery:
    """Deliver one confirmation e-mail now; the provider's outcome for it."""
    row: RecipientRow = (subscriber_id, email, name, {}, "")
    with get_provider(loaded) as provider:
        return provider.deliver(PreparedIssue(message), [row])
