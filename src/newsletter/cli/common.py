"""What every command shares: the --config option and turning errors into exit codes.

Commands stay thin: they call the library and let ``handle_errors`` print a
``NewsletterError`` as one readable message with the exit status it carries.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
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
    help="Path to newsletter.yml (default: ./newsletter.yml).",
)


def load(config_path: Path | None) -> LoadedConfig:
    return load_config(config_path)


def handle_errors(func: F) -> F:
    """Print a NewsletterError as 'error: ...' on stderr and exit with its status."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NewsletterError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)
