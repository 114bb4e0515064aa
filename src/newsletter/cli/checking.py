"""`newsletter check`: the pre-send quality gate, for people and for scripts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..check import CheckReport, check_issue
from ..errors import CheckFailedError
from .common import config_option, handle_errors, load


@click.command()
@config_option
@click.argument("issue", default="latest")
@click.option(
    "--links", is_flag=True, help="Also fetch every link (HEAD, then GET); offline otherwise."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the findings as JSON (a stable shape)."
)
@handle_errors
def check(config_path: Path | None, issue: str, links: bool, as_json: bool) -> None:
    """Check an issue before it is sent: size, links, images, contrast, structure, dark mode.

    ISSUE is a number, a slug or "latest" (the default). Exits 12 when a finding that
    check.blocking lists is found (send and run then refuse to send), else 0; warnings
    are printed either way.
    """
    result = check_issue(load(config_path), issue, links=links)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(describe(result))
    if result.blocking:
        sys.exit(CheckFailedError.exit_code)


def describe(result: CheckReport) -> str:
    """The findings as lines for people: what, where, how to fix."""
    if not result.findings:
        return f"issue {result.issue}: no findings"
    lines = [
        f"issue {result.issue}: {len(result.blocking)} blocking, "
        f"{len(result.findings) - len(result.blocking)} warning(s)"
    ]
    for finding in result.findings:
        label = "BLOCKS" if finding.blocking else "warns "
        lines += [
            f"  {label} {finding.code}: {finding.message}",
            f"         at {finding.element}",
            f"         fix: {finding.fix}",
        ]
    return "\n".join(lines)
