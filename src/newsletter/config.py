"""newsletter.yml -> a typed, validated ``Config``.

Every problem is collected and reported at once, each as
``newsletter.yml:LINE: key.path: what was expected, got what`` with the closest valid key
for a typo, so a comms team fixes the file in one pass instead of one error per run.
The YAML is read once by ``yaml_loader`` (size limit, duplicate keys, bounded aliases).

``${VAR}`` means the same in every string setting (``env_refs``): the variable's value,
or an error naming the variable and the setting when it is unset; ``$${`` is a literal
``${``. Secrets never live in the file: the settings in ``RESOLVED_WHEN_USED`` accept only
one ``${ENV_VAR}`` reference (the webhook key, which is public, may also be written out),
left as written at load and read from the environment by ``resolve_secret`` when a command
needs it, so ``validate`` and ``build`` run without credentials.
"""



import os
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .config_size import check_size
from .env_refs import VARIABLE, ReferenceExpander
from .errors import ConfigError, NewsletterError
from .packaged import DEFAULT_TEMPLATE, packaged_template
from .store_url import check_store_url, resolve_store_url

if typing.TYPE_CHECKING:
    from .yaml_loader import ParsedYaml

DEFAULT_CONFIG_NAME = "newsletter.yml"
ENV_REFERENCE = re.compile(rf"^{VARIABLE}$")
RESOLVED_WHEN_USED = frozenset(
    {
        "provider.smtp.password",
        "provider.sendgrid.api_key",
        "unsubscribe.secret",
        "web.sendgrid_webhook_key",
        "store.url",
    }
)
"""Settings whose ``${VAR}`` is read by the command that uses them, not at load."""
HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")


class _Model(BaseModel):
    # Validators are built when a file is first checked, not when this module loads: a
    # config checked before is read back without them (config_cache), and a section's
    # default is made by a factory so that no model is built at import.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


def _check_colour(value: str) -> str:
    if not HEX_COLOUR.match(value):
        raise ValueError(f"expected a hex colour such as '#1d4f76', got {value!r}")
    return value


def _check_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"expected an http(s) URL such as https://example.org, got {value!r}")
    return value.rstrip("/")


def _writer_rule(check: Callable[[str], str]) -> Callable[[str | None], str | None]:
    """A check of the message writer as a validator, so validate refuses what a send would."""

    def validate(value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check(value)
        except NewsletterError as exc:
            raise ValueError(exc.message) from None

    return validate


def _optional(check: Callable[[str], str]) -> Callable[[str | None], str | None]:
    return lambda value: None if value is None else check(value)


def _address_in(header: str) -> Callable[[str | None], str | None]:
    return _writer_rule(lambda value: _check_address(header, value))


# The message writer's checks load when a file is checked: with them comes email-validator,
# which a config read back from the cache (config_cache) never needs.
def _check_address(header: str, value: str) -> str:
    from .message import check_address

    return check_address(header, value)


def _check_sender_name(value: str) -> str:
    from .message import check_sender_name

    return check_sender_name(value)


def _check_newsletter_name(value: str) -> str:
    from .addresses import check_name

    return check_name(value, label="newsletter name")


def _check_secret(value: str | None) -> str | None:
    if value is None or ENV_REFERENCE.match(value):
        return value
    raise ValueError(
        "secrets never live in newsletter.yml: write an environment variable reference "
        "such as '${SENDGRID_API_KEY}' and set that variable"
    )


class Sender(_Model):
    name: str
    """The display name in the From header."""
    address: str
    """The From address; the sending domain should be authenticated (SPF, DKIM, DMARC)."""

    _name = field_validator("name")(_writer_rule(_check_sender_name))
    _address = field_validator("address")(_address_in("From"))


class NewsletterInfo(_Model):
    name: str = Field(min_length=1)
    """The newsletter's name: the masthead, the subject's default and the List-Id header."""
    description: str = ""
    """One line about the newsletter, shown in the archive and its feed."""
    site_url: str
    """Your website (https); relative links in posts are made absolute against it."""
    archive_url: str | None = None
    """Public URL where the issues/ folder is published; view-in-browser links point here."""
    language: str = "en"
    """A BCP 47 tag (en, en-GB, fr): the message's lang, its dates and the template's words."""
    timezone: str = "UTC"
    """An IANA zone for the issue's date (Europe/London)."""
    sender: Sender
    """Who the issue is from."""
    reply_to: str | None = None
    """Where replies go, when not to the sender."""
    postal_address: str = Field(min_length=1)
    """The sender's postal address, printed in every footer as anti-spam laws ask."""

    _site_url = field_validator("site_url")(_check_url)
    _reply_to = field_validator("reply_to")(_address_in("Reply-To"))
    _name = field_validator("name")(
        _writer_rule(_check_newsletter_name)
    )  # written into every issue's List-Id header

    @field_validator("archive_url")
    @classmethod
    def _archive_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", value):
            raise ValueError(f"expected a language tag such as 'en' or 'en-GB', got {value!r}")
        from .language import locale_for  # Babel loads only when a config is checked

        locale_for(value)
        return value

    @property
    def public_archive_url(self) -> str:
        return self.archive_url or f"{self.site_url}/newsletter"


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"expected an IANA time zone such as 'Europe/London', got {value!r}"
        ) from None
    return value


