"""`newsletter init`: start a newsletter of one's own."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from ..scaffold import create_newsletter
from .common import handle_errors


@click.command()
@click.argument(
    "directory", required=False, default=".", type=click.Path(file_okay=False, path_type=Path)
)
@click.option(
    "--with-template",
    is_flag=True,
    help="Also copy the default template into templates/default/ to edit it.",
)
@handle_errors
def init(directory: Path, with_template: bool) -> None:
    """Write a newsletter of your own into DIRECTORY (default: the current folder).

    It writes newsletter.yml, with every setting explained in a comment, and example posts
    under content/ to replace with yours. Without --with-template the newsletter uses the
    template installed with newsletter. Nothing that exists is overwritten.
    """
    scaffold = create_newsletter(directory, with_template=with_template)
    for path in scaffold.written:
        click.echo(f"created {path}{'/' if path.is_dir() else ''}")
    click.echo("\nNext:")
    if directory.resolve() != Path.cwd().resolve():
        click.echo(f"  cd {shlex.quote(str(directory))}")
    click.echo("  newsletter validate     # check newsletter.yml and the posts")
    click.echo("  newsletter build        # build the first issue into issues/")
    click.echo("  newsletter preview      # look at it in your browser")
