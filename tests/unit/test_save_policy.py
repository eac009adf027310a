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


def test_while_held_only_a_change_that_posted_is_saved_and_the_rest_waits_for_release() -> None:
    clock = Clock()
    policy = SavePolicy(monotonic=clock)
    policy.hold()
    assert policy.changed(clock_only=False, posted=False) is False  # a listed Job
    assert policy.changed(clock_only=True, posted=False) is False  # a tick while listing
    assert policy.dirty
    policy.release()
    assert policy.changed(clock_only=True, posted=False) is True  # the next fact saves it
    assert policy.due() is True
    policy.saved()
    assert policy.changed(clock_only=True, posted=False) is False  # back to the interval


def test_an_alert_while_held_is_saved_at_once_with_what_waited() -> None:
    policy = SavePolicy(monotonic=Clock())
    policy.hold()
    assert policy.changed(clock_only=False, posted=False) is False
    assert policy.changed(clock_only=False, posted=True) is True
    assert policy.due() is True
    policy.saved()
    assert not policy.dirty
    assert policy.holding  # still listing: the next change that posted nothing waits again
    assert policy.changed(clock_only=False, posted=False) is False


def test_a_hold_ends_by_itself_when_the_list_never_finishes() -> None:
    clock = Clock()
    policy = SavePolicy(hold_limit=120.0, monotonic=clock)
    policy.hold()
    assert policy.changed(clock_only=False, posted=False) is False
    clock.now += 119.0
    assert policy.changed(clock_only=True, posted=False) is False
    clock.now += 1.0
    assert not policy.holding
    assert policy.changed(clock_only=True, posted=False) is True