class GuestRule(_Model):
    """Which items of a source are guest columns; any rule that matches makes one."""

    all: bool = False
    """Every item of the source is a guest column."""
    # factories, not a shared []: pydantic deep-copies a mutable default for every source
    folders: list[str] = Field(default_factory=list)
    """Subfolders (of a markdown source) whose posts are guest columns."""
    tags: list[str] = Field(default_factory=list)
    """Front-matter tags or feed categories that make an item a guest column."""
    authors: list[str] = Field(default_factory=list)
    """Authors whose items are guest columns."""


class MarkdownSource(_Model):
    type: Literal["markdown"]
    """'markdown': a folder of .md files with YAML front matter."""
    name: str = Field(min_length=1)
    """A unique name for the source, used in post ids and messages."""
    path: str
    """The folder, relative to newsletter.yml; subfolders are read too."""
    base_url: str | None = None
    """Where the posts are published; a post's URL is base_url/slug/ unless it sets url."""
    guest: GuestRule = Field(default_factory=GuestRule)
    """Which of its posts are guest columns."""

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)


class FeedSource(_Model):
    type: Literal["feed"]
    """'feed': an RSS 2.0 or Atom feed."""
    name: str = Field(min_length=1)
    """A unique name for the source, used in item ids and messages."""
    url: str
    """An http(s) URL or a file path relative to newsletter.yml."""
    guest: GuestRule = Field(default_factory=GuestRule)
    """Which of its items are guest columns (tags match the feed's categories)."""
    timeout: float = Field(default=10.0, gt=0)
    """Seconds to wait for a feed fetched over http(s)."""


SourceSettings = Annotated[MarkdownSource | FeedSource, Field(discriminator="type")]


class SelectionSettings(_Model):
    posts: int = Field(default=5, ge=0, le=50)
    """Most posts (not guest columns) in one issue."""
    guest_columns: int = Field(default=2, ge=0, le=20)
    """Most guest columns in one issue."""
    window_days: int | None = Field(default=None, ge=1)
    """Only items published in this many days before the issue date; null for no limit."""
    min_posts: int = Field(default=1, ge=0)
    """Fewer new items than this and no issue is built."""
    pin: list[str] = []
    """Item ids or URLs to include even if featured before."""
    exclude: list[str] = []
    """Item ids or URLs never to include."""


