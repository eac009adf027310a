"""Where the deploy tests find the overlays, their committed renders, and a renderer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = sorted(path.name for path in (DEPLOY / "overlays").iterdir() if path.is_dir())
RENDERED = DEPLOY / "rendered"


def renderer() -> list[str] | None:
    """`kubectl kustomize` or `kustomize build`, whichever is installed."""
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


def render(overlay: str) -> str:
    command = renderer()
    assert command is not None
    return subprocess.run(
        [*command, str(DEPLOY / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout


def documents(overlay: str) -> list[dict[str, Any]]:
    text = (RENDERED / f"{overlay}.yaml").read_text()
    return [document for document in yaml.safe_load_all(text) if document]


def find(
    overlay: str, kind: str, name: str | None = None, namespace: str | None = None
) -> dict[str, Any]:
    """The first object of `kind` (with that name, in that namespace, when given)."""
    for document in documents(overlay):
        metadata = document["metadata"]
        if (
            document["kind"] == kind
            and name in (None, metadata["name"])
            and namespace in (None, metadata.get("namespace"))
        ):
            return document
    raise AssertionError(f"{overlay}: no {kind} {name or ''} {namespace or ''}")


def home_namespace(overlay: str) -> str:
    """Where the monitor itself runs (its Deployment's namespace)."""
    return str(find(overlay, "Deployment")["metadata"]["namespace"])
