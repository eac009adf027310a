"""Large real configs load; only alias expansion (merge keys included) is refused as too
large, and quickly."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from monitor.config.load import ConfigError, load_config


def test_ten_thousand_batches_load(tmp_path: Path) -> None:
    batches = [
        {
            "name": f"batch-{index}",
            "match": {"namespace": f"ns-{index % 50}", "cronjob": f"batch-{index}"},
            "deadline": f"{index % 60} {index % 24} * * *",
            "grace": "5m",
        }
        for index in range(10_000)
    ]
    path = tmp_path / "sla.yaml"
    path.write_text(
        yaml.safe_dump({"timezone": "UTC", "slack": {"channel": "#alerts"}, "batches": batches})
    )
    assert len(load_config(str(path)).batches) == 10_000


def test_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as refused:
        load_config(str(path))
    assert any("document too large" in line for line in refused.value.lines())


def _merge_bomb(levels: int, leaf: str = "{}") -> str:
    """Each level merges the one before ten times: 10**levels merges once expanded."""
    lines = [f"a0: &a0 {leaf}"]
    lines += [f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 10)}]}}" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_merge_keys_count_against_the_alias_budget(tmp_path: Path) -> None:
    """A million merges of an empty mapping: every merge is one visit, so this is refused
    like any alias bomb (an uncounted merge let it through, to run for as long as the
    expansion takes: at ten levels, hours)."""
    path = tmp_path / "merges.yaml"
    path.write_text(_merge_bomb(7))
    with pytest.raises(ConfigError) as refused:
        load_config(str(path))
    bomb = [line for line in refused.value.lines() if "document too large" in line]
    assert bomb == [f"{path}:6:10: document too large (runaway aliases or merge keys?)"]


def test_a_merge_key_bomb_stops_quickly_in_bounded_memory(tmp_path: Path) -> None:
    """Ten billion merges of a list of non-mappings: each merge is reported as a problem,
    so unbounded expansion would also collect problems without end."""
    path = tmp_path / "merges.yaml"
    path.write_text(_merge_bomb(11, leaf="{<<: [x, x, x, x, x, x, x, x, x, x]}"))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ConfigError) as refused:
            load_config(str(path))
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert any("document too large" in line for line in refused.value.lines())
    assert len(refused.value.lines()) < 100  # the same problems, collected once each
    assert peak < 64 * 2**20, peak
    assert elapsed < 10, elapsed  # about 0.1 s; generous for a loaded machine


def test_a_merge_of_itself_is_a_recursive_alias(tmp_path: Path) -> None:
    path = tmp_path / "self.yaml"
    path.write_text("slack: &s\n  <<: *s\n  channel: '#a'\n")
    with pytest.raises(ConfigError) as refused:
        load_config(str(path))
    assert refused.value.lines() == [f"{path}:1:8: recursive alias"]


def test_a_file_past_the_size_limit_is_refused_unread_and_so_is_an_endless_device(
    tmp_path: Path,
) -> None:
    from monitor.config.load import MAX_FILE_BYTES

    path = tmp_path / "huge.yaml"
    path.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    for given in (path, Path("/dev/zero")):
        with pytest.raises(ConfigError) as refused:
            load_config(str(given))
        assert refused.value.lines() == [f"{given}:1:1: file too large: at most 16 MiB"]


def test_a_file_just_under_the_limit_is_read_whole(tmp_path: Path) -> None:
    """Read in pieces: nothing past the first piece may be lost."""
    from monitor.config.load import MAX_FILE_BYTES

    tail = (
        "slack: {channel: '#a'}\nbatches: [{name: last, match: {cronjob: last}, freshness: 1h}]\n"
    )
    path = tmp_path / "padded.yaml"
    path.write_text("#" * (MAX_FILE_BYTES - len(tail) - 1) + "\n" + tail)
    assert [batch.name for batch in load_config(str(path)).batches] == ["last"]