class SummarySettings(_Model):
    """How an item's summary is made from what its source gives (see sources/summary.py)."""

    length: int = Field(default=280, ge=40, le=2000)
    """Most characters a summary may have; it ends with a whole sentence or a word and '…'."""
    boilerplate: list[str] = []
    """Regular expressions of text to remove, besides the built-in platform patterns."""
    builtin_boilerplate: bool = True
    """Remove what WordPress, Ghost, Substack, Medium and Blogger add to feed items."""

    @field_validator("boilerplate")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for index, pattern in enumerate(value):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"item {index} ({pattern!r}) is not a regular expression: {exc}"
                ) from None
        return value


def name_key(name: str) -> str:
    """A person's name as names are compared: case and spacing ignored."""
    return " ".join(name.split()).casefold()


class AuthorSettings(_Model):
    """A person whose posts or columns appear, as every source's items should present them."""

    name: str = Field(min_length=1)
    """The name as bylines show it."""
    role: str | None = None
    """Their role, shown after the name."""
    organisation: str | None = None
    """Their organisation, shown after the role."""
    link: str | None = None
    """A page about them (https)."""
    photo: str | None = None
    """An image URL (https), shown beside their guest columns."""
    aliases: list[str] = []
    """Other spellings of the name that feeds use (a login, initials)."""

    @field_validator("link", "photo")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)


PREHEADER = (
    "{% if others %}{{ _('Also inside:') }} {{ others | join(' · ') }}"
    "{% else %}{{ lead.title }}{% endif %}"
)


CHECK_CODES = (
    "gmail-clip", "link-relative", "link-malformed", "link-broken", "link-text",
    "text-missing-link", "image-alt", "image-size", "contrast", "heading-order", "lang",
    "dark-mode", "hidden-text",
)  # fmt: skip


class CheckSettings(_Model):
    """`newsletter check`, which `send` and `run` run first: which findings stop a send."""

    blocking: list[str] = [
        "gmail-clip", "link-relative", "link-malformed", "text-missing-link", "hidden-text",
    ]  # fmt: skip
    """Findings that stop a send; every other finding is a warning."""
    ignore: list[str] = []
    """Findings not reported at all."""
    link_timeout: float = Field(default=10.0, gt=0, le=120)
    """Seconds per link when `check --links` fetches them."""
    link_concurrency: int = Field(default=8, ge=1, le=64)
    """Links fetched at once by `check --links`."""
    link_cache_hours: float = Field(default=24.0, ge=0)
    """How long a link's fetched status is reused."""

    @field_validator("blocking", "ignore")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        unknown = [code for code in value if code not in CHECK_CODES]
        if unknown:
            raise ValueError(
                f"unknown finding {', '.join(map(repr, unknown))}; known: {', '.join(CHECK_CODES)}"
            )
        return value


class IssueSettings(_Model):
    subject: str = "{{ newsletter.name }} #{{ issue.number }}: {{ lead.title }}"
    """The subject line, a Jinja template over newsletter, issue and lead."""
    preheader: str = PREHEADER
    """The inbox's preview line after the subject: by default the titles of the other items,
    which the lead's summary would only repeat at the top of the message."""
    first_number: int = Field(default=1, ge=1)
    """The number of the first issue."""


class DarkTheme(_Model):
    """The colours clients that honour ``prefers-color-scheme: dark`` show instead."""

    background_color: str = "#111418"
    """Behind the message's card, in dark mode."""
    card_color: str = "#1c2128"
    """The card, in dark mode."""
    text_color: str = "#e6e8eb"
    """Body text, in dark mode."""
    muted_color: str = "#a3acb6"
    """Bylines, dates and the footer, in dark mode."""
    primary_color: str = "#8cc4f0"
    """Headings and links, in dark mode."""
    accent_color: str = "#f2a08a"
    """Buttons and labels, in dark mode."""
    button_text_color: str = "#111418"
    """Text on buttons, in dark mode."""

    @field_validator("*")
    @classmethod
    def _colour(cls, value: str) -> str:
        return _check_colour(value)


