"""scripts/install-chromium and install-postgresql, which scripts/test runs: when apt cannot
install the browser or the database server, its own words reach the output instead of being
thrown away."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from conftest import REPO

APT_ERROR = "E: Unable to locate package chromium"


def fake_command(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


def run_installer(
    bin_dir: Path, script: str = "install-chromium", **env: str
) -> subprocess.CompletedProcess[str]:
    """The script with a PATH of the fakes and the two tools it uses: no chromium (or
    initdb) on it, whether or not this machine has one."""
    for tool in ("bash", "sed"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    return subprocess.run(
        [str(REPO / "scripts" / script)],
        env={**os.environ, "PATH": str(bin_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_apt_s_reason_is_shown_when_chromium_cannot_be_installed(tmp_path: Path) -> None:
    fake_command(tmp_path, "id", "echo 0")
    fake_command(
        tmp_path, "apt-get", f'[ "$1" = update ] && exit 0\necho "{APT_ERROR}" >&2\nexit 100'
    )
    result = run_installer(tmp_path)
    assert result.returncode == 0
    assert "chromium could not be installed, so the browser tests will be skipped" in result.stdout
    assert f"    {APT_ERROR}" in result.stdout


def test_nothing_is_done_without_root(tmp_path: Path) -> None:
    fake_command(tmp_path, "id", "echo 1000")
    fake_command(tmp_path, "apt-get", f'echo "{APT_ERROR}"; touch "{tmp_path}/ran"; exit 100')
    result = run_installer(tmp_path)
    assert (result.returncode, result.stdout) == (0, "")
    assert not (tmp_path / "ran").exists()


def run_postgresql_installer(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    """Debian's versioned folder is looked for in an empty one: no PostgreSQL is found but
    what the test puts on PATH."""
    return run_installer(bin_dir, "install-postgresql", POSTGRESQL_LIB=str(bin_dir / "none"))


def test_apt_s_reason_is_shown_when_postgresql_cannot_be_installed(tmp_path: Path) -> None:
    fake_command(tmp_path, "id", "echo 0")
    error = "E: Unable to locate package postgresql"
    fake_command(tmp_path, "apt-get", f'[ "$1" = update ] && exit 0\necho "{error}" >&2\nexit 100')
    result = run_postgresql_installer(tmp_path)
    assert (result.returncode, result.stdout) == (0, "")  # not "ready": tests may skip
    assert "postgresql could not be installed, so the PostgreSQL store tests" in result.stderr
    assert f"    {error}" in result.stderr


def test_an_installed_postgresql_is_ready_without_apt(tmp_path: Path) -> None:
    fake_command(tmp_path, "initdb", "exit 0")
    fake_command(tmp_path, "apt-get", f'touch "{tmp_path}/ran"; exit 100')
    result = run_postgresql_installer(tmp_path)
    assert (result.returncode, result.stdout) == (0, "ready\n")
    assert not (tmp_path / "ran").exists()
