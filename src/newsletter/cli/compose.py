"""Commands for the comms team: validate the config, build an issue, preview it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from ..archive import Archive
from ..build import BuildResult, build_issue
from ..secret_files import readable_secret_files
from ..sources import read_sources
from .common import DAY, config_option, handle_errors, json_option, load, print_json, warn


@click.command()
@config_option
@click.option("--strict", is_flag=True, help="Treat a skipped item as an error.")
@json_option
@handle_errors
def validate(config_path: Path | None, strict: bool, as_json: bool) -> None:
    """Check newsletter.yml, its sources and its template folder without building anything.

    Every problem in the file is listed at once, with its line and key. A store that other
    accounts can read is warned about, not refused.
    """
    loaded = load(config_path)
    warnings: list[str] = []
    if loaded.settings.web.webhook_mode == "unsigned":
        from .web import UNSIGNED_WARNING

        warnings.append(UNSIGNED_WARNING)
    warnings.extend(readable_secret_files(loaded))
    results = read_sources(loaded, strict=strict)
    warnings.extend(str(warning) for result in results for warning in result.warnings)
    for warning in warnings:
        warn(warning)
    if not loaded.template_dir.is_dir():
        from ..errors import TemplateError

        raise TemplateError(
            f"template folder {loaded.template_dir} does not exist",
            hint="check template.directory in newsletter.yml",
        )
    if as_json:
        from .shapes import validate_shape

        print_json(validate_shape(loaded, results, warnings))
        return
    posts = [post for result in results for post in result.posts]
    guests = sum(1 for post in posts if post.is_guest)
    click.echo(
        f"{loaded.path}: valid. {len(results)} sources, {len(posts)} items "
        f"({len(posts) - guests} posts, {guests} guest columns); "
        f"template {loaded.template_dir}"
    )


@click.command()
@config_option
@click.option(
    "--date",
    "on",
    type=DAY,
    default=None,
    help="Issue date (YYYY-MM-DD); default: today in the newsletter's time zone.",
)
@click.option("--dry-run", is_flag=True, help="Render and report, but file nothing under issues/.")
@click.option("--strict", is_flag=True, help="Treat a skipped item as an error.")
@json_option
@handle_errors
def build(config_path: Path | None, on: object, dry_run: bool, strict: bool, as_json: bool) -> None:
    """Build the next issue from the latest posts and file it under issues/.

    Exits with status 10, writing nothing, when no new content qualifies, so a
    scheduler can tell "nothing to send" from a failure.
    """
    loaded = load(config_path)
    issue_date: date | None = on.date() if on is not None else None  # type: ignore[attr-defined]
    result = build_issue(
        loaded,
        on=issue_date,
        dry_run=dry_run,
        strict=strict,
        on_warning=lambda w: warn(str(w)),
    )
    if as_json:
        from .shapes import build_shape

        print_json(build_shape(result))
    else:
        describe_build(result)
    if result.html_bytes > 102 * 1024:
        warn("the HTML is over 102 KB: Gmail clips longer messages; select fewer items")


def describe_build(result: BuildResult) -> None:
    """The built issue for people: where it is, its subject, items and sizes."""
    meta = result.rendered.meta
    verb = "would write" if result.dry_run else "built"
    click.echo(f"{verb} issue {meta.number} ({meta.date.isoformat()}): {result.path}")
    click.echo(f"  subject:   {meta.subject}")
    click.echo(f"  preheader: {meta.preheader}")
    click.echo("  items:")
    selection = result.rendered.selection
    for label, post in (
        [("lead", selection.lead)]
        + [("post", p) for p in selection.posts]
        + [("guest", p) for p in selection.guests]
    ):
        click.echo(f"    [{label:5}] {post.title}  <{post.url}>")
    click.echo(
        f"  html: {result.html_bytes / 1024:.1f} KB   text: {result.text_bytes / 1024:.1f} KB"
    )


@click.command()
@config_option
@click.option(
    "--issue",
    "issue_ref",
    default="latest",
    show_default=True,
    help="Which issue: its number, its folder name, or 'latest'.",
)
@click.option("--port", type=int, default=8000, show_default=True, help="Port to serve on.")
@click.option(
    "--screenshot",
    is_flag=True,
    help="Write PNG screenshots at 375 and 640 px wide, light and dark, with headless "
    "Chromium, then exit.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for screenshots (default: screenshots/ beside newsletter.yml).",
)
@handle_errors
def preview(
    config_path: Path | None, issue_ref: str, port: int, screenshot: bool, out_dir: Path | None
) -> None:
    """Serve the issue archive on localhost, or screenshot an issue at phone and desktop widths.

    The archive is served by the same app and routes as `newsletter serve`: the issue
    pages, each issue's email.html, the index and the feed, and nothing else in issues/.
    """
    from ..preview import archive_server, screenshot_issue

    loaded = load(config_path)
    archive = Archive(loaded.issues_dir, newsletter=loaded.settings.newsletter)
    issue = archive.find(issue_ref)
    if screenshot:
        target = out_dir or loaded.resolve("screenshots")
        for path in screenshot_issue(loaded, issue.slug, target):
            click.echo(f"wrote {path}")
        return
    server = archive_server(loaded, port=port, log_level="info")
    click.echo(f"serving the published files of {loaded.issues_dir} at {server.url}/")
    click.echo(f"  issue {issue.number}: {server.url}/{issue.slug}/   (Ctrl-C to stop)")
    server.run()
