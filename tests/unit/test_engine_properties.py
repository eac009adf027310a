"""Properties of the engine over generated timelines (hypothesis).

A timeline is a config, a set of facts stamped with the instant they happened, and the
checkpoints at which the clock and the Kubernetes watermark move. "Honest" delivery means
a fact is delivered before the watermark passes its instant — earlier, out of order or
repeatedly is all allowed. Under honest delivery the alerts must not depend on delivery.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.model import Config
from monitor.core.engine import Engine
from monitor.core.facts import (
    KUBERNETES,
    Action,
    ConfigReplaced,
    Edit,
    Fact,
    JobSeen,
    Post,
    Resolve,
    Tick,
    TracebackSeen,
    Watermark,
)
from tests.unit.engine_helpers import T0, failed, make_config, succeeded

SPAN_MINUTES = 360


@dataclass(frozen=True)
class Timeline:
    config: Config
    facts: list[tuple[datetime, Fact]]
    checkpoints: list[datetime]


def fact_time(fact: Fact) -> datetime:
    if isinstance(fact, TracebackSeen):
        return fact.time
    assert not isinstance(fact, Tick | Watermark)
    at = getattr(fact, "completion_time", None) or getattr(fact, "failed_at", None)
    assert at is not None
    return at


@st.composite
def timelines(draw: st.DrawFn) -> Timeline:
    deadline: dict[str, Any] = {
        "name": "d",
        "match": {"cronjob": "d"},
        "deadline": draw(st.sampled_from(["*/10 * * * *", "0 * * * *", "15,45 * * * *"])),
        "grace": draw(st.sampled_from(["0", "2m", "5m"])),
    }
    window = draw(st.sampled_from([None, "15m", "45m", "2h"]))
    if window is not None:
        deadline["window"] = window
    fresh = {
        "name": "f",
        "match": {"cronjob": "f"},
        "freshness": draw(st.sampled_from(["20m", "50m"])),
    }
    config = make_config(deadline, fresh, unmatched={"notify": {"traceback": True}})

    instants = st.integers(min_value=1, max_value=SPAN_MINUTES * 60).map(
        lambda second: T0 + timedelta(seconds=second)
    )
    facts: list[tuple[datetime, Fact]] = []
    for number, (batch, at) in enumerate(
        draw(st.lists(st.tuples(st.sampled_from("df"), instants), max_size=30))
    ):
        facts.append((at, succeeded(f"s{number}", at, cronjob=batch)))
    for number, at in enumerate(draw(st.lists(instants, max_size=4))):
        facts.append((at, failed(f"x{number}", at, cronjob="d")))
    for number, at in enumerate(draw(st.lists(instants, max_size=3))):
        traceback = TracebackSeen(
            namespace="ml",
            pod=f"p{number}",
            container="main",
            job=None,
            time=at,
            first_line="Traceback (most recent call last):",
            final_line="KeyError: 'x'",
        )
        facts.append((at, traceback))
    minutes = draw(
        st.lists(st.integers(1, SPAN_MINUTES + 30), min_size=1, max_size=12, unique=True)
    )
    checkpoints = [T0 + timedelta(minutes=m) for m in sorted(minutes)]
    checkpoints.append(T0 + timedelta(minutes=SPAN_MINUTES + 60))
    return Timeline(config, facts, checkpoints)


def deliver(
    engine: Engine,
    batches: list[list[Fact]],
    checkpoints: list[datetime],
    prune: bool = False,
) -> list[Action]:
    """Deliver each batch of facts, then move clock and watermark to its checkpoint (and,
    with `prune`, forget what the engine says can no longer matter)."""
    actions: list[Action] = []
    for facts, checkpoint in zip(batches, checkpoints, strict=True):
        for fact in facts:
            actions += engine.handle(fact)
        actions += engine.handle(Tick(checkpoint))
        actions += engine.handle(Watermark(KUBERNETES, checkpoint))
        if prune:
            engine.prune()
    return actions


def latest_slot(at: datetime, checkpoints: list[datetime]) -> int:
    """The last checkpoint before which a fact at `at` must have been delivered."""
    return next(index for index, checkpoint in enumerate(checkpoints) if checkpoint >= at)


def in_time_order(timeline: Timeline) -> list[list[Fact]]:
    slots: list[list[Fact]] = [[] for _ in timeline.checkpoints]
    for at, fact in sorted(timeline.facts, key=lambda item: item[0]):
        slots[latest_slot(at, timeline.checkpoints)].append(fact)
    return slots


def summary(actions: list[Action]) -> tuple[list[str], set[str]]:
    posted = sorted(a.key for a in actions if isinstance(a, Post))
    resolved = {a.key for a in actions if isinstance(a, Resolve)}
    return posted, resolved


@settings(max_examples=250, deadline=None)
@given(timeline=timelines(), data=st.data())
def test_any_honest_delivery_order_and_repetition_gives_the_same_alerts(
    timeline: Timeline, data: st.DataObject
) -> None:
    reference = deliver(
        Engine(timeline.config, started_at=T0), in_time_order(timeline), timeline.checkpoints
    )
    shuffled: list[list[Fact]] = [[] for _ in timeline.checkpoints]
    for at, fact in timeline.facts:
        latest = latest_slot(at, timeline.checkpoints)
        for _ in range(data.draw(st.integers(1, 3), label="copies")):
            shuffled[data.draw(st.integers(0, latest), label="slot")].append(fact)
    shuffled = [data.draw(st.permutations(slot), label="order") for slot in shuffled]
    actual = deliver(Engine(timeline.config, started_at=T0), shuffled, timeline.checkpoints)

    assert summary(actual) == summary(reference)
    posted, _ = summary(actual)
    assert len(posted) == len(set(posted)), "a key was posted twice"


@dataclass(frozen=True)
class Expected:
    """What SPEC's rule says must be alerted, computed the plain way."""

    missed: list[datetime]  # every missed deadline, in order
    incidents: list[tuple[str, int]]  # (key of its first miss, deadlines it counts)


