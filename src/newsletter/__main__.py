"""``python -m newsletter`` runs the command line, as the ``newsletter`` script does."""

from newsletter.cli import run

run()
