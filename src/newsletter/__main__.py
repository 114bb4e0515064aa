"""``python -m newsletter`` runs the command line, as the ``newsletter`` script does."""

from newsletter import run

run()
