"""When state is saved: soon after a change, coalesced; rarely for the clock alone."""

from __future__ import annotations

from monitor.runtime.save_policy import SavePolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_changes_schedule_one_save_and_coalesce_until_it_runs() -> None:
    policy = SavePolicy(monotonic=Clock())
    assert policy.changed(clock_only=False) is True  # schedule it
    assert policy.changed(clock_only=False) is False  # already scheduled: coalesced
    assert policy.due() is True
    policy.saved()
    assert policy.due() is False  # nothing new since


def test_clock_only_changes_are_saved_at_most_every_interval() -> None:
    clock = Clock()
    policy = SavePolicy(clock_interval=60.0, monotonic=clock)
    assert policy.changed(clock_only=True) is False
    assert not policy.dirty
    clock.now += 59.0
    assert policy.changed(clock_only=True) is False
    clock.now += 1.0
    assert policy.changed(clock_only=True) is True
    assert policy.due() is True
    policy.saved()
    assert policy.changed(clock_only=True) is False  # the interval starts again


def test_a_change_while_a_save_is_pending_is_saved_by_it() -> None:
    policy = SavePolicy(monotonic=Clock())
    assert policy.changed(clock_only=False)
    assert not policy.changed(clock_only=False)
    assert policy.due()
    policy.saved()
    assert policy.changed(clock_only=False)  # a new change schedules a new save
