"""What survives a restart: one JSON document, saved whole through a small store interface.

The daemon keeps everything it must not forget (the engine's state, the Slack outbox and
its log of sent messages) in ONE document, so a save is all-or-nothing: there is never an
engine that remembers an alert the outbox has lost, or the reverse. `StateDocument` holds
the document as named sections (`engine`, `outbox`, ...) and saves the whole of it
through a `StateStore` whenever a section changes.

A store only loads and saves a JSON object. `FileStore` writes atomically (temp file in
the same directory, fsync, rename, fsync the directory), so a crash at any instant leaves
either the old or the new document, never a torn one. A ConfigMap store implements the
same methods.

A saved document is untrusted input (a person may edit it, a disk may tear it): `decode`
bounds its size and checks it is a JSON object, and a store that cannot use what it holds
raises `CorruptState`. The caller then asks the store to `keep_aside` what it holds (never
overwritten by the next save) and starts as if nothing had been saved.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from monitor.core.codec import canonical_json

logger = logging.getLogger(__name__)

Document = dict[str, Any]

#: The largest state document read back (decompressed): the state of 10,000 batches is
#: about 9 MB, and a bigger one is a mistake or an attack (a gzip bomb), not our state.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


class CorruptState(ValueError):
    """The store holds something that is not a usable state document."""


class StateStore(Protocol):
    """Where the state document lives."""

    @property
    def where(self) -> str:
        """The store, as a person finds it ("state file PATH", "state ConfigMap NS/NAME")."""
        ...

    def load(self) -> Document | None:
        """The saved document, or None when nothing was saved yet; `CorruptState` when
        what is saved cannot be read (other errors: the store is unreachable)."""
        ...

    def save_text(self, text: str) -> None:
        """Replace the saved document with `text` (a JSON object), atomically."""
        ...

    def keep_aside(self) -> str:
        """Put what the store holds where saves never overwrite it; say where."""
        ...


def decode(data: bytes) -> Document:
    """A saved document from its bytes; `CorruptState` unless it is a bounded JSON object."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise CorruptState(f"{len(data)} bytes, more than the {MAX_DOCUMENT_BYTES} allowed")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError, ValueError) as error:
        raise CorruptState(f"not JSON: {error}") from error
    if not isinstance(document, dict):
        raise CorruptState(f"a JSON {type(document).__name__}, not an object")
    return document


def store_error_text(error: Exception) -> str:
    """An error reaching a store, in one line (an API refusal as its status and reason)."""
    status, reason = getattr(error, "status", None), getattr(error, "reason", None)
    if isinstance(status, int) and reason:
        return f"HTTP {status} {reason}"
    return (f"{type(error).__name__}: {error}".splitlines() or [""])[0]


def aside_stamp(now: datetime | None = None) -> str:
    """The suffix of a kept-aside copy: `corrupt-<UTC time>`, valid in file and object names."""
    return f"corrupt-{(now or datetime.now(UTC)).astimezone(UTC):%Y%m%dt%H%M%Sz}"


class FileStore:
    """A JSON file, replaced atomically on every save."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def where(self) -> str:
        return f"state file {self.path}"

    def load(self) -> Document | None:
        """The document (None when there is no file); `CorruptState` when unusable."""
        try:
            with self.path.open("rb") as file:
                data = file.read(MAX_DOCUMENT_BYTES + 1)
        except FileNotFoundError:
            return None
        return decode(data)

    def keep_aside(self) -> str:
        """Rename the file to `<name>.corrupt-<time>` (a number is added if that exists)."""
        base = self.path.with_name(f"{self.path.name}.{aside_stamp()}")
        aside, attempt = base, 1
        while aside.exists():
            attempt += 1
            aside = base.with_name(f"{base.name}-{attempt}")
        os.replace(self.path, aside)
        return str(aside)

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

    def __init__(self, store: StateStore, loaded: Document | None = None) -> None:
        """Over `store`, starting from `loaded` (already read from it), else from what
        `store.load()` returns now."""
        self._store = store
        self._lock = threading.Lock()
        if loaded is None:
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