class Theme(_Model):
    primary_color: str = "#1d4f76"
    """Headings, links and the masthead."""
    accent_color: str = "#b3472f"
    """Buttons and labels; keep it at 4.5:1 or more against white."""
    background_color: str = "#f3f4f6"
    """Behind the message's card."""
    text_color: str = "#1f2933"
    """Body text."""
    muted_color: str = "#616e7c"
    """Bylines, dates and the footer."""
    font_family: str = "Helvetica, Arial, sans-serif"
    """A CSS font stack."""
    font_url: str | None = None
    """A web font stylesheet to load; none by default, so nothing is fetched from a font host."""
    logo_url: str | None = None
    """A logo image (https) for the masthead; without it the name is shown."""
    logo_alt: str | None = None
    """The logo's alt text; by default the newsletter's name."""
    logo_width: int = Field(default=160, ge=16, le=600)
    """The logo's width in pixels."""
    dark: DarkTheme = Field(default_factory=DarkTheme)
    """Colours for dark mode."""

    @field_validator(
        "primary_color", "accent_color", "background_color", "text_color", "muted_color"
    )
    @classmethod
    def _colour(cls, value: str) -> str:
        return _check_colour(value)

    @field_validator("font_url", "logo_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)


class TemplateSettings(_Model):
    directory: str = DEFAULT_TEMPLATE
    """The template folder (email.mjml.j2, email.txt.j2). The default, when no such folder
    is beside newsletter.yml, is the template installed with newsletter."""
    theme: Theme = Field(default_factory=Theme)
    """Colours, fonts and logo the default template uses."""
    time_limit: float = Field(default=10.0, gt=0, le=600)
    """Seconds one template render may take (the sandbox stops a runaway loop)."""
    output_limit: int = Field(default=5_000_000, ge=10_000)
    """Characters one template render may produce."""


class OutputSettings(_Model):
    directory: str = "issues"
    """The issue archive (publish this folder); relative to newsletter.yml."""


class ListSettings(_Model):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    """The list's name (lower case, digits, - and _), as `--list` takes it."""
    description: str = ""
    """What the list is for; the sign-up and preferences pages show it."""
    public: bool = False
    """Whether readers may join it themselves (sign-up form, preferences page); anyone
    may always leave any list."""


class StoreSettings(_Model):
    path: str = "newsletter.db"
    """The SQLite file holding subscribers and the send ledger; keep it private."""
    url: str | None = None
    """A PostgreSQL store instead of the file: postgresql://USER:${PGPASSWORD}@HOST:PORT/DB
    (needs the postgres extra). The password is a ${VAR} reference or left out (PGPASSWORD)."""

    _url = field_validator("url")(_optional(check_store_url))

    @model_validator(mode="after")
    def _one_store(self) -> Self:
        if self.url is not None and "path" in self.model_fields_set:
            raise PlacedError(
                ("store", "url"), "store.path and store.url name two stores; keep the one you use"
            )
        return self


class OutboxSettings(_Model):
    directory: str = "outbox"
    """Where the outbox provider writes one .eml file per message."""


class SmtpSettings(_Model):
    host: str = "localhost"
    """The SMTP server."""
    port: int = Field(default=25, ge=1, le=65535)
    """587 for starttls, 465 for ssl, 25 for none."""
    security: Literal["none", "starttls", "ssl"] = "none"
    """none, starttls or ssl (implicit TLS)."""
    username: str | None = None
    """The login, when the server asks for one."""
    password: str | None = None
    """A ${ENV_VAR} reference, read when a send starts."""
    connections: int = Field(default=4, ge=1, le=64)
    """Connections used at once, each delivering its own batch."""
    batch_size: int = Field(default=50, ge=1, le=1000)
    """Messages per batch on one connection: a stop can leave at most one batch per
    connection with an unknown outcome, so smaller batches mean fewer unconfirmed."""
    timeout: float = Field(default=30.0, gt=0)
    """Seconds to wait for the server's answer."""

    _password = field_validator("password")(_check_secret)


class SendgridSettings(_Model):
    api_key: str = "${SENDGRID_API_KEY}"
    """A ${ENV_VAR} reference to an API key with Mail Send permission."""
    host: str = "https://api.sendgrid.com"
    """The API's address (tests point it at a local server)."""
    sandbox: bool = False
    """SendGrid's sandbox mode: requests are checked, nothing is delivered."""
    asm_group_id: int | None = None
    """An unsubscribe group (ASM) id, for SendGrid's own preference pages."""
    categories: list[str] = ["newsletter"]
    """Categories added to every message (the issue id comes first)."""
    batch_size: int = Field(default=1000, ge=1, le=1000)
    """Recipients per request (SendGrid takes at most 1,000)."""
    connections: int = Field(default=1, ge=1, le=16)
    """Requests in flight at once, each built and posted by a worker process of its own."""
    timeout: float = Field(default=30.0, gt=0)
    """Seconds to wait for SendGrid's answer."""

    _api_key = field_validator("api_key")(_check_secret)
    _host = field_validator("host")(_check_url)


class ProviderSettings(_Model):
    type: Literal["outbox", "smtp", "sendgrid"] = "outbox"
    """How messages leave: outbox (.eml files), smtp or sendgrid."""
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    """Settings of the outbox provider."""
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    """Settings of the SMTP provider."""
    sendgrid: SendgridSettings = Field(default_factory=SendgridSettings)
    """Settings of the SendGrid provider."""


class SendingSettings(_Model):
    """How a send retries recipients that were certainly not delivered."""

    max_attempts: int = Field(default=6, ge=1, le=100)
    """Attempts per recipient in one run, and batches failed in a row before a send stops."""
    retry_base: float = Field(default=1.0, ge=0)
    """Seconds before the first retry; doubled each time, with full jitter."""
    retry_cap: float = Field(default=60.0, ge=0)
    """The longest wait between two attempts, unless the provider asks for longer."""


class UnsubscribeSettings(_Model):
    url: str | None = None
    """The one-click endpoint served by `newsletter serve`; defaults to site_url/unsubscribe."""
    mailto: str | None = None
    """An address for mailto unsubscribes in List-Unsubscribe."""
    secret: str = "${NEWSLETTER_SECRET}"
    """A ${ENV_VAR} reference to the key signing unsubscribe links; when that variable is
    unset, the store keeps a random one."""

    _secret = field_validator("secret")(_check_secret)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    _mailto = field_validator("mailto")(_address_in("List-Unsubscribe"))


class ScheduleSettings(_Model):
    cron: str | None = None
    """When issues are due, as a cron expression (0 8 * * 2: Tuesdays at 8:00)."""
    timezone: str | None = None
    """The cron's zone; by default newsletter.timezone."""
    lists: list[str] = []
    """The lists `newsletter run` sends to."""
    catch_up: Literal["latest", "skip"] = "latest"
    """A missed slot: latest serves it late, however late; skip drops it an hour after its
    time, for newsletters where a late issue is worse than none."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        """Checked here too, so `validate` refuses a cron that `run` would refuse."""
        from .schedule import cron_problem  # schedule reads these settings

        problem = cron_problem(value.strip()) if value and value.strip() else None
        if problem is not None:
            raise ValueError(problem)
        return value


class SignupSettings(_Model):
    """Sign-up with double opt-in on `newsletter serve` (/subscribe) for the public lists."""

    confirm_within_hours: int = Field(default=48, ge=1, le=720)
    """How long a confirmation link works after it was sent."""
    per_ip_per_hour: int = Field(default=20, ge=1)
    """Sign-up requests one IP address may make in an hour (counted in memory, per
    process: a restart forgets them, and several processes count apart)."""
    per_address_per_hour: int = Field(default=3, ge=1)
    """Sign-up requests, so confirmation e-mails, one address may receive in an hour."""
    blocked_domains: list[str] = []
    """Mail domains refused as throwaway, beyond the well-known ones built in."""


class WebSettings(_Model):
    """`newsletter serve`: the one-click unsubscribe endpoint, the archive and webhooks."""

    host: str = "127.0.0.1"
    """The address `newsletter serve` listens on; put a TLS proxy in front."""
    port: int = Field(default=8080, ge=1, le=65535)
    """The port it listens on."""
    sendgrid_webhook_key: str | None = None
    """SendGrid's Event Webhook verification key (public, base64 DER); unset, the webhook
    is off unless ``accept_unsigned_webhook_events`` is on."""
    accept_unsigned_webhook_events: bool = False
    """Without a key, accept events nobody signed: anyone who can reach the server can then
    mark people bounced or complained. For a trial behind a private network only."""
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    """The largest request body accepted (webhook batches)."""

    @property
    def webhook_mode(self) -> Literal["verified", "unsigned", "off"]:
        """Whether ``POST /webhooks/sendgrid`` checks signatures, takes anything, or is off;
        a key always wins over the opt-in."""
        if self.sendgrid_webhook_key:
            return "verified"
        return "unsigned" if self.accept_unsigned_webhook_events else "off"


class Config(_Model):
    newsletter: NewsletterInfo
    """Who publishes the newsletter and how it presents itself."""
    sources: list[SourceSettings] = Field(min_length=1)
    """Where posts and guest columns come from: markdown folders and feeds."""
    selection: SelectionSettings = Field(default_factory=SelectionSettings)
    """What goes into the next issue."""
    summaries: SummarySettings = Field(default_factory=SummarySettings)
    """How item summaries are made."""
    authors: list[AuthorSettings] = []
    """People whose posts or columns appear, with role, organisation, link and photo."""
    check: CheckSettings = Field(default_factory=CheckSettings)
    """The pre-send check that `send` and `run` run first."""
    issue: IssueSettings = Field(default_factory=IssueSettings)
    """The subject and preheader of every issue."""
    template: TemplateSettings = Field(default_factory=TemplateSettings)
    """The template and its theme."""
    output: OutputSettings = Field(default_factory=OutputSettings)
    """The issue archive."""
    store: StoreSettings = Field(default_factory=StoreSettings)
    """The subscriber store and send ledger."""
    lists: list[ListSettings] = []
    """The subscriber lists."""
    provider: ProviderSettings = Field(default_factory=ProviderSettings)
    """How messages are delivered."""
    sending: SendingSettings = Field(default_factory=SendingSettings)
    """Retries of recipients certainly not delivered."""
    unsubscribe: UnsubscribeSettings = Field(default_factory=UnsubscribeSettings)
    """One-click unsubscribe links."""
    signup: SignupSettings = Field(default_factory=SignupSettings)
    """Sign-up with double opt-in for the lists marked public."""
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    """When `newsletter run` builds and sends."""
    web: WebSettings = Field(default_factory=WebSettings)
    """`newsletter serve`: unsubscribe endpoint, archive and webhook."""

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        for what, names in (
            ("sources", [s.name for s in self.sources]),
            ("lists", [lst.name for lst in self.lists]),
            (
                "authors",
                [
                    name_key(name)
                    for person in self.authors
                    for name in (person.name, *person.aliases)
                ],
            ),
        ):
            seen: dict[str, int] = {}
            for index, name in enumerate(names):
                if name in seen:
                    raise PlacedError(
                        (what, index, "name"),
                        f"the name {name!r} is used twice (first by {what}[{seen[name]}]); "
                        "names must be unique",
                    )
                seen[name] = index
        _outside_published(
            self.output.directory,
            ("store.path", self.store.path),
            ("provider.outbox.directory", self.provider.outbox.directory),
        )
        known = {lst.name for lst in self.lists}
        for index, name in enumerate(self.schedule.lists):
            if known and name not in known:
                raise PlacedError(
                    ("schedule", "lists", index),
                    f"{name!r} is not one of the lists {sorted(known)}",
                )
        return self


def _outside_published(published: str, *private: tuple[str, str]) -> None:
    """The issues folder is published as a whole by static hosts: the store and the outbox
    name every subscriber, so neither may live inside it. Paths are compared as written,
    relative to the same file; an absolute and a relative one are not compared."""
    folder = os.path.normpath(published)
    for key, path in private:
        inner = os.path.normpath(path)
        if os.path.isabs(inner) == os.path.isabs(folder) and (
            inner == folder or inner.startswith(folder.rstrip(os.sep) + os.sep) or folder == "."
        ):
            raise PlacedError(
                tuple(key.split(".")),
                f"{path!r} is inside output.directory ({published!r}), which is "
                "published; keep it beside newsletter.yml, outside the issues folder",
            )


class PlacedError(ValueError):
    """A check across settings that knows which one setting is at fault, so the message
    points at its line rather than at the top of the file."""

    def __init__(self, path: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config together with where it came from, for resolving relative paths."""

    settings: Config
    path: Path

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        """Paths in newsletter.yml are relative to the file, not to the working directory."""
        candidate = Path(relative).expanduser()
        return candidate if candidate.is_absolute() else (self.base_dir / candidate)

    @property
    def issues_dir(self) -> Path:
        return self.resolve(self.settings.output.directory)

    @property
    def template_dir(self) -> Path:
        """The folder named; the default one, absent beside the file, is the packaged one."""
        named = self.resolve(self.settings.template.directory)
        if self.settings.template.directory == DEFAULT_TEMPLATE and not named.exists():
            return packaged_template()
        return named

    @property
    def store_path(self) -> Path:
        return self.resolve(self.settings.store.path)

    @property
    def store_location(self) -> Path | str:
        """The SQLite file, or the PostgreSQL URL with its ``${VAR}`` read now."""
        url = self.settings.store.url
        return self.store_path if url is None else resolve_store_url(url)

    @property
    def unsubscribe_url(self) -> str:
        return self.settings.unsubscribe.url or f"{self.settings.newsletter.site_url}/unsubscribe"


def resolve_secret(reference: str | None, *, field: str) -> str:
    """Read a ``${VAR}`` secret from the environment at the moment it is needed."""
    if reference is None:
        raise ConfigError([f"{field}: no secret configured; set it to an '${{ENV_VAR}}' reference"])
    match = ENV_REFERENCE.match(reference)
    if not match:  # validated on load; guards direct construction
        raise ConfigError([f"{field}: expected an '${{ENV_VAR}}' reference"])
    name = match.group(1)
    value = os.environ.get(name)
    if not value:
        raise ConfigError(
            [f"{field}: the environment variable {name} is not set; export {name}=... and retry"]
        )
    return value


# --- loading -------------------------------------------------------------------------------


def find_config(path: str | Path | None = None) -> Path:
    """The file named, or newsletter.yml in the working directory."""
    return Path(path) if path is not None else Path.cwd() / DEFAULT_CONFIG_NAME


def load_config(path: str | Path | None = None) -> LoadedConfig:
    """Read, parse and validate newsletter.yml, raising one ConfigError with every problem."""
    config_path = find_config(path)
    shown = str(config_path)
    try:
        check_size(config_path.stat().st_size, shown)
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            ["file not found; create it (see the README) or pass --config FILE"], path=shown
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read the file: {exc}"], path=shown) from None
    from .config_cache import remembered_settings

    resolved = config_path.resolve()
    return LoadedConfig(settings=remembered_settings(resolved, text, shown), path=resolved)


def parse_config(text: str, shown: str = DEFAULT_CONFIG_NAME) -> Config:
    return parse_config_reading(text, shown)[0]


def parse_config_reading(text: str, shown: str = DEFAULT_CONFIG_NAME) -> tuple[Config, set[str]]:
    """The config, and the environment variables its settings were expanded from."""
    from .yaml_loader import read_yaml  # a config kept in the cache is never parsed

    expander = ReferenceExpander(shown, left_for_use=RESOLVED_WHEN_USED)
    parsed = read_yaml(text, shown, on_string=expander)
    data, unexpanded = parsed.data, expander.problems
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{shown}:1: expected a mapping of settings (newsletter:, sources:, ...)"], path=shown
        )
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        described = (_describe(err, data, parsed, shown) for err in exc.errors())
        problems = [problem for path, problem in described if path not in unexpanded]
    else:
        if not unexpanded:
            return config, expander.variables
        problems = []
    problems.extend(unexpanded.values())
    raise ConfigError(sorted(set(problems), key=_line_of), path=shown) from None


