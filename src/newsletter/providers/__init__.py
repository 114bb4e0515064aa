"""Providers deliver personalised messages; ``get_provider`` picks one from the settings.

The choice is a plain mapping from the configured type to a class, so what can be
configured is visible here and nothing is imported by name at run time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import LoadedConfig, ProviderSettings
from .base import Provider, backoff_delays, retry_delay

if TYPE_CHECKING:
    from .outbox import OutboxProvider
    from .sendgrid import SendgridProvider
    from .smtp import SmtpProvider

__all__ = [
    "OutboxProvider",
    "Provider",
    "SendgridProvider",
    "SmtpProvider",
    "backoff_delays",
    "get_provider",
    "retry_delay",
]

_MODULES = {"OutboxProvider": "outbox", "SmtpProvider": "smtp", "SendgridProvider": "sendgrid"}
"""Each provider's module, imported when the provider is first used: SendGrid's brings an
HTTP client, and a send through SMTP or the outbox, or a command that sends nothing, need
not load it."""


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_FACTORIES: dict[str, Callable[[ProviderSettings, Path, str | None], Provider]] = {
    "outbox": lambda settings, base, domain: __getattr__("OutboxProvider")(
        _under(base, settings.outbox.directory), message_id_domain=domain
    ),
    "smtp": lambda settings, base, domain: __getattr__("SmtpProvider")(
        settings.smtp, message_id_domain=domain
    ),
    "sendgrid": lambda settings, base, domain: __getattr__("SendgridProvider")(
        settings.sendgrid, message_id_domain=domain
    ),
}


def get_provider(
    source: LoadedConfig | ProviderSettings,
    *,
    base_dir: str | Path | None = None,
    message_id_domain: str | None = None,
) -> Provider:
    """The provider configured under ``provider:``, not yet opened.

    Relative outbox paths are taken from newsletter.yml's folder (or ``base_dir`` when
    plain settings are given, else the working directory).
    """
    if isinstance(source, LoadedConfig):
        settings = source.settings.provider
        base = source.base_dir
    else:
        settings = source
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    return _FACTORIES[settings.type](settings, base, message_id_domain)


def _under(base: Path, relative: str) -> Path:
    candidate = Path(relative).expanduser()
    return candidate if candidate.is_absolute() else base / candidate
