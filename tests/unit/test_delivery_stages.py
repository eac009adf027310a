"""The pure delivery stages: pacing, the storm gate, and the outbox's order and threads."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.core.facts import Edit, Post
from monitor.notify.outbox import Outbox
from monitor.notify.pacing import ChannelPace
from monitor.notify.routing import Address
from monitor.notify.storm import StormGate, digest_key

AT = datetime(2026, 11, 27, tzinfo=UTC)
HERE = Address("#alerts")


def failure(n: int, thread: str | None = None) -> Post:
    return Post("job_failed", "b", f"job_failed:ml/j{n}@u{n}", AT, {}, thread=thread)


def missed(n: int = 0) -> Post:
    return Post("missed_deadline", "b", f"b@{n}", AT, {})


def test_a_channel_bursts_then_posts_once_a_second() -> None:
    pace = ChannelPace(rate=1.0, burst=3)
    for _ in range(3):
        assert pace.ready_at(100.0) == 100.0
        pace.sent(100.0)
    assert pace.ready_at(100.0) == 101.0  # the bucket is empty: one token per second
    pace.sent(101.0)
    assert pace.ready_at(101.5) == 102.0
    assert pace.ready_at(101.5, posting=False) == 101.5  # edits do not use the pace


def test_failures_back_off_exponentially_and_honour_retry_after() -> None:
    pace = ChannelPace(initial_backoff=1.0, max_backoff=8.0)
    assert [pace.failed(0.0) for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert pace.failed(0.0, retry_after=30.0) == 30.0
    assert pace.ready_at(10.0) == 30.0
    pace.sent(30.0)
    assert pace.failures == 0


def test_the_storm_gate_holds_only_diagnostics_past_the_threshold() -> None:
    gate = StormGate(threshold=3, window=60.0)
    held = [gate.arrived("#a", "job_failed", 10.0 + n) for n in range(5)]
    assert held == [False, False, False, True, True]
    assert not gate.arrived("#a", "missed_deadline", 15.0)  # SLA alerts are never held
    assert not gate.arrived("#b", "job_failed", 15.0)  # another channel counts on its own
    assert not gate.arrived("#a", "traceback", 200.0)  # the window has passed


def test_a_digest_gathers_briefly_then_at_most_once_a_window() -> None:
    gate = StormGate(threshold=1, window=60.0, gather=5.0)
    assert gate.digest_due("#a", first_held_at=100.0) == 105.0
    gate.digested("#a", 105.0)
    assert gate.digest_due("#a", first_held_at=106.0) == 165.0  # one window after the last
    assert gate.digest_due("#b", first_held_at=106.0) == 111.0
    assert digest_key("#a", 0.0) == "digest:#a@1970-01-01T00:00Z"


def test_sla_entries_go_ahead_of_diagnostics_and_held_ones_wait() -> None:
    outbox = Outbox()
    first = outbox.add(failure(1), HERE, "#alerts", 0.0)
    second = outbox.add(failure(2), HERE, "#alerts", 0.0)
    assert first is not None
    assert second is not None
    second.held_at = 0.0
    sla = outbox.add(missed(), HERE, "#alerts", 1.0)
    assert outbox.head("#alerts") is sla
    outbox.delivered(sla, "C1", "1.0", 2.0)  # type: ignore[arg-type]
    edit = outbox.add(Edit(missed().key, "missed_deadline", "b", AT, 2, {}), None, "#alerts", 3.0)
    assert outbox.head("#alerts") is edit  # an edit of an SLA alert is an SLA entry
    outbox.delivered(edit, "C1", "1.0", 3.0)  # type: ignore[arg-type]
    assert outbox.head("#alerts") is first
    outbox.delivered(first, "C1", "2.0", 4.0)
    assert outbox.head("#alerts") is None  # only the held one is left
    assert outbox.held("#alerts") == [second]


def test_a_runs_thread_is_remembered_and_survives_a_restart() -> None:
    outbox = Outbox()
    first = failure(1, thread="run:ml/j1")
    assert not outbox.is_reply(first, "#alerts")
    entry = outbox.add(first, HERE, "#alerts", 0.0)
    assert entry is not None
    later = failure(2, thread="run:ml/j1")
    assert outbox.is_reply(later, "#alerts")  # its first message is still pending
    assert not outbox.is_reply(later, "#other")
    outbox.threaded("run:ml/j1", "#alerts", "C1", "7.0")
    restored = Outbox.from_json(outbox.to_json())
    assert restored.thread_of(later, "#alerts") == ("C1", "7.0")
    assert restored.thread_of(later, "#other") is None
    assert restored.pending[0].key == first.key
