"""newsletter.yml -> a typed, validated ``Config``.

Every problem is collected and reported at once, each as
``newsletter.yml:LINE: key.path: what was expected, got what`` with the closest valid key
for a typo, so a comms team fixes the file in one pass instead of one error per run.
Secrets never live in the file: fields that hold them accept only ``${ENV_VAR}``
references, resolved when they are used.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .addresses import check_name
from .errors import ConfigError, NewsletterError
from .message import check_address, check_sender_name

DEFAULT_CONFIG_NAME = "newsletter.yml"
ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


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


def _address_in(header: str) -> Callable[[str | None], str | None]:
    return _writer_rule(lambda value: check_address(header, value))


def _check_secret(value: str | None) -> str | None:
    if value is None or ENV_REFERENCE.match(value):
        return value
    raise ValueError(
        "secrets never live in newsletter.yml: write an environment variable reference "
        "such as '${SENDGRID_API_KEY}' and set that variable"
    )


class Sender(_Model):
    name: str
    address: str

    _name = field_validator("name")(_writer_rule(check_sender_name))
    _address = field_validator("address")(_address_in("From"))


class NewsletterInfo(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    site_url: str
    archive_url: str | None = None
    """Public URL where the issues/ folder is published; view-in-browser links point here."""
    language: str = "en"
    timezone: str = "UTC"
    sender: Sender
    reply_to: str | None = None
    postal_address: str = Field(min_length=1)

    _site_url = field_validator("site_url")(_check_url)
    _reply_to = field_validator("reply_to")(_address_in("Reply-To"))
    _name = field_validator("name")(
        _writer_rule(lambda value: check_name(value, label="newsletter name"))
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
    folders: list[str] = []
    tags: list[str] = []
    authors: list[str] = []


class MarkdownSource(_Model):
    type: Literal["markdown"]
    name: str = Field(min_length=1)
    path: str
    base_url: str | None = None
    """Where the posts are published; a post's URL is base_url/slug/ unless it sets url."""
    guest: GuestRule = GuestRule()

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)


class FeedSource(_Model):
    type: Literal["feed"]
    name: str = Field(min_length=1)
    url: str
    """An http(s) URL or a file path relative to newsletter.yml."""
    guest: GuestRule = GuestRule()
    timeout: float = Field(default=10.0, gt=0)


SourceSettings = Annotated[MarkdownSource | FeedSource, Field(discriminator="type")]


class SelectionSettings(_Model):
    posts: int = Field(default=5, ge=0, le=50)
    guest_columns: int = Field(default=2, ge=0, le=20)
    window_days: int | None = Field(default=None, ge=1)
    min_posts: int = Field(default=1, ge=0)
    """Fewer new items than this and no issue is built."""
    pin: list[str] = []
    exclude: list[str] = []


class IssueSettings(_Model):
    subject: str = "{{ newsletter.name }} #{{ issue.number }}: {{ lead.title }}"
    preheader: str = "{{ lead.summary }}"
    first_number: int = Field(default=1, ge=1)


class Theme(_Model):
    primary_color: str = "#1d4f76"
    accent_color: str = "#c8553d"
    background_color: str = "#f3f4f6"
    text_color: str = "#1f2933"
    muted_color: str = "#616e7c"
    font_family: str = "Helvetica, Arial, sans-serif"
    font_url: str | None = None
    """A web font stylesheet to load; none by default, so nothing is fetched from a font host."""
    logo_url: str | None = None
    logo_alt: str | None = None
    logo_width: int = Field(default=160, ge=16, le=600)

    @field_validator(
        "primary_color", "accent_color", "background_color", "text_color", "muted_color"
    )
    @classmethod
    def _colour(cls, value: str) -> str:
        if not HEX_COLOUR.match(value):
            raise ValueError(f"expected a hex colour such as '#1d4f76', got {value!r}")
        return value

    @field_validator("font_url", "logo_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)


class TemplateSettings(_Model):
    directory: str = "templates/default"
    theme: Theme = Theme()
    time_limit: float = Field(default=10.0, gt=0, le=600)
    """Seconds one template render may take (the sandbox stops a runaway loop)."""
    output_limit: int = Field(default=5_000_000, ge=10_000)
    """Characters one template render may produce."""


class OutputSettings(_Model):
    directory: str = "issues"


class ListSettings(_Model):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""


class StoreSettings(_Model):
    path: str = "newsletter.db"


class OutboxSettings(_Model):
    directory: str = "outbox"


class SmtpSettings(_Model):
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password: str | None = None
    connections: int = Field(default=4, ge=1, le=64)
    """Connections used at once, each delivering its own batch."""
    batch_size: int = Field(default=50, ge=1, le=1000)
    """Messages per batch on one connection: a stop can leave at most one batch per
    connection with an unknown outcome, so smaller batches mean fewer unconfirmed."""
    timeout: float = Field(default=30.0, gt=0)

    _password = field_validator("password")(_check_secret)


class SendgridSettings(_Model):
    api_key: str = "${SENDGRID_API_KEY}"
    host: str = "https://api.sendgrid.com"
    sandbox: bool = False
    asm_group_id: int | None = None
    categories: list[str] = ["newsletter"]
    batch_size: int = Field(default=1000, ge=1, le=1000)
    connections: int = Field(default=1, ge=1, le=16)
    """Requests in flight at once, each built and posted by a worker process of its own."""
    timeout: float = Field(default=30.0, gt=0)

    _api_key = field_validator("api_key")(_check_secret)
    _host = field_validator("host")(_check_url)


class ProviderSettings(_Model):
    type: Literal["outbox", "smtp", "sendgrid"] = "outbox"
    outbox: OutboxSettings = OutboxSettings()
    smtp: SmtpSettings = SmtpSettings()
    sendgrid: SendgridSettings = SendgridSettings()


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
    secret: str = "${NEWSLETTER_SECRET}"

    _secret = field_validator("secret")(_check_secret)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    _mailto = field_validator("mailto")(_address_in("List-Unsubscribe"))


class ScheduleSettings(_Model):
    cron: str | None = None
    timezone: str | None = None
    lists: list[str] = []
    catch_up: Literal["latest", "skip"] = "latest"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)


