"""The ``newsletter`` command: a thin layer over the library API.

Exit statuses (documented in the README):
  0 success; 1 unexpected failure; 2 invalid configuration or usage; 3 a source or item
  failed; 4 a template failed; 5 the archive cannot be written; 6 the subscriber store;
  7 a send failed; 8 another send or run holds the lock; 10 nothing new to send.
"""

from __future__ import annotations

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsletter")
def main() -> None:
    """Compose newsletter issues from your latest posts and send them to your lists."""


def _register() -> None:
    import importlib

    for module_name in ("compose", "subscribers", "sending", "scheduling", "suppressions", "web"):
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{module_name}":
                raise
            continue
        for command in getattr(module, "COMMANDS", ()):
            main.add_command(command)


_register()
