"""`newsletter init`: a newsletter of one's own in a folder, from the installed package.

It writes a newsletter.yml holding every setting under a comment (generated from the
schema by ``config_docs``), the sample posts as examples to replace, and, if asked, a copy
of the default template to edit. It never overwrites: everything is written into a hidden
folder beside the targets and moved into place once complete, so a refusal or a failure
leaves the folder as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import DEFAULT_CONFIG_NAME
from .config_docs import commented_yaml
from .errors import ScaffoldError
from .packaged import DEFAULT_TEMPLATE, packaged_template, sample_content

CONTENT_FOLDER = "content"

STARTER: dict[str, Any] = {
    "newsletter": {
        "name": "Our Newsletter",
        "description": "What is new on our website, every week.",
        "site_url": "https://example.org",
        "language": "en",
        "timezone": "UTC",
        "sender": {"name": "Our Newsletter", "address": "newsletter@example.org"},
        "postal_address": "Example Organisation, 1 Example Street, Example Town",
    },
    "sources": [
        {
            "name": "posts",
            "type": "markdown",
            "path": CONTENT_FOLDER,
            "base_url": "https://example.org/blog",
            "guest": {"folders": ["guest"]},
        }
    ],
    "lists": [{"name": "members", "description": "Everyone who asked for the newsletter"}],
    "schedule": {"cron": "0 8 * * 2", "lists": ["members"]},
}
"""The settings a new newsletter starts from; every other key is the schema's default."""

EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "sources": [
        {
            "name": "partners",
            "type": "feed",
            "url": "https://example.org/feed.xml",
            "guest": {"tags": ["guest-column"]},
        }
    ],
    "authors": [
        {
            "name": "Ann Smith",
            "role": "Director of Nursing",
            "organisation": "Example Hospital",
            "link": "https://example.org/people/ann-smith",
            "aliases": ["asmith"],
        }
    ],
}
"""Commented-out items showing the list entries a new newsletter does not need yet."""

HEADER = """\
# newsletter.yml: every setting, each under a comment saying what it does.
# Written by `newsletter init`; paths are relative to this file. Secrets are ${ENV_VAR}
# references only. The full reference: docs/config-reference.md in newsletter's source.
"""


def starter_config() -> str:
    return HEADER + "\n" + commented_yaml(STARTER, EXAMPLES)


@dataclass(frozen=True)
class Scaffold:
    """What `init` wrote, for the command to tell."""

    directory: Path
    written: list[Path]


def create_newsletter(directory: Path, *, with_template: bool = False) -> Scaffold:
    """Write newsletter.yml, content/ and (if asked) templates/default/ into ``directory``."""
    targets = [DEFAULT_CONFIG_NAME, CONTENT_FOLDER]
    if with_template:
        targets.append(DEFAULT_TEMPLATE.split("/")[0])
    existing = [name for name in targets if (directory / name).exists()]
    if existing:
        shown = ", ".join(str(directory / name) for name in existing)
        raise ScaffoldError(
            f"not writing anything: {shown} already exist{'s' if len(existing) == 1 else ''}",
            hint="init only creates new files; choose another folder (newsletter init DIR) "
            "or move those away",
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".newsletter-init-", dir=directory) as staging:
            staged = Path(staging)
            (staged / DEFAULT_CONFIG_NAME).write_text(starter_config(), encoding="utf-8")
            shutil.copytree(sample_content(), staged / CONTENT_FOLDER)
            if with_template:
                shutil.copytree(packaged_template(), staged / DEFAULT_TEMPLATE)
            return Scaffold(directory, _move_into_place(staged, directory, targets))
    except OSError as exc:
        raise ScaffoldError(f"cannot write the new newsletter into {directory}: {exc}") from None


def _move_into_place(staged: Path, directory: Path, names: list[str]) -> list[Path]:
    moved: list[Path] = []
    try:
        for name in names:
            target = directory / name
            (staged / name).rename(target)
            moved.append(target)
    except OSError:
        for target in moved:  # leave the folder as it was found
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        raise
    return moved
