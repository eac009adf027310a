"""A saved state the daemon cannot use: `sla-monitor run` still starts, keeps the bad copy
aside byte for byte (never overwritten), starts as on a first start, says so exactly once
as `monitor_degraded`, and alerts what happens next. A leader that cannot read or write
its state hands the Lease back and is not ready."""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.config.load import load_config
from monitor.core.engine import Engine
from monitor.runtime.daemon import STATE_WRITE_LIMIT_SECONDS
from monitor.runtime.state import MAX_DOCUMENT_BYTES
from monitor.testing.stack import LocalStack, MonitorProcess
from monitor.testing.wait import timing_bound, wait_until
from tests.e2e.helpers import freshness_batch, keys, of_kind

NAMESPACE = "monitoring"
STATE_NAME = "sla-monitor-state"


def config_of(stack: LocalStack, state: dict[str, str] | None = None) -> Path:
    document: dict[str, Any] = {
        "batches": [freshness_batch("train", "1h")],
        "unmatched": {"notify": {"job_failed": False, "traceback": False}},
    }
    if state is not None:
        document["state"] = state
    return stack.write_config(document)


def engine_document(config_path: Path) -> dict[str, Any]:
    """A genuine engine section, as a first start under this config saves it."""
    return Engine(load_config(str(config_path)), started_at=datetime.now(UTC)).to_json()


def with_engine(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], bytes]:
    def corrupt(config_path: Path) -> bytes:
        engine = engine_document(config_path)
        change(engine)
        return json.dumps({"engine": engine}).encode()

    return corrupt


def constant(content: bytes) -> Callable[[Path], bytes]:
    return lambda _: content


#: (id, the state file's bytes, the outbox file's bytes or None)
FILE_CASES: list[tuple[str, Callable[[Path], bytes], bytes | None]] = [
    ("torn-json", constant(b'{"engine": {"version": '), None),
    ("not-an-object", constant(b"[1, 2, 3]"), None),
    ("not-utf8", constant(b'{"engine": "\xff\xfe"}'), None),
    ("engine-is-a-string", constant(b'{"engine": "yesterday"}'), None),
    ("tracks-is-a-list", with_engine(lambda e: e.update(tracks=[1, 2])), None),
    ("posted-times-are-words", with_engine(lambda e: e.update(posted={"k": "soon"})), None),
    ("sources-are-numbers", with_engine(lambda e: e.update(sources={"kubernetes": 5})), None),
    ("log-cursor-is-a-list", constant(b'{"log_cursor": [1], "pod_log_cursor": {}}'), None),
    ("outbox-entries-unreadable", constant(b"{}"), b'{"outbox": {"pending": [{"seq": "x"}]}}'),
]


def lease_holder(stack: LocalStack) -> str | None:
    """Who holds the Lease ("" before anyone won it; None once it was handed back)."""
    leases = [stored.obj for stored in stack.kube.store.objects("leases")]
    if not leases:
        return ""
    holder: str | None = leases[0].get("spec", {}).get("holderIdentity")
    return holder


def state_reports(stack: LocalStack) -> list[str]:
    return [key for key in keys(stack.slack, "monitor_degraded") if key.startswith("degraded:")]


def alerts_a_failure(stack: LocalStack, daemon: MonitorProcess, name: str) -> None:
    """The daemon that started afresh is working: a failure now is alerted."""
    stack.kube.jobs.create_job("ml", name, cronjob="train")
    stack.kube.jobs.fail_job("ml", name)
    wait_until(lambda: any(name in key for key in keys(stack.slack, "job_failed")), timeout=15)


@pytest.mark.parametrize(
    ("corrupt", "outbox"),
    [case[1:] for case in FILE_CASES],
    ids=[case[0] for case in FILE_CASES],
)
def test_an_unusable_state_file_is_kept_aside_and_reported_once(
    stack: LocalStack, corrupt: Callable[[Path], bytes], outbox: bytes | None
) -> None:
    config = config_of(stack)
    state = stack.workdir / "state.json"
    state_bytes = corrupt(config)
    state.write_bytes(state_bytes)
    bad = {state: state_bytes}
    if outbox is not None:
        outbox_path = stack.workdir / "state-outbox.json"
        outbox_path.write_bytes(outbox)
        bad = {outbox_path: outbox}
    daemon = stack.spawn(config)
    daemon.wait_ready()

    wait_until(lambda: len(state_reports(stack)) >= 1, timeout=timing_bound(10))
    for path, content in bad.items():
        (aside,) = path.parent.glob(f"{path.name}.corrupt-*")
        assert aside.read_bytes() == content
    alerts_a_failure(stack, daemon, "train-after")
    [report] = state_reports(stack)  # exactly one, and no other monitor_degraded
    assert report.startswith("degraded:state@")
    [message] = of_kind(stack.slack, "monitor_degraded")
    assert "kept aside" in message.text
    assert json.loads(state.read_text())["engine"]["version"]  # a fresh, valid state

    assert daemon.terminate() == 0
    restarted = stack.spawn(config, name="again")
    restarted.wait_ready()
    alerts_a_failure(stack, restarted, "train-later")
    assert len(state_reports(stack)) == 1  # the fresh state reads back: no second report


