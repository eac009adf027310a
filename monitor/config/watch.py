"""Notice when the config under `--config` changed, including ConfigMap-volume swaps.

Kubernetes updates a mounted ConfigMap by re-pointing a `..data` symlink, so file
mtimes and inotify on the visible names are unreliable; comparing a digest of the
contents of every config file every second is simple, portable and always right.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


def config_digest(path: str | Path) -> str:
    """A digest of every YAML file the loader would read (names and contents)."""
    root = Path(path)
    files = (
        sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.name[0] != ".")
        if root.is_dir()
        else [root]
    )
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        try:
            digest.update(file.read_bytes())
        except OSError as error:
            digest.update(f"unreadable: {error}".encode())
    return digest.hexdigest()


class ConfigWatcher:
    """Calls `on_change()` from its own thread when the digest changes, or on `trigger()`."""

    def __init__(
        self, path: str | Path, on_change: Callable[[], None], interval: float = 1.0
    ) -> None:
        self.path = Path(path)
        self._on_change = on_change
        self._interval = interval
        self._digest = self._read()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._requested = 0  # reloads asked for (SIGHUP); a counter, so none is lost
        self._handled = 0
        self._thread: threading.Thread | None = None

    def _read(self) -> str:
        try:
            return config_digest(self.path)
        except OSError as error:
            return f"missing: {error}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="config-watch", daemon=True)
        self._thread.start()

    def trigger(self) -> None:
        """Reload now (SIGHUP), even if nothing changed."""
        self._requested += 1
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            requested = self._requested
            digest = self._read()
            if digest != self._digest or requested != self._handled:
                self._digest, self._handled = digest, requested
                try:
                    self._on_change()
                except Exception:
                    logger.exception("config reload failed")
