"""The image's promises, read from the Dockerfile (no Docker engine is needed)."""

from __future__ import annotations

import json
import re
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


def stages() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(name, or "" when unnamed; what it is FROM; its steps) per stage, in order."""
    found: list[tuple[str, str, list[tuple[str, str]]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            image, _, name = rest.partition(" AS ")
            found.append((name.strip(), image.strip(), []))
        elif found:
            found[-1][2].append((keyword, rest))
    return found


def lineage() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """The final stage and each stage it is built FROM, down to the external image."""
    by_name = {name: (name, image, steps) for name, image, steps in stages()}
    chain = [stages()[-1]]
    while chain[-1][1] in by_name:
        chain.append(by_name[chain[-1][1]])
    return chain


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
    runs = " ".join(" ".join(rest.split()) for keyword, rest in instructions() if keyword == "RUN")
    assert "install --no-cache-dir -r requirements.lock" in runs
    assert "--no-deps ." in runs


def test_every_external_base_image_is_pinned_by_digest() -> None:
    names = {name for name, _, _ in stages() if name}
    external = [image for _, image, _ in stages() if image not in names]
    assert external
    for image in external:
        assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", image), image


def test_the_image_cannot_install_packages() -> None:
    """No pip, setuptools or wheel in the venv or the interpreter, nor ensurepip to
    bring pip back: what runs is exactly what was locked."""
    runs = [
        " ".join(rest.split())
        for _, _, steps in lineage()
        for keyword, rest in steps
        if keyword == "RUN"
    ]
    assert any("pip uninstall --yes pip setuptools wheel" in run for run in runs)
    assert any("rm -rf /usr/local/lib/python3.11/ensurepip" in run for run in runs)
    build = " ".join(" ".join(rest.split()) for keyword, rest in instructions() if keyword == "RUN")
    assert "python -m venv --without-pip /opt/venv" in build
    assert "/opt/venv/bin/pip" not in build


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
