"""Preview: the archive served on localhost, screenshots from a real headless Chromium."""

from __future__ import annotations

import shutil
import struct
import urllib.request
from pathlib import Path

import pytest

from conftest import run_cli
from newsletter.preview import ArchiveServer

ON = "2026-11-24"


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
    issues = build_sample(sample_project)
    with ArchiveServer(issues) as server:
        with urllib.request.urlopen(f"{server.url}/{'001-' + ON}/email.html") as reply:
            body = reply.read().decode("utf-8")
        assert reply.status == 200
        assert "Leading Together" in body
        with urllib.request.urlopen(f"{server.url}/index.html") as reply:
            assert f'href="001-{ON}/"' in reply.read().decode("utf-8")


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
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