class WebSettings(_Model):
    """`newsletter serve`: the one-click unsubscribe endpoint, the archive and webhooks."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    sendgrid_webhook_key: str | None = None
    """SendGrid's Event Webhook verification key (public, base64 DER); unset: unsigned events
    are accepted, so set it in production."""
    max_body_bytes: int = Field(default=1_000_000, ge=1024)


class Config(_Model):
    newsletter: NewsletterInfo
    sources: list[SourceSettings] = Field(min_length=1)
    selection: SelectionSettings = SelectionSettings()
    issue: IssueSettings = IssueSettings()
    template: TemplateSettings = TemplateSettings()
    output: OutputSettings = OutputSettings()
    store: StoreSettings = StoreSettings()
    lists: list[ListSettings] = []
    provider: ProviderSettings = ProviderSettings()
    sending: SendingSettings = SendingSettings()
    unsubscribe: UnsubscribeSettings = UnsubscribeSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    web: WebSettings = WebSettings()

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for what, names in (
            ("sources", [s.name for s in self.sources]),
            ("lists", [lst.name for lst in self.lists]),
        ):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(
                        f"{what}: the name {name!r} is used twice; names must be unique"
                    )
                seen.add(name)
        known = {lst.name for lst in self.lists}
        for name in self.schedule.lists:
            if known and name not in known:
                raise ValueError(
                    f"schedule.lists: {name!r} is not one of the lists {sorted(known)}"
                )
        return self


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
        return self.resolve(self.settings.template.directory)

    @property
    def store_path(self) -> Path:
        return self.resolve(self.settings.store.path)

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
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            ["file not found; create it (see the README) or pass --config FILE"], path=shown
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read the file: {exc}"], path=shown) from None
    return LoadedConfig(settings=parse_config(text, shown), path=config_path.resolve())


def parse_config(text: str, shown: str = DEFAULT_CONFIG_NAME) -> Config:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}" if mark is not None else shown
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            [f"{where}: YAML syntax error: {problem}; check indentation and quoting"], path=shown
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{shown}:1: expected a mapping of settings (newsletter:, sources:, ...)"], path=shown
        )
    lines = dict(_node_lines(root, ())) if root is not None else {}
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(err, data, lines, shown) for err in exc.errors()]
        raise ConfigError(sorted(set(problems), key=_line_of), path=shown) from None


def _line_of(problem: str) -> tuple[int, str]:
    match = re.match(r"^[^:]*:(\d+):", problem)
    return (int(match.group(1)) if match else 0, problem)


def _node_lines(node: yaml.Node, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], int]]:
    yield path, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            yield (*path, key), key_node.start_mark.line + 1
            for sub_path, line in _node_lines(value_node, (*path, key)):
                if sub_path != (*path, key):
                    yield sub_path, line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _node_lines(item, (*path, index))


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


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(err: Any, data: Any, lines: dict[tuple[Any, ...], int], shown: str) -> str:
    path = _data_path(tuple(err["loc"]), data)
    line_path = path
    while line_path and line_path not in lines:
        line_path = line_path[:-1]
    line = lines.get(line_path, 1)
    key = _dotted(path)
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
        key = _dotted(path)
        line = lines.get(path, line)
    elif kind in _EXPECTED:
        message = f"{_EXPECTED[kind]}, got {_shown(err.get('input'))}"
    elif kind == "value_error":
        message = str(err.get("ctx", {}).get("error", err["msg"]))
    elif kind == "literal_error":
        message = f"expected {err['ctx']['expected']}, got {_shown(err.get('input'))}"
    else:
        message = f"{err['msg'][0].lower()}{err['msg'][1:]}, got {_shown(err.get('input'))}"
    return f"{shown}:{line}: {key}: {message}"


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
    model: Any = Config
    for part in path[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return None
        model = _inner_model(field.annotation)
        if model is None:
            return None
    names: list[str] = []
    for candidate in model if isinstance(model, tuple) else (model,):
        names.extend(candidate.model_fields)
    matches = difflib.get_close_matches(str(path[-1]), names, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _inner_model(annotation: Any) -> Any:
    """The BaseModel (or tuple of them, for a union) behind an annotation like list[X]."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = typing.get_args(annotation)
    models = []
    for arg in args:
        inner = _inner_model(arg)
        if isinstance(inner, tuple):
            models.extend(inner)
        elif inner is not None:
            models.append(inner)
    if not models:
        return None
    return models[0] if len(models) == 1 else tuple(models)
