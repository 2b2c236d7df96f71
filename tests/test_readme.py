"""The README is the users' manual: it must document every setting and every command."""

from __future__ import annotations

import re
from pathlib import Path

from typer.main import get_command

from service.cli import app
from service.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    missing = [f"XINXI_{name.upper()}" for name in Settings.model_fields if f"XINXI_{name.upper()}" not in README]
    assert missing == []


def test_every_command_is_documented() -> None:
    command = get_command(app)
    names = list(command.commands)  # type: ignore[attr-defined]
    assert {"train", "evaluate", "predict", "serve", "models"} <= set(names)
    assert [name for name in names if f"xinxi {name}" not in README] == []


def test_quick_start_is_two_make_commands_and_ci_runs_the_second() -> None:
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "make serve" in quick and "make test" in quick
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test$", ci, re.MULTILINE)


def test_no_unfilled_placeholders() -> None:
    tokens = re.findall(r"\b[A-Z]+(?:_[A-Z]+){2,}\b", README)
    assert [token for token in tokens if not token.startswith("XINXI_")] == []
