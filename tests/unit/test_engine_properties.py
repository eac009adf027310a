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

from monitor.config import Config
from monitor.engine import Engine
from monitor.facts import KUBERNETES, Action, Fact, Post, Resolve, Tick, TracebackSeen, Watermark
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


def deliver(engine: Engine, batches: list[list[Fact]], checkpoints: list[datetime]) -> list[Action]:
    """Deliver each batch of facts, then move clock and watermark to its checkpoint."""
    actions: list[Action] = []
    for facts, checkpoint in zip(batches, checkpoints, strict=True):
        for fact in facts:
            actions += engine.handle(fact)
        actions += engine.handle(Tick(checkpoint))
        actions += engine.handle(Watermark(KUBERNETES, checkpoint))
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


def literal_misses(timeline: Timeline) -> list[str]:
    """The deadlines SPEC's rule alerts, computed the plain way, independent of the engine.

    Walk completions and decision points (Dk + grace) in time order, a completion first on
    a tie: a completion while a miss is open resolves it and counts for nothing else;
    otherwise it meets the earliest undecided, unmet deadline whose window holds it. A
    decision point whose deadline is unmet is a miss. Deadlines at or before the first
    start are never alerted.
    """
    rule = timeline.config.deadline_rule(timeline.config.batches[0])
    assert rule is not None
    horizon = timeline.checkpoints[-1]
    deadlines = list(rule.cron.between(T0, horizon - rule.grace))
    completions = sorted(
        at
        for at, fact in timeline.facts
        if getattr(fact, "cronjob", None) == "d" and getattr(fact, "outcome", "") == "succeeded"
    )
    points = [(at, 0, None) for at in completions]
    points += [(rule.decision_instant(deadline), 1, deadline) for deadline in deadlines]
    met: set[datetime] = set()
    decided: set[datetime] = set()
    missed: list[str] = []
    miss_open = False
    for at, _order, deadline in sorted(points, key=lambda point: point[:2]):
        if deadline is None:
            if miss_open:
                miss_open = False
                continue
            for candidate in deadlines:
                start, end = rule.window_of(candidate)
                if candidate not in decided and candidate not in met and start < at <= end:
                    met.add(candidate)
                    break
            continue
        decided.add(deadline)
        if deadline not in met:
            missed.append(f"d@{rule.cron.local(deadline).isoformat()}")
            miss_open = True
    return missed


@settings(max_examples=250, deadline=None)
@given(timeline=timelines())
def test_missed_deadline_alerts_are_exactly_those_of_the_literal_rule(
    timeline: Timeline,
) -> None:
    """Both ways: every miss is alerted once, and no deadline the rule calls met is alerted."""
    actions = deliver(
        Engine(timeline.config, started_at=T0), in_time_order(timeline), timeline.checkpoints
    )
    posted = [a.key for a in actions if isinstance(a, Post) and a.kind == "missed_deadline"]
    assert len(posted) == len(set(posted)), "a key was posted twice"
    assert sorted(posted) == sorted(literal_misses(timeline))


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
    expected = uninterrupted.handle_all(steps)

    first = Engine(timeline.config, started_at=T0)
    before = first.handle_all(steps[:cut])
    saved = json.loads(json.dumps(first.to_json()))
    resumed = Engine.restore(timeline.config, saved, now=first.now)
    after = resumed.handle_all(steps[cut:])

    assert before + after == expected
    assert resumed.to_json() == uninterrupted.to_json()
