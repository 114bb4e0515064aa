"""Look at an issue before anyone else does: serve the archive locally and take screenshots.

Screenshots come from a real headless Chromium at phone (375 px) and desktop-client
(640 px) widths, because that is how a comms team judges whether an issue "looks right";
an HTML parser cannot tell them.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .errors import NewsletterError

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


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class ArchiveServer:
    """The issues/ folder over HTTP on localhost, in a background thread."""

    directory: Path
    host: str = "127.0.0.1"
    port: int = 0
    quiet: bool = True

    def __post_init__(self) -> None:
        handler_class = _QuietHandler if self.quiet else SimpleHTTPRequestHandler
        handler = functools.partial(handler_class, directory=str(self.directory))
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ArchiveServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ArchiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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


def chromium_command(
    browser: str, url: str, out: Path, width: int, height: int, profile: str
) -> list[str]:
    # The background-networking flags keep Chromium from calling home: on a machine
    # without network those calls fail noisily and slow every start.
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        f"--screenshot={out}",
        url,
    ]


def screenshot(url: str, out: Path, *, width: int, height: int = 2400, timeout: float = 60) -> Path:
    """One PNG of ``url`` at ``width`` CSS pixels, written to ``out``."""
    browser = find_chromium()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="newsletter-chromium-") as profile:
        command = chromium_command(browser, url, out, width, height, profile)
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


@contextmanager
def served(directory: Path) -> Iterator[ArchiveServer]:
    with ArchiveServer(directory) as server:
        yield server


def screenshot_issue(
    issues_dir: Path,
    slug: str,
    out_dir: Path,
    *,
    widths: tuple[int, ...] = DEFAULT_WIDTHS,
    height: int = 2400,
) -> list[Path]:
    """PNGs of one archived issue as a reader sees it, one per width, served from localhost."""
    find_chromium()  # fail with the install hint before starting anything
    paths = []
    with served(issues_dir) as server:
        url = f"{server.url}/{slug}/"
        for width in widths:
            paths.append(
                screenshot(url, out_dir / f"{slug}-{width}px.png", width=width, height=height)
            )
    return paths
