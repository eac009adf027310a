"""The file store: atomic JSON documents, and a corrupt file never stops a start."""

from __future__ import annotations

import json
from pathlib import Path

from monitor.runtime.state import FileStore, StateDocument


def test_a_saved_document_loads_back_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "sub" / "state.json")
    assert store.load() is None
    store.save({"engine": {"a": 1}, "outbox": {"pending": []}})
    store.save({"engine": {"a": 2}})
    assert store.load() == {"engine": {"a": 2}}
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["state.json"]


def test_a_corrupt_file_is_moved_aside_and_treated_as_absent(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"engine": ')
    assert FileStore(path).load() is None
    assert not path.exists()
    (aside,) = tmp_path.glob("state.json.corrupt-*")
    assert aside.read_text() == '{"engine": '


def test_sections_are_saved_together_in_one_document(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    document = StateDocument(FileStore(path))
    document.put("engine", {"version": 1})
    document.put("outbox", {"pending": [1]})
    assert json.loads(path.read_text()) == {"engine": {"version": 1}, "outbox": {"pending": [1]}}
    again = StateDocument(FileStore(path))
    assert again.section("outbox") == {"pending": [1]}
    assert again.section("missing") is None
