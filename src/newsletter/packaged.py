"""Where the default template and the sample content are, installed or not.

A wheel carries them as ``newsletter/data/`` (copied from the repository's top-level
``templates/`` and ``samples/`` at build time, see setup.py); a source checkout or an
editable install reads the top-level folders themselves, so there is one copy to edit.
"""

from __future__ import annotations

from pathlib import Path

from .errors import NewsletterError

DEFAULT_TEMPLATE = "templates/default"
"""template.directory's default, relative both to newsletter.yml and to the data root."""


def data_root() -> Path:
    """The folder holding templates/ and samples/: the package's data, else the checkout."""
    package = Path(__file__).resolve().parent
    for root in (package / "data", package.parent.parent):
        if (root / DEFAULT_TEMPLATE).is_dir():
            return root
    raise NewsletterError(
        f"the default template is missing from this installation ({package / 'data'}); "
        "reinstall newsletter"
    )


def packaged_template() -> Path:
    return data_root() / DEFAULT_TEMPLATE


def sample_content() -> Path:
    return data_root() / "samples" / "content"