def literal_rule(timeline: Timeline) -> Expected:
    """SPEC v2 read literally, independent of the engine.

    Dk counts if Dk + grace is after the first start and reached by the last checkpoint.
    Dk is met iff some success of the batch completed in its window. Misses form
    incidents: the first miss opens one; the first success after that miss's decision
    instant (Dk + grace) closes it; a miss while one is open joins it.
    """
    rule = timeline.config.deadline_rule(timeline.config.batches[0])
    assert rule is not None
    horizon = timeline.checkpoints[-1]
    deadlines = [
        deadline
        for deadline in rule.cron.between(T0 - rule.grace - timedelta(days=1), horizon)
        if T0 < rule.decision_instant(deadline) <= horizon
    ]
    successes = sorted(
        at
        for at, fact in timeline.facts
        if getattr(fact, "cronjob", None) == "d" and getattr(fact, "outcome", "") == "succeeded"
    )

    def met(deadline: datetime) -> bool:
        start, end = rule.window_of(deadline)
        return any(start < at <= end for at in successes)

    missed = [deadline for deadline in deadlines if not met(deadline)]
    incidents: list[tuple[str, int]] = []
    opened: datetime | None = None
    for deadline in missed:
        decided = rule.decision_instant(deadline)
        if opened is not None and any(opened < at <= decided for at in successes):
            opened = None  # a success after the first miss closed the incident
        if opened is None:
            opened = decided
            incidents.append((f"d@{rule.cron.local(deadline).isoformat()}", 1))
        else:
            key, count = incidents[-1]
            incidents[-1] = (key, count + 1)
    return Expected(missed, incidents)


