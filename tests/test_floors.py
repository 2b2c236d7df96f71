"""The three floors: model <- training <- service, and one door into training."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(package: str) -> dict[str, set[str]]:
    """Every module a package's files import, by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(ROOT))] = names
    return found


def test_the_service_enters_training_only_through_its_door() -> None:
    reaching_in = {
        path: sorted(name for name in names if name.startswith("training."))
        for path, names in _imports("service").items()
    }
    assert {path: names for path, names in reaching_in.items() if names} == {}


def test_training_never_imports_the_service() -> None:
    upward = {path: sorted(n for n in names if n.split(".")[0] == "service") for path, names in _imports("training").items()}
    assert {path: names for path, names in upward.items() if names} == {}


def test_the_door_lists_what_the_service_uses() -> None:
    import training

    used = set()
    for path in sorted((ROOT / "service").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "training":
                used.add(node.attr)
            elif isinstance(node, ast.ImportFrom) and node.module == "training":
                used.update(alias.name for alias in node.names)
    assert used, "the service uses training somewhere"
    assert used <= set(training.__all__)
