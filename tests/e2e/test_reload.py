"""Config reload under the real daemon: a file replaced by rename, a ConfigMap volume's
`..data` symlink swap, SIGHUP, and a bad config that is reported once while the last good
one keeps running."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import yaml

from monitor.testing.stack import LocalStack, MonitorProcess, seconds_ahead
from monitor.testing.wait import timing_bound, wait_until
from tests.e2e.helpers import (
    deadline_batch,
    freshness_batch,
    keys,
    kinds,
    metric,
    of_kind,
    spawn_configured,
    until,
)


def document(stack: LocalStack, batches: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "slack": {"channel": "#alerts"},
        "state": {"file": str(stack.workdir / "state.json")},
        "batches": batches,
    }


def replace_by_rename(path: Path, content: dict[str, Any] | str) -> None:
    """Write a sibling file and rename it over `path`, as editors and config tools do."""
    text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def batch_names(daemon: MonitorProcess) -> list[str]:
    return [batch["name"] for batch in daemon.status()["batches"]]


def test_file_replaced_by_rename_is_reloaded_and_new_batches_are_judged(
    stack: LocalStack,
) -> None:
    config = stack.write_config(document(stack, [freshness_batch("first", "1h")]))
    daemon = stack.spawn(config)
    daemon.wait_ready()

    deadline = seconds_ahead(5)
    replace_by_rename(
        config,
        document(stack, [freshness_batch("first", "1h"), deadline_batch("added", deadline)]),
    )
    changed = time.monotonic()
    wait_until(lambda: "added" in batch_names(daemon), timeout=5)
    assert time.monotonic() - changed <= timing_bound(5.0)
    assert metric(daemon, 'sla_monitor_config_reloads_total{result="ok"}') == 1

    wait_until(lambda: of_kind(stack.slack, "missed_deadline"), timeout=until(deadline))
    assert keys(stack.slack) == [f"added@{deadline.isoformat()}"]
    assert daemon.terminate() == 0


def test_configmap_volume_symlink_swap_is_reloaded(stack: LocalStack) -> None:
    """Kubernetes mounts a ConfigMap as `name -> ..data/name`, `..data -> ..<timestamp>`,
    and updates it by creating a new timestamped directory and renaming a new `..data`
    symlink over the old one."""
    volume = stack.workdir / "config-volume"
    volume.mkdir()

    def publish(version: int, batches: list[dict[str, Any]]) -> None:
        target = volume / f"..2026_11_27_00_00_0{version}.000000000"
        target.mkdir()
        (target / "sla.yaml").write_text(yaml.safe_dump(document(stack, batches)))
        link = volume / "..data_tmp"
        link.symlink_to(target.name)
        os.replace(link, volume / "..data")
        if not (volume / "sla.yaml").is_symlink():
            (volume / "sla.yaml").symlink_to("..data/sla.yaml")

    publish(1, [freshness_batch("first", "1h")])
    daemon = stack.spawn(volume)
    daemon.wait_ready()
    assert batch_names(daemon) == ["first"]

    publish(2, [freshness_batch("first", "1h"), freshness_batch("second", "1h")])
    changed = time.monotonic()
    wait_until(lambda: batch_names(daemon) == ["first", "second"], timeout=5)
    assert time.monotonic() - changed <= timing_bound(5.0)
    assert daemon.terminate() == 0
    assert stack.slack.messages == []


def test_bad_reload_is_reported_once_and_the_last_good_config_keeps_running(
    stack: LocalStack,
) -> None:
    daemon, deadline = spawn_configured(stack, {}, 6, lambda at: [deadline_batch("kept", at)])
    good = document(stack, [deadline_batch("kept", deadline)])
    config = stack.workdir / "sla.yaml"

    bad = yaml.safe_dump(good, sort_keys=False).replace("batches:", "batchez:")
    replace_by_rename(config, bad)
    wait_until(lambda: of_kind(stack.slack, "monitor_degraded"), timeout=5)
    [degraded] = of_kind(stack.slack, "monitor_degraded")
    assert degraded.payload["batch"] == ""
    assert degraded.payload["key"].startswith("degraded:config@")
    assert "batchez" in (degraded.text or "") + str(degraded.blocks)

    invalid = 'sla_monitor_config_reloads_total{result="invalid"}'
    rejected = metric(daemon, invalid) or 0
    assert rejected >= 1
    daemon.signal(signal.SIGHUP)  # reload again: still bad, still one alert
    wait_until(lambda: (metric(daemon, invalid) or 0) > rejected, timeout=5)
    assert batch_names(daemon) == ["kept"]

    wait_until(lambda: of_kind(stack.slack, "missed_deadline"), timeout=until(deadline))
    assert keys(stack.slack, "missed_deadline") == [f"kept@{deadline.isoformat()}"]

    replace_by_rename(config, good)
    wait_until(lambda: of_kind(stack.slack, "recovered"), timeout=5)
    [recovered] = of_kind(stack.slack, "recovered")
    assert recovered.thread_ts == degraded.ts
    assert daemon.terminate() == 0
    assert sorted(kinds(stack.slack)) == ["missed_deadline", "monitor_degraded", "recovered"]


def saved_tracks(stack: LocalStack) -> set[str]:
    document = json.loads((stack.workdir / "state.json").read_text())
    return set(document["engine"]["tracks"])


def test_a_batch_added_while_down_is_saved_before_ready_so_a_crash_cannot_skip_its_deadline(
    stack: LocalStack,
) -> None:
    """A restart judges a batch new to its saved state from that start (SPEC); the start is
    written before anything runs, so a SIGKILL right after cannot move it past a deadline."""
    config = stack.write_config(document(stack, [freshness_batch("first", "1h")]))
    daemon = stack.spawn(config)
    daemon.wait_ready()
    assert daemon.terminate() == 0
    assert saved_tracks(stack) == {"first"}

    deadline = seconds_ahead(20)  # the restarted daemon must start (and be killed) before it
    stack.write_config(
        document(stack, [freshness_batch("first", "1h"), deadline_batch("added", deadline)])
    )
    daemon = stack.spawn(config, name="restarted")
    daemon.wait_ready()
    assert saved_tracks(stack) == {"first", "added"}  # already: no change has happened yet
    daemon.kill()

    wait_until(lambda: seconds_ahead(0) > deadline, timeout=until(deadline))
    daemon = stack.spawn(config, name="after-the-deadline")
    wait_until(lambda: of_kind(stack.slack, "missed_deadline"), timeout=until(deadline, 20))
    assert keys(stack.slack) == [f"added@{deadline.isoformat()}"]
    assert daemon.terminate() == 0
    assert keys(stack.slack) == [f"added@{deadline.isoformat()}"]
