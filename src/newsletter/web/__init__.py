"""The HTTP side of the newsletter: one-click unsubscribe, the archive and provider webhooks."""

from __future__ import annotations

from .app import RedactTokens, create_app, create_preview_app

__all__ = ["RedactTokens", "create_app", "create_preview_app"]
