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
from pathlib import Path

import click

from .. import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("scaffold", "init"),
    "validate": ("compose", "validate"),
    "build": ("compose", "build"),
    "preview": ("compose", "preview"),
    "check": ("checking", "check"),
    "subscribers": ("subscribers", "subscribers"),
    "store": ("store", "store"),
    "send": ("sending", "send"),
    "report": ("reporting", "report"),
    "unsubscribe": ("sending", "unsubscribe"),
    "run": ("scheduling", "run"),
    "schedule": ("scheduling", "schedule"),
    "suppressions": ("suppressions", "suppressions"),
    "serve": ("web", "serve"),
}
"""Command name -> (module in this package, attribute): in the order a newcomer meets them."""


SUMMARIES: dict[str, str] = {
    "init": "Write a newsletter of your own into DIRECTORY (default: the current folder).",
    "validate": "Check newsletter.yml, its sources and its template folder without building "
    "anything.",
    "build": "Build the next issue from the latest posts and file it under issues/.",
    "preview": "Serve the issue archive on localhost, or screenshot an issue at phone and "
    "desktop widths.",
    "check": "Check an issue before it is sent: size, links, images, contrast, structure, "
    "dark mode.",
    "subscribers": "Manage subscribers: import and export CSV files, add, remove, unsubscribe, "
    "list.",
    "store": "Look after the subscriber store: migrate its schema, copy it to PostgreSQL.",
    "send": "Send ISSUE (a number, folder name or 'latest') to the subscribers of its lists.",
    "report": "Show what became of ISSUE's send: recipients per state, and who needs a look.",
    "unsubscribe": "Verify an unsubscribe token and unsubscribe the person it names.",
    "run": "Build and send the issue that is due, once; do nothing when nothing is due.",
    "schedule": "Show the next times `newsletter run` will build and send, in the schedule's zone.",
    "suppressions": "Keep the subscriber store in step with SendGrid's suppression lists.",
    "serve": "Serve one-click unsubscribe links, the issue archive and SendGrid's Event Webhook.",
}
"""Each command's first docstring sentence, so `newsletter --help` lists the commands without
importing any of them (a test keeps the two equal)."""


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs.

    A timer calls `newsletter run` every few minutes; loading the web server, the SMTP
    and SendGrid clients and the renderer for every command would double its start time,
    and `newsletter --help` would load all of them just to print one line each.
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

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, from SUMMARIES; a command without one is imported for its help."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            summary = SUMMARIES.get(name)
            command = self.get_command(ctx, name) if summary is None else None
            shown = click.Command(name, help=summary) if command is None else command
            rows.append((name, shown.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsletter")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="NEWSLETTER_CONFIG",
    show_envvar=True,
    help="Path to newsletter.yml for every command (default: ./newsletter.yml); a --config "
    "after the command wins.",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log each step (sources read, issue filed, every batch sent) on stderr; -vv for "
    "debug detail.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print errors only: no warnings, no log lines.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="NEWSLETTER_LOG_FORMAT",
    show_envvar=True,
    help="json: one JSON object per log line, for journald and CI.",
)
def main(config_path: Path | None, verbose: int, quiet: bool, log_format: str) -> None:
    """Compose newsletter issues from your latest posts and send them to your lists.

    Shell completion: eval "$(_NEWSLETTER_COMPLETE=bash_source newsletter)" in ~/.bashrc
    (zsh_source for zsh, fish_source for fish).
    """
    from ..logs import configure

    if quiet and verbose:
        raise click.UsageError("choose one of -v and -q")
    configure(-1 if quiet else verbose, log_format)
