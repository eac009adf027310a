"""What survives a restart: one JSON document, saved whole through a small store interface.

The daemon keeps everything it must not forget (the engine's state, the Slack outbox and
its log of sent messages) in ONE document, so a save is all-or-nothing: there is never an
engine that remembers an alert the outbox has lost, or the reverse. `StateDocument` holds
the document as named sections (`engine`, `outbox`, ...) and saves the whole of it
through a `StateStore` whenever a section changes.

A store only loads and saves a JSON object. `FileStore` writes atomically (temp file in
the same directory, fsync, rename, fsync the directory), so a crash at any instant leaves
either the old or the new document, never a torn one. A ConfigMap store can implement
the same two methods.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from monitor.core.codec import canonical_json

logger = logging.getLogger(__name__)

Document = dict[str, Any]


class StateStore(Protocol):
    """Where the state document lives."""

    def load(self) -> Document | None:
        """The saved document, or None when nothing was saved yet."""
        ...

    def save_text(self, text: str) -> None:
        """Replace the saved document with `text` (a JSON object), atomically."""
        ...


class FileStore:
    """A JSON file, replaced atomically on every save."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> Document | None:
        """The document; a corrupt file is moved aside (logged) and treated as absent."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            document = json.loads(text)
            if not isinstance(document, dict):
                raise ValueError("the state document is not a JSON object")
        except ValueError as error:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            logger.error("state file %s is unreadable (%s); moved to %s", self.path, error, aside)
            return None
        return document

    def save(self, document: Document) -> None:
        self.save_text(encode(document))

    def save_text(self, text: str) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory_handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_handle)
        finally:
            os.close(directory_handle)


encode = canonical_json


class StateDocument:
    """The state document as named sections; any thread may update a section.

    `put` saves the whole document before it returns, so a caller that puts and then
    acts (e.g. posts to Slack) knows the intent is on disk first. Sections are kept
    encoded, so a small change (one outbox entry) re-encodes only its own section, not
    the engine's state of thousands of batches.
    """

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        loaded = store.load() or {}
        self._encoded: dict[str, str] = {name: encode(value) for name, value in loaded.items()}

    def section(self, name: str) -> Any:
        """A fresh copy of the section as last put or loaded (None when absent)."""
        with self._lock:
            text = self._encoded.get(name)
        return None if text is None else json.loads(text)

    def put(self, name: str, value: Any) -> None:
        """Replace one section and save the whole document."""
        self.put_many({name: value})

    def put_encoded(self, sections: dict[str, str]) -> None:
        """Replace sections with their already encoded text (`canonical_json`); save once."""
        self._save(sections)

    def put_many(self, sections: dict[str, Any]) -> None:
        """Replace several sections and save the whole document once."""
        self._save({name: encode(value) for name, value in sections.items()})

    def _save(self, encoded: dict[str, str]) -> None:
        with self._lock:
            self._encoded.update(encoded)
            self._store.save_text(
                "{"
                + ",".join(
                    f"{json.dumps(name)}:{text}" for name, text in sorted(self._encoded.items())
                )
                + "}"
            )

    @property
    def size(self) -> int:
        """Bytes of the document as last saved (for metrics)."""
        with self._lock:
            return sum(len(name) + len(text) + 4 for name, text in self._encoded.items())
