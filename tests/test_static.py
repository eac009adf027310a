"""The code's habits are checked with the tests: lint, types and layering."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
        ["lint-imports"],
    ],
    ids=["ruff", "ruff-format", "mypy", "import-linter"],
)
def test_static_check_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_layers_contract_catches_a_core_module_importing_the_shell(tmp_path: Path) -> None:
    """A copy of the package with one core module reaching up into the runtime: the
    layered contract must break and name the import (so a new module is covered the day
    it is created)."""
    shutil.copytree(
        ROOT / "monitor", tmp_path / "monitor", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    probe = tmp_path / "monitor" / "core" / "added_later.py"
    probe.write_text(
        '"""A module added after the contract was written."""\n\nimport monitor.runtime.state\n'
    )
    result = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode != 0, result.stdout
    assert "monitor.core is not allowed to import monitor.runtime" in result.stdout
    assert "monitor.core.added_later -> monitor.runtime.state" in result.stdout
