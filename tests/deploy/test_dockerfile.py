"""The image's promises, read from the Dockerfile (no Docker engine is needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = DOCKERFILE.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def test_multi_stage_with_a_bare_final_stage() -> None:
    assert sum(keyword == "FROM" for keyword, _ in instructions()) >= 2
    final = final_stage()
    assert not [rest for keyword, rest in final if keyword == "RUN"], "no build steps at runtime"
    copies = [rest for keyword, rest in final if keyword == "COPY"]
    assert copies
    assert all(rest.startswith("--from=") for rest in copies)


def test_runs_as_a_numeric_non_root_user() -> None:
    [user] = [rest for keyword, rest in final_stage() if keyword == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0


def test_entrypoint_is_the_console_script_in_exec_form() -> None:
    [entrypoint] = [rest for keyword, rest in final_stage() if keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["sla-monitor"]


def test_no_pip_cache_and_locked_dependencies() -> None:
    runs = " ".join(rest for keyword, rest in instructions() if keyword == "RUN")
    assert "pip install --no-cache-dir -r requirements.lock" in runs
    assert "--no-deps ." in runs


def test_read_only_root_filesystem_friendly() -> None:
    envs = " ".join(rest for keyword, rest in final_stage() if keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in envs


def test_dockerignore_keeps_the_context_small() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1 :].count("!monitor/") == 1
    assert "!.venv" not in ignore


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
