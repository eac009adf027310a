"""The Lease elector against the fake API server, with short client-go-like timings: one
leader at a time, a released Lease stays released, an API restart shorter than the renew
deadline deposes nobody, and a leader whose Lease is taken stops."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.runtime.leader import LEASE_NAME, LeaderElector
from monitor.testing.kube_api import FakeKubeApi
from monitor.testing.kube_store import RESOURCES_BY_PATH
from monitor.testing.wait import wait_until

NAMESPACE = "monitoring"
LEASES = RESOURCES_BY_PATH[("coordination.k8s.io", "v1", "leases")]
TIMINGS = {"lease_duration": 3, "renew_deadline": 2, "retry_period": 1}


class Candidate:
    """An elector plus a record of its callbacks."""

    def __init__(self, kube: FakeKubeApi, identity: str, **timings: int) -> None:
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.elector = LeaderElector(
            kube.api_client(),
            NAMESPACE,
            identity,
            self.started.set,
            self.stopped.set,
            **(timings or TIMINGS),
        )

    def finished(self) -> bool:
        thread = self.elector._thread
        return thread is not None and not thread.is_alive()


@pytest.fixture
def kube() -> Iterator[FakeKubeApi]:
    with FakeKubeApi() as fake:
        yield fake


@pytest.fixture
def candidates(kube: FakeKubeApi) -> Iterator[list[Candidate]]:
    made: list[Candidate] = []
    yield made
    for candidate in made:
        candidate.elector.release()


def lease_spec(kube: FakeKubeApi) -> dict[str, object]:
    spec: dict[str, object] = kube.get("coordination.k8s.io", "leases", NAMESPACE, LEASE_NAME)[
        "spec"
    ]
    return spec


def start(
    kube: FakeKubeApi, candidates: list[Candidate], identity: str, **timings: int
) -> Candidate:
    candidate = Candidate(kube, identity, **timings)
    candidates.append(candidate)
    candidate.elector.start()
    return candidate


def test_one_of_two_leads_and_a_release_hands_over_and_stays_released(
    kube: FakeKubeApi, candidates: list[Candidate]
) -> None:
    first = start(kube, candidates, "a")
    wait_until(first.started.is_set, timeout=5)
    second = start(kube, candidates, "b")
    wait_until(lambda: lease_spec(kube).get("renewTime") is not None, timeout=5)
    assert lease_spec(kube)["holderIdentity"] == "a"
    assert first.elector.is_leader
    assert not second.elector.is_leader
    assert lease_spec(kube)["leaseDurationSeconds"] == 3

    first.elector.release()
    wait_until(second.started.is_set, timeout=3)  # one retry period, not a lease duration
    assert lease_spec(kube)["holderIdentity"] == "b"
    # The released elector's renew loop gives up instead of taking the Lease back.
    wait_until(first.finished, timeout=TIMINGS["renew_deadline"] + 3)
    assert lease_spec(kube)["holderIdentity"] == "b"
    assert not first.elector.is_leader


def test_a_lone_released_lease_is_left_free(kube: FakeKubeApi, candidates: list[Candidate]) -> None:
    only = start(kube, candidates, "a")
    wait_until(only.started.is_set, timeout=5)
    only.elector.release()
    wait_until(only.finished, timeout=TIMINGS["renew_deadline"] + 3)
    assert lease_spec(kube).get("holderIdentity") is None


def test_an_api_restart_shorter_than_the_renew_deadline_keeps_the_leader(
    kube: FakeKubeApi, candidates: list[Candidate], caplog: pytest.LogCaptureFixture
) -> None:
    # A renew deadline longer than the outage: the first failed read ends it.
    leader = start(kube, candidates, "a", lease_duration=8, renew_deadline=6, retry_period=1)
    wait_until(leader.started.is_set, timeout=5)
    before = lease_spec(kube)["renewTime"]
    with caplog.at_level(logging.WARNING, logger="monitor.runtime.leader"):
        kube.stop()
        wait_until(lambda: "cannot read the Lease" in caplog.text, timeout=5)
        kube.start()
    wait_until(lambda: lease_spec(kube)["renewTime"] != before, timeout=5)
    assert leader.elector.is_leader
    assert not leader.stopped.is_set()


def test_a_leader_whose_lease_is_taken_stops_within_the_renew_deadline(
    kube: FakeKubeApi, candidates: list[Candidate]
) -> None:
    leader = start(kube, candidates, "a")
    wait_until(leader.started.is_set, timeout=5)
    now = datetime.now(UTC).isoformat()

    def take(lease: dict[str, Any]) -> None:
        lease["spec"] = {
            "holderIdentity": "intruder",
            "leaseDurationSeconds": 30,
            "acquireTime": now,
            "renewTime": now,
        }

    kube.store.modify(LEASES, NAMESPACE, LEASE_NAME, take)
    wait_until(leader.stopped.is_set, timeout=TIMINGS["renew_deadline"] + 3)
    assert not leader.elector.is_leader
    assert lease_spec(kube)["holderIdentity"] == "intruder"
