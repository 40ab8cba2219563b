"""Issue 12: dependencies are locked — every requirement is pinned in constraints.txt, inside its range."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines.extend(extra)
    return [Requirement(line) for line in lines]


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, separator, version = line.partition("==")
        assert separator, f"constraints.txt pins exact versions only: {line!r}"
        pins[canonicalize_name(name)] = Version(version)
    return pins


@pytest.mark.parametrize("requirement", _requirements(), ids=str)
def test_every_requirement_is_pinned_inside_its_range(requirement: Requirement) -> None:
    pin = _pins().get(canonicalize_name(requirement.name))

    assert pin is not None, f"{requirement.name} is not pinned in constraints.txt"
    assert requirement.specifier.contains(pin, prereleases=True), (
        f"{requirement.name}=={pin} is outside {requirement}"
    )


def test_run_and_test_install_from_the_lock() -> None:
    for script in ("run", "test"):
        assert "-c constraints.txt" in (ROOT / script).read_text(), script


def test_the_http_server_is_bounded_to_the_minor_version_its_internals_are_used_from() -> None:
    [uvicorn] = [r for r in _requirements() if canonicalize_name(r.name) == "uvicorn"]

    assert any(spec.operator == "<" for spec in uvicorn.specifier), "serving.py subclasses uvicorn internals"
