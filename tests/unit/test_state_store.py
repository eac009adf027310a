"""The file store: atomic JSON documents; an unusable file is refused and kept aside whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.runtime.state import MAX_DOCUMENT_BYTES, CorruptState, FileStore, StateDocument


def test_a_saved_document_loads_back_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "sub" / "state.json")
    assert store.load() is None
    store.save({"engine": {"a": 1}, "outbox": {"pending": []}})
    store.save({"engine": {"a": 2}})
    assert store.load() == {"engine": {"a": 2}}
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["state.json"]


@pytest.mark.parametrize(
    "content",
    [b'{"engine": ', b"[1, 2]", b'"state"', b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000],
    ids=["torn", "list", "string", "not-utf8", "deeply-nested"],
)
def test_an_unusable_file_raises_and_is_renamed_aside_byte_for_byte(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    store = FileStore(path)
    with pytest.raises(CorruptState):
        store.load()
    assert path.exists()  # loading alone never moves anything
    aside = Path(store.keep_aside())
    assert not path.exists()
    assert aside.name.startswith("state.json.corrupt-")
    assert aside.read_bytes() == content
    path.write_bytes(content)
    second = Path(store.keep_aside())  # kept aside twice within a second: both survive
    assert second != aside
    assert second.read_bytes() == aside.read_bytes() == content


def test_a_file_over_the_size_cap_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with path.open("wb") as file:
        file.truncate(MAX_DOCUMENT_BYTES + 10)  # sparse: costs no disk
    with pytest.raises(CorruptState, match="more than"):
        FileStore(path).load()


def test_sections_are_saved_together_in_one_document(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    document = StateDocument(FileStore(path))
    document.put("engine", {"version": 1})
    document.put("outbox", {"pending": [1]})
    assert json.loads(path.read_text()) == {"engine": {"version": 1}, "outbox": {"pending": [1]}}
    again = StateDocument(FileStore(path))
    assert again.section("outbox") == {"pending": [1]}
    assert again.section("missing") is None
