"""What every command shares: the --config and --json options, and errors as exit codes.

Commands stay thin: they call the library and let ``handle_errors`` print a
``NewsletterError`` as one readable message with the exit status it carries (and, under
``--json``, as a JSON object on stdout too, so a script reading stdout sees why).
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from ..config import LoadedConfig, load_config
from ..errors import NewsletterError

F = TypeVar("F", bound=Callable[..., Any])

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Path to newsletter.yml (default: `newsletter --config`, $NEWSLETTER_CONFIG, "
    "then ./newsletter.yml).",
)



class DayType(click.ParamType[datetime]):
    """A day written YYYY-MM-DD, read as click's ``DateTime(formats=["%Y-%m-%d"])`` reads it.

    The same values, errors and help, without ``strptime``: its first call imports
    ``_strptime`` and ``calendar``, a start-up cost on every ``build --date``.
    """

    name = "datetime"
    _DAY = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})", re.ASCII)

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "[%Y-%m-%d]"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        found = self._DAY.fullmatch(value) if isinstance(value, str) else None
        try:
            if found is None:
                raise ValueError
            year, month, day = (int(part) for part in found.groups())
            return datetime(year, month, day)
        except ValueError:
            self.fail(f"{value!r} does not match the format '%Y-%m-%d'.", param, ctx)


DAY = DayType()
"""The type of every option that takes a day."""

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON (docs/cli-json.md)."
)


def load(config_path: Path | None) -> LoadedConfig:
    """The config named after the command, else before it, else by NEWSLETTER_CONFIG."""
    return load_config(config_path or _config_given_above())


def _config_given_above() -> Path | None:
    """``newsletter --config X build``: the group's option, which also reads the variable;
    a command run on its own (by a script or a test) reads the variable itself."""
    context = click.get_current_context(silent=True)
    given = context.find_root().params.get("config_path") if context is not None else None
    if given:
        return Path(given)
    from_environment = os.environ.get("NEWSLETTER_CONFIG")
    return Path(from_environment) if from_environment else None


def print_json(data: object) -> None:
    """The stable JSON shapes of docs/cli-json.md: indented, UTF-8, keys in a fixed order."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def error_json(exc: NewsletterError) -> dict[str, object]:
    """What ``--json`` prints on stdout when a command fails (its status is the exit code)."""
    return {
        "error": {
            "type": type(exc).__name__,
            "status": exc.exit_code,
            "message": exc.message,
            "hint": exc.hint,
            "problems": list(getattr(exc, "problems", []) or []),
        }
    }


def handle_errors(func: F) -> F:
    """Print a NewsletterError as 'error: ...' on stderr and exit with its status."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NewsletterError as exc:
            if kwargs.get("as_json"):
                print_json(error_json(exc))
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def warn(message: str) -> None:
    """A warning on stderr, unless ``newsletter -q`` asked for errors only."""
    from ..logs import quiet

    if not quiet():
        click.echo(f"warning: {message}", err=True)
