"""The lock files pin what pyproject.toml asks for, so installs from them match the tests.

scripts/quickstart installs requirements.lock (the runtime) and scripts/test
requirements-dev.lock (the runtime's very pins plus the test and dev extras). After a
change to pyproject's dependencies, run scripts/lock; these tests fail until then.
"""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", re.MULTILINE)


def _pins(name: str) -> dict[str, str]:
    text = (REPO / name).read_text(encoding="utf-8")
    return {canonicalize_name(package): version for package, version in PIN.findall(text)}


def _project() -> dict[str, list[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = {"requirements.lock": project["dependencies"]}
    extras = project["optional-dependencies"]
    wanted["requirements-dev.lock"] = [*project["dependencies"], *extras["test"], *extras["dev"]]
    return wanted


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_every_dependency_is_pinned_at_a_version_pyproject_allows(lock: str) -> None:
    pins = _pins(lock)
    problems = []
    for line in _project()[lock]:
        requirement = Requirement(line)
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement.name} is not in {lock}")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{lock} pins {requirement.name}=={pinned}, outside {requirement}")
    assert problems == [], "run scripts/lock: " + "; ".join(problems)


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_every_pin_carries_hashes(lock: str) -> None:
    text = (REPO / lock).read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    pinned = [block for block in blocks if PIN.match(block)]
    assert pinned
    unhashed = [block.split()[0] for block in pinned if "--hash=sha256:" not in block]
    assert unhashed == []


def test_the_dev_lock_keeps_the_runtime_pins() -> None:
    runtime, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    differing = {name: (version, dev.get(name)) for name, version in runtime.items()}
    assert {name: pair for name, pair in differing.items() if pair[0] != pair[1]} == {}
