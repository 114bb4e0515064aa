"""Preview: the archive served on localhost, screenshots from a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path

import httpx
import pytest

from conftest import run_cli
from newsletter.config import load_config
from newsletter.preview import archive_server
from servers.web_app import first_answer, free_port, running_app

ON = "2026-11-24"
PUBLISHED = ("", "index.html", "feed.xml", f"001-{ON}/", f"001-{ON}/index.html",
             f"001-{ON}/email.html")  # fmt: skip


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def build_sample(config: Path) -> Path:
    result = run_cli(["build", "--config", str(config), "--date", ON])
    assert result.exit_code == 0, result.output
    return config.parent / "issues"


def test_archive_server_serves_the_issue_and_index(sample_project: Path) -> None:
    build_sample(sample_project)
    with archive_server(load_config(sample_project)) as server:
        with urllib.request.urlopen(f"{server.url}/{'001-' + ON}/email.html") as reply:
            body = reply.read().decode("utf-8")
        assert reply.status == 200
        assert "Leading Together" in body
        with urllib.request.urlopen(f"{server.url}/index.html") as reply:
            assert f'href="001-{ON}/"' in reply.read().decode("utf-8")


STRAY = {
    "report.csv": "email,state\nada@example.org,sent\n",
    "subscribers.json": '[{"email": "ada@example.org"}]',
    ".env": "NEWSLETTER_SECRET=hunter2",
    ".git/config": "[core]",
    f"001-{ON}/send-report.json": '{"failures": [{"email": "ada@example.org"}]}',
    f"001-{ON}/.notes": "ada@example.org",
}
"""Files nobody published that land in issues/: neither preview nor serve may show them."""


def add_stray_files(issues: Path) -> None:
    for name, text in STRAY.items():
        (issues / name).parent.mkdir(parents=True, exist_ok=True)
        (issues / name).write_text(text, encoding="utf-8")


def test_newsletter_preview_serves_the_published_pages_and_nothing_else(
    sample_project: Path,
) -> None:
    add_stray_files(build_sample(sample_project))
    port = free_port()
    preview = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "preview", "--config", str(sample_project),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        assert preview.stdout is not None
        banner = preview.stdout.readline() + preview.stdout.readline()
        first_answer(preview, base)
        published = [httpx.get(f"{base}/{path}") for path in PUBLISHED]
        stray = {name: httpx.get(f"{base}/{name}") for name in STRAY}
    finally:
        preview.terminate()
        preview.communicate(timeout=10)

    assert f"at {base}/" in banner
    assert [r.status_code for r in published] == [200] * len(PUBLISHED)
    assert {name: r.status_code for name, r in stray.items()} == dict.fromkeys(STRAY, 404)
    assert not any("ada@example.org" in r.text or "hunter2" in r.text for r in stray.values())


@pytest.mark.parametrize("name", sorted(STRAY))
def test_serve_does_not_publish_stray_files_either(sample_project: Path, name: str) -> None:
    add_stray_files(build_sample(sample_project))

    with running_app(sample_project) as client:
        reply = client.get(f"/{name}")

    assert reply.status_code == 404
    assert "ada@example.org" not in reply.text


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def brightness(png: Path) -> float:
    """Mean grey level (0 black, 255 white) of the top 1,200 pixels of a screenshot."""
    from PIL import Image, ImageStat

    with Image.open(png) as image:
        top = image.convert("L").crop((0, 0, image.width, min(1200, image.height)))
        return float(ImageStat.Stat(top).mean[0])


def test_screenshots_at_phone_and_desktop_widths(sample_project: Path, tmp_path: Path) -> None:
    build_sample(sample_project)
    out = tmp_path / "shots"
    result = run_cli(
        ["preview", "--config", str(sample_project), "--screenshot", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    phone = out / f"001-{ON}-375px.png"
    desktop = out / f"001-{ON}-640px.png"
    assert f"wrote {phone}" in result.stdout
    assert png_size(phone)[0] == 375
    assert png_size(desktop)[0] == 640
    # A blank page compresses to almost nothing; a rendered issue does not.
    assert phone.stat().st_size > 20_000
    # The same issue for a reader whose system prefers dark: the dark variant, not the light.
    for width, light in ((375, phone), (640, desktop)):
        dark = out / f"001-{ON}-{width}px-dark.png"
        assert png_size(dark)[0] == width
        assert brightness(light) > 180 and brightness(dark) < 70, (light, dark)


def test_screenshot_without_a_browser_says_how_to_install_one(
    sample_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_sample(sample_project)
    monkeypatch.delenv("NEWSLETTER_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    result = run_cli(["preview", "--config", str(sample_project), "--screenshot"])
    assert result.exit_code == 9
    assert "no Chromium browser found" in result.stderr
    assert "apt-get install chromium" in result.stderr


def test_preview_of_an_unknown_issue(sample_project: Path) -> None:
    build_sample(sample_project)
    result = run_cli(["preview", "--config", str(sample_project), "--issue", "42", "--screenshot"])
    assert result.exit_code == 5
    assert f"001-{ON}" in result.stderr
