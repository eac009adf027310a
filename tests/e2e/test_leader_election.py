"""Two replicas with `--leader-elect`: one Lease holder posts, the other waits ready; a killed
leader is replaced within about 20 s and a stopped one hands over at once, and across both
every alert reaches Slack exactly once."""

from __future__ import annotations

import base64
import gzip
import json
import time
from typing import Any

from monitor.testing.kube_store import ApiError
from monitor.testing.stack import LocalStack, MonitorProcess, seconds_ahead
from monitor.testing.wait import timing_bound, wait_until
from tests.e2e.helpers import (
    deadline_batch,
    duplicates,
    freshness_batch,
    keys,
    metric,
    outbox_empty,
)

NAMESPACE = "monitoring"
STATE = f"{NAMESPACE}/sla-monitor-state"
#: Lease duration 15 s, retry period 2 s, plus the new leader's start (4 s nominal).
FAILOVER_LIMIT = 15.0 + 2.0 + timing_bound(4.0)


def replicas(stack: LocalStack, config: Any) -> tuple[MonitorProcess, MonitorProcess]:
    started = tuple(
        stack.spawn(
            config,
            "--leader-elect",
            name=name,
            env=stack.env(POD_NAME=name, POD_NAMESPACE=NAMESPACE),
        )
        for name in ("replica-a", "replica-b")
    )
    for daemon in started:
        daemon.wait_ready()
    return started[0], started[1]


def is_leader(daemon: MonitorProcess) -> bool:
    return bool(daemon.status()["leader"])


def lease_holder(stack: LocalStack) -> str | None:
    lease = stack.kube.get("coordination.k8s.io", "leases", NAMESPACE, "sla-monitor")
    holder: str | None = lease.get("spec", {}).get("holderIdentity")
    return holder


def the_leader(
    stack: LocalStack, daemons: tuple[MonitorProcess, ...], timeout: float
) -> MonitorProcess:
    """Wait until exactly one of `daemons` leads, and it is the Lease holder."""
    found: list[MonitorProcess] = []

    def one_leader() -> bool:
        found[:] = [daemon for daemon in daemons if daemon.alive() and is_leader(daemon)]
        return len(found) == 1

    wait_until(one_leader, timeout=timeout, step=0.1)
    [leader] = found
    assert lease_holder(stack) == leader.log_path.stem
    return leader


def fail_job(stack: LocalStack, name: str) -> str:
    stack.kube.jobs.create_job("ml", name, cronjob="train")
    stack.kube.jobs.fail_job("ml", name)
    job = stack.kube.get("batch", "jobs", "ml", name)
    uid: str = job["metadata"]["uid"]
    return uid


def recorded(stack: LocalStack, key_part: str) -> bool:
    """The outbox ConfigMap records the delivery of a key containing `key_part`: until then
    a SIGKILL may repeat it (the one message in flight, SPEC "Guarantees")."""
    try:
        config_map = stack.kube.get("", "configmaps", NAMESPACE, "sla-monitor-state-outbox")
    except ApiError:
        return False
    packed = (config_map.get("binaryData") or {}).get("state.json.gz")
    if not packed:
        return False
    document = json.loads(gzip.decompress(base64.b64decode(packed)))
    sent = document.get("outbox", {}).get("sent", [])
    return any(key_part in record.get("key", "") for record in sent)


def posted(stack: LocalStack, part: str) -> bool:
    return any(part in key for key in keys(stack.slack))


def test_one_leader_posts_and_a_killed_leader_is_replaced_without_losing_alerts(
    stack: LocalStack,
) -> None:
    during_failover = seconds_ahead(14)
    config = stack.write_config(
        {
            "state": {"configmap": STATE},
            "batches": [
                freshness_batch("train", "1h"),
                deadline_batch("nightly", during_failover),
            ],
        }
    )
    pair = replicas(stack, config)
    leader = the_leader(stack, pair, timeout=10)
    follower = next(daemon for daemon in pair if daemon is not leader)
    assert follower.get("/readyz")[0] == 200
    assert not is_leader(follower)
    assert metric(leader, "sla_monitor_leader") == 1
    assert metric(follower, "sla_monitor_leader") == 0

    before = fail_job(stack, "train-1")
    wait_until(lambda: posted(stack, before), timeout=5)
    wait_until(lambda: outbox_empty(leader), timeout=5)
    wait_until(lambda: recorded(stack, before), timeout=5)

    leader.kill()
    killed = time.monotonic()
    # While nobody leads: a failure happens and the nightly deadline passes unmet.
    during = fail_job(stack, "train-2")
    new_leader = the_leader(stack, (follower,), timeout=FAILOVER_LIMIT + 5)
    failover = time.monotonic() - killed
    print(f"failover after SIGKILL: {failover:.1f} s")
    assert failover <= FAILOVER_LIMIT

    missed = f"nightly@{during_failover.isoformat()}"
    wait_until(lambda: posted(stack, during) and posted(stack, missed), timeout=10)
    after = fail_job(stack, "train-3")
    wait_until(lambda: posted(stack, after), timeout=5)
    wait_until(lambda: outbox_empty(new_leader), timeout=5)

    assert duplicates(stack.slack) == {}
    assert len(keys(stack.slack)) == 4
    assert [posted(stack, part) for part in (before, during, missed, after)] == [True] * 4
    assert new_leader.terminate() == 0


def test_a_stopped_leader_releases_the_lease_and_the_follower_takes_over_at_once(
    stack: LocalStack,
) -> None:
    config = stack.write_config(
        {"state": {"configmap": STATE}, "batches": [freshness_batch("train", "1h")]}
    )
    pair = replicas(stack, config)
    leader = the_leader(stack, pair, timeout=10)
    follower = next(daemon for daemon in pair if daemon is not leader)
    before = fail_job(stack, "train-1")
    wait_until(lambda: posted(stack, before), timeout=5)

    stopping = time.monotonic()
    assert leader.terminate() == 0
    the_leader(stack, (follower,), timeout=10)
    handover = time.monotonic() - stopping
    print(f"handover after SIGTERM: {handover:.1f} s")
    assert handover <= 6.0  # the old leader's stop, then one retry period

    after = fail_job(stack, "train-2")
    wait_until(lambda: posted(stack, after), timeout=5)
    wait_until(lambda: outbox_empty(follower), timeout=5)
    assert duplicates(stack.slack) == {}
    assert len(keys(stack.slack)) == 2
    assert follower.terminate() == 0