def _line_of(problem: str) -> tuple[int, str]:
    match = re.match(r"^[^:]*:(\d+):", problem)
    return (int(match.group(1)) if match else 0, problem)


_EXPECTED = {
    "string_type": "expected a string",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "float_type": "expected a number",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping of keys",
    "model_type": "expected a mapping of keys",
    "model_attributes_type": "expected a mapping of keys",
}


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop the parts pydantic adds to a location (union tags) that are not keys in the file."""
    path: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(part)
            node = node[part]
        elif (
            isinstance(node, dict)
            and isinstance(part, str)
            and part not in node
            and (part in ("markdown", "feed"))
        ):
            continue  # discriminator tag of the sources union
        else:
            path.append(part)
            node = None
    return tuple(path)


def _describe(err: Any, data: Any, parsed: "ParsedYaml", shown: str) -> tuple[tuple[Any, ...], str]:
    """The path in the file an error is about, and its message as the user sees it."""
    from .yaml_loader import dotted

    placed = err.get("ctx", {}).get("error")
    path = placed.path if isinstance(placed, PlacedError) else _data_path(tuple(err["loc"]), data)
    line = parsed.line_of(path)
    key = dotted(path)
    kind = err["type"]
    if kind == "missing":
        message = "required but missing; add it"
    elif kind == "extra_forbidden":
        message = "unknown key"
        suggestion = _closest_key(path)
        if suggestion:
            message += f"; did you mean '{suggestion}'?"
        else:
            message += "; remove it"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        given = err.get("input", {}).get("type") if isinstance(err.get("input"), dict) else None
        message = f"expected 'markdown' or 'feed', got {_shown(given)}"
        path = (*path, "type")
        key = dotted(path)
        line = parsed.lines.get(path, line)
    elif kind in _EXPECTED:
        message = f"{_EXPECTED[kind]}, got {_shown(err.get('input'))}"
    elif kind == "value_error":
        message = str(err.get("ctx", {}).get("error", err["msg"]))
    elif kind == "literal_error":
        message = f"expected {err['ctx']['expected']}, got {_shown(err.get('input'))}"
    else:
        message = f"{err['msg'][0].lower()}{err['msg'][1:]}, got {_shown(err.get('input'))}"
    return path, f"{shown}:{line}: {key}: {message}"


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)


def _closest_key(path: tuple[Any, ...]) -> str | None:
    """Suggest the valid key nearest to a misspelt one, from the model at that place."""
    if not path:
        return None
    models: tuple[type[BaseModel], ...] = (Config,)
    for part in path[:-1]:
        if isinstance(part, int):
            continue
        fields = [model.model_fields[part] for model in models if part in model.model_fields]
        if not fields:
            return None
        models = models_in(fields[0].annotation)
    import difflib  # only a config with a misspelt key needs it, not every command's start

    names = [name for model in models for name in model.model_fields]
    matches = difflib.get_close_matches(str(path[-1]), names, n=1, cutoff=0.6)
    return matches[0] if matches else None


def models_in(annotation: Any) -> tuple[type[BaseModel], ...]:
    """The models behind an annotation: a section's, a list's items', a union's kinds."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return (annotation,)
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(model for model in models_in(arg) if model not in found)
    return tuple(found)
