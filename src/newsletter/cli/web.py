"""`newsletter serve`: the unsubscribe endpoint, the archive and SendGrid's webhook."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .common import config_option, handle_errors, load, warn


@click.command()
@config_option
@click.option("--host", help="Address to listen on (default: web.host in newsletter.yml).")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="Port to listen on (default: web.port in newsletter.yml).",
)
@handle_errors
def serve(config_path: Path | None, host: str | None, port: int | None) -> None:
    """Serve one-click unsubscribe links, the issue archive and SendGrid's Event Webhook.

    Unsubscribe links in sent issues point at /unsubscribe/<token>, so unsubscribe.url in
    newsletter.yml must reach this server (usually through a reverse proxy with HTTPS).
    Point SendGrid's Event Webhook at /webhooks/sendgrid so bounces and spam complaints
    take people off your lists. Stop with Ctrl+C.
    """
    import uvicorn

    from ..web import RedactTokens, create_app

    loaded = load(config_path)
    web = loaded.settings.web
    app = create_app(loaded)
    host = host or web.host
    port = port or web.port
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(f"serving {loaded.settings.newsletter.name} on http://{shown_host}:{port}/")
    click.echo(f"  unsubscribe links: {loaded.unsubscribe_url}/<token>")
    click.echo("  SendGrid Event Webhook: /webhooks/sendgrid")
    if web.sendgrid_webhook_key is None:
        warn(
            "web.sendgrid_webhook_key is not set: unsigned webhook events are accepted; "
            "set it to SendGrid's verification key in production"
        )
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
    uvicorn.run(app, host=host, port=port, server_header=False, log_level="info")
