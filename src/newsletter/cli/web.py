"""`newsletter serve`: the unsubscribe endpoint, the archive and SendGrid's webhook."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .common import config_option, handle_errors, load, warn

WEBHOOK_STATES = {
    "verified": "/webhooks/sendgrid, signatures verified",
    "unsigned": "/webhooks/sendgrid, NOT verified (web.accept_unsigned_webhook_events)",
    "off": "off (answers 503): set web.sendgrid_webhook_key to turn it on",
}
UNSIGNED_WARNING = (
    "web.accept_unsigned_webhook_events is on: anyone who reaches /webhooks/sendgrid can mark "
    "subscribers bounced or complained; set web.sendgrid_webhook_key to SendGrid's "
    "verification key instead"
)


@click.command()
@config_option
@click.option("--host", help="Address to listen on (default: web.host in newsletter.yml).")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="Port to listen on (default: web.port in newsletter.yml).",
)
@click.option(
    "--access-log",
    is_flag=True,
    help="Log every request (tokens in paths hidden). Off by default: the proxy in front "
    "usually logs them, and here it cost a sixth of each request's time.",
)
@handle_errors
def serve(config_path: Path | None, host: str | None, port: int | None, access_log: bool) -> None:
    """Serve unsubscribe links, preferences, sign-up, the archive and SendGrid's webhook.

    Unsubscribe links in sent issues point at /unsubscribe/<token>, so unsubscribe.url in
    newsletter.yml must reach this server (usually through a reverse proxy with HTTPS).
    Point SendGrid's Event Webhook at /webhooks/sendgrid so bounces and spam complaints
    take people off your lists. Stop with Ctrl+C.
    """
    import uvicorn

    from ..web import RedactTokens, create_app
    from ..web.protocol import JoinedWritesProtocol

    loaded = load(config_path)
    web = loaded.settings.web
    app = create_app(loaded)
    host = host or web.host
    port = port or web.port
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(f"serving {loaded.settings.newsletter.name} on http://{shown_host}:{port}/")
    click.echo("  archive: / (index.html, feed.xml, each issue's page and email.html)")
    click.echo(f"  unsubscribe links: {loaded.unsubscribe_url}/<token>")
    click.echo("  preferences: /preferences/<token>, linked from the unsubscribe page")
    public = [lst.name for lst in loaded.settings.lists if lst.public]
    click.echo(
        f"  sign-up: /subscribe for {', '.join(public)}"
        if public
        else "  sign-up: closed (no list has public: true)"
    )
    click.echo(f"  SendGrid Event Webhook: {WEBHOOK_STATES[web.webhook_mode]}")
    if web.webhook_mode == "unsigned":
        warn(UNSIGNED_WARNING)
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=JoinedWritesProtocol,
        server_header=False,
        log_level="info",
        access_log=access_log,
    )