@settings(max_examples=300, deadline=None)
@given(timeline=timelines())
def test_alerts_are_exactly_those_of_the_literal_rule_both_ways(timeline: Timeline) -> None:
    """Every miss is alerted (posted, or counted in its incident's edit) and no met deadline
    ever is; each incident is posted once, under the key of its first miss."""
    actions = deliver(
        Engine(timeline.config, started_at=T0),
        in_time_order(timeline),
        timeline.checkpoints,
        prune=True,  # pruning at every checkpoint must never change a decision
    )
    expected = literal_rule(timeline)
    posted = [a for a in actions if isinstance(a, Post) and a.kind == "missed_deadline"]
    assert len({a.key for a in posted}) == len(posted), "a key was posted twice"
    counted: dict[str, int] = {a.key: a.details["missed_count"] for a in posted}
    for action in actions:
        if isinstance(action, Edit) and action.kind == "missed_deadline":
            counted[action.key] = action.details["missed_count"]
    assert list(counted.items()) == expected.incidents
    assert sum(counted.values()) == len(expected.missed)


@settings(max_examples=250, deadline=None)
@given(timeline=timelines(), data=st.data())
def test_saving_and_restoring_at_any_point_changes_nothing(
    timeline: Timeline, data: st.DataObject
) -> None:
    steps: list[Fact] = []
    for facts, checkpoint in zip(in_time_order(timeline), timeline.checkpoints, strict=True):
        steps += [*facts, Tick(checkpoint), Watermark(KUBERNETES, checkpoint)]
    cut = data.draw(st.integers(0, len(steps)), label="cut")

    uninterrupted = Engine(timeline.config, started_at=T0)
    expected = uninterrupted.handle_all(steps[:cut])
    uninterrupted.encoded()  # a save in the middle: its cache must follow every later change
    expected += uninterrupted.handle_all(steps[cut:])

    first = Engine(timeline.config, started_at=T0)
    before = first.handle_all(steps[:cut])
    saved = json.loads(json.dumps(first.to_json()))
    resumed = Engine.restore(timeline.config, saved, now=first.now)
    # A restart relists the Jobs still in the cluster (their latest state): that rebuilds
    # the run history (not saved) and must raise nothing.
    listed = {fact.uid: fact for fact in steps[:cut] if isinstance(fact, JobSeen)}
    assert resumed.handle_all(list(listed.values())) == []
    after = resumed.handle_all(steps[cut:])

    assert before + after == expected
    assert resumed.to_json() == uninterrupted.to_json()
    # The incrementally encoded form (only changed batches re-encoded) is never stale.
    for engine in (first, resumed, uninterrupted):
        assert json.loads(engine.encoded()) == engine.to_json()


@settings(max_examples=200, deadline=None)
@given(timeline=timelines(), data=st.data())
def test_a_reload_to_an_equivalent_config_changes_nothing(
    timeline: Timeline, data: st.DataObject
) -> None:
    """The same config read again, or with its zone spelled differently (`UTC` as
    `Etc/UTC`), reloaded at any point: the same alerts, and nothing posted twice."""
    steps: list[Fact] = []
    for facts, checkpoint in zip(in_time_order(timeline), timeline.checkpoints, strict=True):
        steps += [*facts, Tick(checkpoint), Watermark(KUBERNETES, checkpoint)]
    cut = data.draw(st.integers(0, len(steps)), label="cut")
    expected = Engine(timeline.config, started_at=T0).handle_all(steps)

    document = timeline.config.model_dump(mode="json", exclude_defaults=True)
    document["timezone"] = data.draw(st.sampled_from(["UTC", "Etc/UTC", "Etc/Zulu"]))
    equivalent = Config.model_validate(document)
    engine = Engine(timeline.config, started_at=T0)
    actions = engine.handle_all(steps[:cut])
    at = data.draw(st.sampled_from([T0, *timeline.checkpoints]), label="reload at")
    actions += engine.handle(ConfigReplaced(equivalent, at=at))
    actions += engine.handle_all(steps[cut:])
    assert summary(actions) == summary(expected)
