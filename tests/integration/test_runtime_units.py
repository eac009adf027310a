"""The pipeline's scheduler slots (real APScheduler) and status snapshot cache."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from monitor.runtime.slots import Slots
from monitor.runtime.snapshot_cache import SnapshotCache
from monitor.testing.wait import wait_until
from monitor.web.server import StatusSnapshot


def now() -> datetime:
    return datetime.now(UTC)


def test_a_slot_runs_only_its_latest_job() -> None:
    slots = Slots(now)
    slots.start()
    try:
        ran: list[str] = []
        slots.after("tick", 0.3, lambda: ran.append("first"))
        slots.after("tick", 0.1, lambda: ran.append("second"))
        slots.after("other", 0.1, lambda: ran.append("other"))
        assert slots.pending("tick") is not None
        wait_until(lambda: len(ran) >= 2 and slots.pending("tick") is None)
        slots.after("sentinel", 0.5, lambda: ran.append("sentinel"))  # after "first"'s time
        wait_until(lambda: "sentinel" in ran)
        assert sorted(ran) == ["other", "second", "sentinel"]  # "first" was replaced
        # A past instant runs at once.
        slots.at("late", now() - timedelta(hours=1), lambda: ran.append("late"))
        wait_until(lambda: "late" in ran)
    finally:
        slots.shutdown()


def test_a_job_that_reschedules_its_own_slot_is_not_lost() -> None:
    """APScheduler removes a fired date job by id after dispatching it; a job that puts its
    successor in the same slot must keep that successor."""
    slots = Slots(now)
    slots.start()
    try:
        runs = [0]

        def again() -> None:
            runs[0] += 1
            if runs[0] < 5:
                slots.after("loop", 0.0, again)

        slots.after("loop", 0.0, again)
        wait_until(lambda: runs[0] == 5)
    finally:
        slots.shutdown()


def test_repeat_polls_after_what_each_poll_returns_and_survives_a_raise() -> None:
    slots = Slots(now)
    slots.start()
    try:
        calls = [0]

        def poll() -> float:
            calls[0] += 1
            if calls[0] == 2:
                raise RuntimeError("a poll that raises")
            return 0.01

        slots.repeat("poll", poll, 0.0, retry=0.01)
        wait_until(lambda: calls[0] >= 4)
    finally:
        slots.shutdown()
    assert not slots.running


def snapshot(at: datetime) -> StatusSnapshot:
    return StatusSnapshot(
        batches=[], history=[], sources={}, leader=True, ready=True, generated_at=at
    )


def test_a_stale_snapshot_is_refreshed_once_for_many_readers() -> None:
    requests = []
    cache: SnapshotCache

    def request() -> None:
        requests.append(1)
        threading.Timer(0.05, lambda: cache.publish(snapshot(now()))).start()

    cache = SnapshotCache(request, now)
    first = cache.get()
    assert first is not None
    assert len(requests) == 1
    results = []
    readers = [threading.Thread(target=lambda: results.append(cache.get())) for _ in range(8)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert results == [first] * 8  # fresh: no refresh asked for
    assert len(requests) == 1
    cache.publish(snapshot(now() - timedelta(seconds=5)))
    refreshed = cache.get(fresh_within=1.0)
    assert refreshed is not None
    assert refreshed.generated_at > now() - timedelta(seconds=1)
    assert len(requests) == 2


def test_without_a_refresh_the_reader_waits_a_bounded_time() -> None:
    cache = SnapshotCache(lambda: None, now, wait=0.1)
    assert cache.get() is None


def test_a_snapshot_nobody_asked_for_is_let_go_and_a_recent_one_kept() -> None:
    published: list[StatusSnapshot] = []
    cache = SnapshotCache(lambda: None, now, wait=0.05)
    cache.publish(snapshot(now() - timedelta(seconds=5)))
    cache.expire(older_than=30.0)
    kept = cache.get(fresh_within=60.0)
    assert kept is not None  # 5 s old: kept
    published.append(kept)
    cache.publish(snapshot(now() - timedelta(seconds=31)))
    cache.expire(older_than=30.0)
    assert cache.get(fresh_within=3600.0) is None  # let go; no refresh came in time
