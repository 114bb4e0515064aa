"""The wheel as a user installs it: no repository, no editable paths, only the package.

Built from a copy of the files a build reads, installed with the locked dependencies into
a fresh virtual environment, then `newsletter init` and `newsletter build` run in a folder
of their own. It takes about a minute, so it carries the ``packaging`` marker
(``-m 'not packaging'`` leaves it out while developing) and a timeout of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE")
BUILD_FOLDERS = ("src", "templates", "samples")


def _run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, (
        f"{args}: exit {result.returncode}\n{result.stdout}{result.stderr}"
    )
    return result


@pytest.mark.packaging
@pytest.mark.timeout(900)
def test_an_installed_wheel_starts_and_builds_a_newsletter_with_no_repository_around(
    tmp_path: Path,
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        shutil.copy(REPO / name, source / name)
    for name in BUILD_FOLDERS:
        shutil.copytree(
            REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        ".",
        "--no-deps",
        "-q",
        "-w",
        tmp_path,
        cwd=source,
        env=env,
    )
    wheel = next(tmp_path.glob("newsletter-*.whl"))
    shutil.rmtree(source)

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path, env=env)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q"]
    _run(*pip, "--require-hashes", "-r", REPO / "requirements.lock", cwd=tmp_path, env=env)
    _run(*pip, "--no-deps", wheel, cwd=tmp_path, env=env)

    home = tmp_path / "home"
    home.mkdir()
    newsletter = venv / "bin" / "newsletter"
    started = _run(newsletter, "init", "ours", cwd=home, env=env)
    assert "newsletter build" in started.stdout
    project = home / "ours"
    validated = _run(newsletter, "validate", cwd=project, env=env)
    packaged = venv / "lib"
    assert f"template {packaged}" in validated.stdout, validated.stdout
    built = _run(newsletter, "build", "--date", "2026-11-24", cwd=project, env=env)
    assert "001-2026-11-24" in built.stdout
    html = (project / "issues" / "001-2026-11-24" / "email.html").read_text(encoding="utf-8")
    assert "Our Newsletter" in html
