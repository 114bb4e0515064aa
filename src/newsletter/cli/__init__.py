"""The ``newsletter`` command: a thin layer over the library API.

Exit statuses (documented in the README):
  0 success; 1 unexpected failure; 2 invalid configuration or usage; 3 a source or item
  failed; 4 a template failed; 5 the archive cannot be written; 6 the subscriber store;
  7 a send failed or left recipients to retry; 8 another send or run holds the lock;
  10 nothing new to send; 11 sent, but some recipients' outcome is unconfirmed;
  12 the pre-send check found something that blocks a send.
"""

from __future__ import annotations

import importlib

import click

from .. import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("scaffold", "init"),
    "validate": ("compose", "validate"),
    "build": ("compose", "build"),
    "preview": ("compose", "preview"),
    "check": ("checking", "check"),
    "subscribers": ("subscribers", "subscribers"),
    "send": ("sending", "send"),
    "report": ("reporting", "report"),
    "unsubscribe": ("sending", "unsubscribe"),
    "run": ("scheduling", "run"),
    "schedule": ("scheduling", "schedule"),
    "suppressions": ("suppressions", "suppressions"),
    "serve": ("web", "serve"),
}
"""Command name -> (module in this package, attribute): in the order a newcomer meets them."""


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs.

    A timer calls `newsletter run` every few minutes; loading the web server, the SMTP
    and SendGrid clients and the renderer for every command would double its start time.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[cmd_name]
        module = importlib.import_module(f"{__name__}.{module_name}")
        command: click.Command = getattr(module, attribute)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsletter")
def main() -> None:
    """Compose newsletter issues from your latest posts and send them to your lists."""
