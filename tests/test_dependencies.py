"""Dependencies: every one bounded below and above in pyproject.toml, and requirements.lock pins them all, hashed.

No network: the lock is checked against pyproject.toml as text. After a change of
dependencies, `make lock` writes the lock again.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
LOCK_TEXT = (ROOT / "requirements.lock").read_text(encoding="utf-8")


def declared() -> list[Requirement]:
    project = PYPROJECT["project"]
    extras = project.get("optional-dependencies", {})
    return [Requirement(text) for text in [*project["dependencies"], *(r for group in extras.values() for r in group)]]


def locked() -> dict[str, tuple[Version, list[str]]]:
    """Name -> (pinned version, hashes) of every entry of requirements.lock."""
    entries: dict[str, tuple[Version, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK_TEXT):
        first = block.split("\\", 1)[0].strip()
        if not first or first.startswith(("#", "-")):
            continue
        name, _, version = first.partition("==")
        assert version, f"requirements.lock: {first!r} is not pinned with =="
        entries[canonicalize_name(name)] = (Version(version.strip()), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return entries


def test_every_dependency_has_a_lower_and_an_upper_bound() -> None:
    loose = []
    for requirement in declared():
        operators = {spec.operator for spec in requirement.specifier}
        if not (operators & {">=", ">", "~=", "=="} and operators & {"<", "<=", "~=", "=="}):
            loose.append(str(requirement))
    assert not loose, f"bound these below and above in pyproject.toml: {loose}"


def test_the_lock_pins_every_dependency_within_its_bounds_with_hashes() -> None:
    pins = locked()
    assert len(pins) > 50
    unhashed = [name for name, (_, hashes) in pins.items() if not hashes]
    assert not unhashed, f"requirements.lock entries without --hash: {unhashed}"
    # The runtime dependencies and the dev extra; other extras (fasttext) are optional and not locked.
    wanted = [Requirement(text) for text in PYPROJECT["project"]["dependencies"]]
    wanted += [Requirement(text) for text in PYPROJECT["project"]["optional-dependencies"]["dev"]]
    problems = []
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement.name} is not in requirements.lock")
        elif not requirement.specifier.contains(pins[name][0], prereleases=True):
            problems.append(f"{requirement.name}=={pins[name][0]} is outside {requirement.specifier}")
    assert not problems, "; ".join(problems) + " (run `make lock`)"
