"""The ConfigMap state store through the real client against the fake API server: created on
the first save, read back whole, and a stale writer is refused instead of overwriting."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import secrets
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from monitor.runtime.configmap_store import (
    DATA_KEY,
    PACKED_KEY,
    WARN_BYTES,
    ConfigMapStore,
    StateConflict,
)
from monitor.runtime.state import MAX_DOCUMENT_BYTES, CorruptState, StateDocument
from monitor.testing.kube_api import FakeKubeApi

REFERENCE = "monitoring/sla-monitor-state"


@pytest.fixture
def kube() -> Iterator[FakeKubeApi]:
    with FakeKubeApi() as fake:
        yield fake


def store_for(kube: FakeKubeApi) -> ConfigMapStore:
    return ConfigMapStore.from_reference(kube.api_client(), REFERENCE)


def stored_text(kube: FakeKubeApi) -> str:
    """The document as saved: gzip-compressed JSON in binaryData."""
    config_map = kube.get("", "configmaps", "monitoring", "sla-monitor-state")
    return gzip.decompress(base64.b64decode(config_map["binaryData"][PACKED_KEY])).decode()


def test_the_first_save_creates_the_config_map_and_a_new_store_reads_it_back(
    kube: FakeKubeApi,
) -> None:
    store = store_for(kube)
    assert store.load() is None
    document = {"engine": {"started_at": "2026-01-01T00:00:00+00:00"}, "outbox": {"sent": []}}
    store.save(document)
    store.save({**document, "log_cursor": {"at": "x"}})  # an update, not a second create

    assert json.loads(stored_text(kube)) == {**document, "log_cursor": {"at": "x"}}
    config_map = kube.get("", "configmaps", "monitoring", "sla-monitor-state")
    assert config_map["metadata"]["labels"] == {"app.kubernetes.io/name": "sla-monitor"}
    assert store_for(kube).load() == {**document, "log_cursor": {"at": "x"}}


def test_a_writer_with_a_stale_resource_version_gets_a_conflict_not_an_overwrite(
    kube: FakeKubeApi,
) -> None:
    old_leader, new_leader = store_for(kube), store_for(kube)
    old_leader.save({"engine": {"generation": 1}})
    assert new_leader.load() == {"engine": {"generation": 1}}
    new_leader.save({"engine": {"generation": 2}})

    with pytest.raises(StateConflict):
        old_leader.save({"engine": {"generation": 1, "late": True}})
    assert json.loads(stored_text(kube)) == {"engine": {"generation": 2}}

    # After re-reading, the same store writes again.
    assert old_leader.load() == {"engine": {"generation": 2}}
    old_leader.save({"engine": {"generation": 3}})
    assert store_for(kube).load() == {"engine": {"generation": 3}}


def test_two_first_saves_race_and_the_loser_conflicts(kube: FakeKubeApi) -> None:
    """Both saw no ConfigMap; the second create must not silently replace the first."""
    first, second = store_for(kube), store_for(kube)
    assert first.load() is None
    assert second.load() is None
    first.save({"engine": {"by": "first"}})
    with pytest.raises(StateConflict):
        second.save({"engine": {"by": "second"}})
    assert store_for(kube).load() == {"engine": {"by": "first"}}


def test_an_edit_by_hand_is_detected_by_the_running_writer(kube: FakeKubeApi) -> None:
    store = store_for(kube)
    store.save({"engine": {"n": 1}})
    core = client.CoreV1Api(kube.api_client())
    edited = core.read_namespaced_config_map("sla-monitor-state", "monitoring")
    edited.data = {DATA_KEY: json.dumps({"engine": {"n": 99}})}
    core.replace_namespaced_config_map("sla-monitor-state", "monitoring", edited)
    with pytest.raises(StateConflict):
        store.save({"engine": {"n": 2}})


def test_state_document_sections_round_trip_through_the_config_map(kube: FakeKubeApi) -> None:
    document = StateDocument(store_for(kube))
    document.put("engine", {"alerts": ["a@1"]})
    document.put_many({"outbox": {"pending": [{"key": "a@1"}]}, "log_cursor": None})
    again = StateDocument(store_for(kube))
    assert again.section("engine") == {"alerts": ["a@1"]}
    assert again.section("outbox") == {"pending": [{"key": "a@1"}]}


def test_size_is_measured_and_a_document_near_the_limit_is_logged(
    kube: FakeKubeApi, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_for(kube)
    small = {"engine": {"history": ["x" * 10_000]}}
    store.save(small)
    assert 0 < store.last_size < 1000  # packed: repetitive state compresses well
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    # Random hex barely compresses: the packed form exceeds the warning threshold.
    big = {"engine": {"history": [secrets.token_hex(WARN_BYTES)]}}
    with caplog.at_level(logging.WARNING, logger="monitor.runtime.configmap_store"):
        store.save(big)
    assert store.last_size > WARN_BYTES
    assert any("near the 1 MiB" in record.getMessage() for record in caplog.records)
    assert store_for(kube).load() == big


def create_raw(kube: FakeKubeApi, name: str = "sla-monitor-state", **contents: Any) -> None:
    """A ConfigMap written as a person (or an attacker) might: `data`/`binaryData` as given."""
    core = client.CoreV1Api(kube.api_client())
    core.create_namespaced_config_map(
        "monitoring", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), **contents)
    )


def packed(data: bytes) -> str:
    return base64.b64encode(gzip.compress(data)).decode()


@pytest.mark.parametrize(
    "contents",
    [
        {"data": {DATA_KEY: '{"engine": '}},
        {"data": {DATA_KEY: "[1, 2, 3]"}},
        {"binaryData": {PACKED_KEY: "not base64!"}},
        {"binaryData": {PACKED_KEY: base64.b64encode(b"not gzip at all").decode()}},
        {"binaryData": {PACKED_KEY: packed(b'{"engine": {}}')[:-12]}},  # truncated
        {"binaryData": {PACKED_KEY: packed(b"\xff\xfe{}")}},  # not UTF-8
    ],
    ids=["torn-json", "json-list", "bad-base64", "not-gzip", "truncated-gzip", "not-utf8"],
)
def test_unreadable_contents_raise_corrupt_state_and_are_copied_aside_as_they_were(
    kube: FakeKubeApi, contents: dict[str, Any]
) -> None:
    create_raw(kube, **contents)
    store = store_for(kube)
    with pytest.raises(CorruptState):
        store.load()
    aside = store.keep_aside()
    name = aside.removeprefix("ConfigMap monitoring/")
    assert name.startswith("sla-monitor-state-corrupt-")
    copy = kube.get("", "configmaps", "monitoring", name)
    for key, value in contents.items():
        assert copy[key] == value  # byte for byte what was there
    store.save({"engine": {"fresh": True}})  # the store still knows the resourceVersion
    assert store_for(kube).load() == {"engine": {"fresh": True}}
    assert kube.get("", "configmaps", "monitoring", name)["metadata"]["name"] == name


def test_a_gzip_bomb_is_refused_without_inflating_it(kube: FakeKubeApi) -> None:
    bomb = gzip.compress(b"{" + b" " * (MAX_DOCUMENT_BYTES * 4) + b"}", 9)
    assert len(bomb) < 200 * 1024  # a few hundred KiB that would inflate to 64 MiB
    create_raw(kube, binary_data={PACKED_KEY: base64.b64encode(bomb).decode()})
    store = store_for(kube)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptState, match="more than"):
            store.load()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * MAX_DOCUMENT_BYTES  # bounded by the cap, not by what the bomb holds


def test_a_document_just_under_the_cap_still_loads(kube: FakeKubeApi) -> None:
    document = {"engine": {"history": ["x" * (MAX_DOCUMENT_BYTES - 100)]}}
    store_for(kube).save(document)
    assert store_for(kube).load() == document
