"""Look at an issue before anyone else does: serve the archive locally and take screenshots.

Screenshots come from a real headless Chromium at phone (375 px) and desktop-client
(640 px) widths, because that is how a comms team judges whether an issue "looks right";
an HTML parser cannot tell them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .config import LoadedConfig
from .errors import NewsletterError

if TYPE_CHECKING:
    from .web.server import LoopbackServer

DEFAULT_WIDTHS = (375, 640)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = (
    "install Chromium (Debian/Ubuntu: sudo apt-get install chromium) or set "
    "NEWSLETTER_CHROMIUM to the path of a Chromium or Chrome executable"
)


class BrowserNotFound(NewsletterError):
    exit_code = 9


class ScreenshotError(NewsletterError):
    exit_code = 9


def archive_server(
    loaded: LoadedConfig, port: int = 0, log_level: str = "warning"
) -> LoopbackServer:
    """The archive on localhost through the app ``newsletter serve`` runs: the same routes,
    so a file that is not published (a report, a dotfile) is not served here either."""
    from .web import create_preview_app
    from .web.server import LoopbackServer

    return LoopbackServer(create_preview_app(loaded), port=port, log_level=log_level)


def find_chromium() -> str:
    configured = os.environ.get("NEWSLETTER_CHROMIUM")
    if configured:
        if Path(configured).is_file() and os.access(configured, os.X_OK):
            return configured
        raise BrowserNotFound(
            f"NEWSLETTER_CHROMIUM is set to {configured!r}, which is not an executable file",
            hint=INSTALL_HINT,
        )
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserNotFound("no Chromium browser found for screenshots", hint=INSTALL_HINT)


SCHEMES = ("light", "dark")
DARK_FLAGS = ("--force-dark-mode", "--blink-settings=preferredColorScheme=0")
"""Make the page see ``prefers-color-scheme: dark`` (Blink's scheme 0 is dark)."""


CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""What a headless Chromium needs here (root, no GPU); the background-networking flags
keep it from calling home: on a machine without network those calls fail noisily and slow
every start. The browser tests launch it with the same."""


def chromium_command(
    browser: str, url: str, out: Path, width: int, height: int, profile: str, dark: bool = False
) -> list[str]:
    return [
        browser,
        "--headless",
        *CHROMIUM_FLAGS,
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        f"--screenshot={out}",
        *(DARK_FLAGS if dark else ()),
        url,
    ]


def screenshot(
    url: str,
    out: Path,
    *,
    width: int,
    height: int = 2400,
    timeout: float = 60,
    dark: bool = False,
) -> Path:
    """One PNG of ``url`` at ``width`` CSS pixels, written to ``out``; ``dark`` as a reader
    whose system prefers a dark colour scheme sees it."""
    browser = find_chromium()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="newsletter-chromium-") as profile:
        command = chromium_command(browser, url, out, width, height, profile, dark)
        try:
            completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ScreenshotError(
                f"Chromium took more than {timeout:.0f} s to render {url}"
            ) from None
    if completed.returncode != 0 or not out.is_file():
        detail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        raise ScreenshotError(
            f"Chromium could not screenshot {url} (exit {completed.returncode}): "
            + " | ".join(detail)
        )
    return out


def screenshot_issue(
    loaded: LoadedConfig,
    slug: str,
    out_dir: Path,
    *,
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    height: int = 2400,
    schemes: tuple[str, ...] = SCHEMES,
) -> list[Path]:
    """PNGs of one archived issue as a reader sees it, per width and colour scheme
    (``NNN-...-375px.png``, ``NNN-...-375px-dark.png``), served from localhost."""
    find_chromium()  # fail with the install hint before starting anything
    paths = []
    with archive_server(loaded) as server:
        url = f"{server.url}/{slug}/"
        for width in widths:
            for scheme in schemes:
                suffix = "" if scheme == "light" else f"-{scheme}"
                out = out_dir / f"{slug}-{width}px{suffix}.png"
                paths.append(
                    screenshot(url, out, width=width, height=height, dark=scheme == "dark")
                )
    return paths
