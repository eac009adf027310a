"""The state writer: saves on its own thread, newest sections win, refusals retried."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from monitor.runtime.state import FileStore, StateDocument
from monitor.runtime.state_writer import StateWriter
from monitor.testing.wait import wait_until


class Saves:
    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, seconds: float, size: int) -> None:
        assert seconds >= 0
        self.sizes.append(size)
        self.threads.add(threading.current_thread().name)


def saved(path: Path) -> dict[str, object]:
    try:
        document: dict[str, object] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return document


def test_sections_are_written_off_the_callers_thread_and_stop_writes_what_waits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    saves = Saves()
    writer = StateWriter(StateDocument(FileStore(path), {}), retry=0.05, saved=saves)
    writer.start()
    writer.submit({"engine": '{"n":1}'})
    wait_until(lambda: saved(path).get("engine") == {"n": 1}, timeout=10)
    assert saves.threads == {"state-writer"}
    writer.submit({"engine": '{"n":2}', "log_cursor": '"c"'})
    assert writer.stop(timeout=10)
    assert saved(path) == {"engine": {"n": 2}, "log_cursor": "c"}
    assert writer.failure is None


def test_a_refusing_store_is_retried_with_the_newest_sections_and_reported(
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "state"
    blocked.write_text("a file where the state's directory should be")
    path = blocked / "state.json"
    writer = StateWriter(StateDocument(FileStore(path), {}), retry=0.05, saved=Saves())
    writer.start()
    writer.submit({"engine": '{"n":1}'})
    wait_until(lambda: writer.failure is not None, timeout=10)
    failure = writer.failure
    assert failure is not None
    assert "NotADirectoryError" in failure[1] or "FileExistsError" in failure[1]
    writer.submit({"engine": '{"n":2}'})  # newer than the one being retried
    blocked.unlink()
    wait_until(lambda: saved(path).get("engine") == {"n": 2}, timeout=10)
    wait_until(lambda: writer.failure is None, timeout=10)
    assert writer.stop(timeout=10)


def test_an_abandoned_writer_writes_nothing_more(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    writer = StateWriter(StateDocument(FileStore(path), {}), retry=0.05, saved=Saves())
    writer.start()
    writer.submit({"engine": '{"n":1}'})
    wait_until(lambda: saved(path).get("engine") == {"n": 1}, timeout=10)
    writer.abandon()
    writer.submit({"engine": '{"n":2}'})
    assert writer.stop(timeout=10)
    assert saved(path) == {"engine": {"n": 1}}