def bomb() -> str:
    return base64.b64encode(gzip.compress(b" " * (MAX_DOCUMENT_BYTES * 4), 9)).decode()


@pytest.mark.parametrize(
    "binary",
    [lambda: bomb(), lambda: "bm90IGd6aXA="],
    ids=["gzip-bomb", "not-gzip"],
)
@pytest.mark.parametrize("leader_elect", [False, True], ids=["single", "leader-elect"])
def test_an_unusable_state_config_map_is_copied_aside_and_the_leader_alerts(
    stack: LocalStack, binary: Callable[[], str], leader_elect: bool
) -> None:
    packed = binary()
    stack.kube.create(
        "",
        "configmaps",
        NAMESPACE,
        {
            "metadata": {"name": STATE_NAME, "namespace": NAMESPACE},
            "binaryData": {"state.json.gz": packed},
        },
    )
    config = config_of(stack, {"configmap": f"{NAMESPACE}/{STATE_NAME}"})
    args = ["--leader-elect"] if leader_elect else []
    env = stack.env(POD_NAME="replica-a", POD_NAMESPACE=NAMESPACE)
    daemon = stack.spawn(config, *args, env=env)
    daemon.wait_ready()

    wait_until(lambda: len(state_reports(stack)) >= 1, timeout=timing_bound(10))
    copies = [
        stored.obj
        for stored in stack.kube.store.objects("configmaps")
        if stored.obj["metadata"]["name"].startswith(f"{STATE_NAME}-corrupt-")
    ]
    assert [copy["binaryData"] for copy in copies] == [{"state.json.gz": packed}]
    alerts_a_failure(stack, daemon, "train-after")
    assert len(state_reports(stack)) == 1
    assert daemon.status()["leader"] is True


def test_a_leader_that_cannot_read_its_state_hands_the_lease_back_and_is_not_ready(
    stack: LocalStack,
) -> None:
    config = config_of(stack, {"configmap": f"{NAMESPACE}/{STATE_NAME}"})
    stack.kube.fail_requests(403, path=f"/configmaps/{STATE_NAME}")
    env = stack.env(POD_NAME="replica-a", POD_NAMESPACE=NAMESPACE)
    daemon = stack.spawn(config, "--leader-elect", env=env)

    def handed_back() -> bool:
        """The Lease exists (it was won) and holds nobody (it was handed back)."""
        return lease_holder(stack) is None

    wait_until(lambda: "cannot read its state" in daemon.logs(), timeout=timing_bound(15))
    wait_until(handed_back, timeout=timing_bound(10))
    code, _ = daemon.get("/readyz")
    assert code == 503
    status = daemon.status()
    assert status["leader"] is False
    assert of_kind(stack.slack, "monitor_degraded") == []  # nothing posted without memory

    stack.kube.heal()  # the state can be read again: the replica competes, leads, alerts
    wait_until(lambda: daemon.status()["leader"] is True, timeout=timing_bound(40))
    daemon.wait_ready()
    alerts_a_failure(stack, daemon, "train-after")


def test_a_leader_whose_saves_keep_failing_steps_down_and_is_not_ready(
    stack: LocalStack,
) -> None:
    config = config_of(stack, {"configmap": f"{NAMESPACE}/{STATE_NAME}"})
    env = stack.env(POD_NAME="replica-a", POD_NAMESPACE=NAMESPACE)
    daemon = stack.spawn(config, "--leader-elect", env=env)
    daemon.wait_ready()
    wait_until(lambda: daemon.status()["leader"] is True, timeout=timing_bound(20))

    stack.kube.fail_requests(403, path=f"/configmaps/{STATE_NAME}")
    failed_at = time.monotonic()
    alerts_a_failure(stack, daemon, "train-unsaved")  # delivered even though unsaved
    wait_until(lambda: daemon.get("/readyz")[0] == 503, timeout=timing_bound(45))
    assert time.monotonic() - failed_at >= STATE_WRITE_LIMIT_SECONDS - 1  # not at once
    wait_until(lambda: daemon.status()["leader"] is False, timeout=timing_bound(15))
    # The pipeline stops posting first, then the Lease is handed back.
    wait_until(lambda: lease_holder(stack) is None, timeout=timing_bound(10))
    assert "saving the state has failed for 30 s (HTTP 403 Forbidden)" in daemon.logs()


def test_a_state_an_older_release_wrote_is_superseded_silently_not_kept_aside(
    stack: LocalStack,
) -> None:
    config = config_of(stack)
    state = stack.workdir / "state.json"
    state.write_text(json.dumps({"engine": {"version": 1, "batches": {"train": {}}}}))
    daemon = stack.spawn(config)
    daemon.wait_ready()
    alerts_a_failure(stack, daemon, "train-after")
    assert "older version (1): starting as a first start" in daemon.logs()
    assert of_kind(stack.slack, "monitor_degraded") == []
    assert list(stack.workdir.glob("state.json.corrupt-*")) == []
