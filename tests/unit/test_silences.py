"""Silences: alerts due inside one are recorded, not posted; an incident still open when
it ends is posted then, under its own key; one that closed inside is never posted."""

from __future__ import annotations

from datetime import timedelta

from monitor.core.engine import Engine
from monitor.core.facts import ConfigReplaced, Post
from monitor.core.schedule import iso
from tests.unit.engine_helpers import (
    T0,
    advance,
    deadline_batch,
    failed,
    make_config,
    posts,
    resolves,
    succeeded,
)

H = timedelta(hours=1)
D1 = T0 + 9 * H  # the first deadline, 2026-11-26T09:00Z
DAY = timedelta(days=1)


def silence(start: object, until: object, batches: list[str] | None = None) -> dict[str, object]:
    return {"batches": batches or ["daily"], "from": iso(start), "until": iso(until),  # type: ignore[arg-type]
            "reason": "freeze"}  # fmt: skip


def engine_with(*silences: dict[str, object]) -> Engine:
    engine = Engine(make_config(deadline_batch(), silences=list(silences)), started_at=T0)
    advance(engine, T0)
    return engine


def test_a_miss_inside_a_silence_is_held_and_posted_when_it_ends_still_open() -> None:
    engine = engine_with(silence(D1 - H, D1 + DAY + 2 * H))
    assert posts(advance(engine, D1 + H)) == []  # missed, silenced
    assert engine.take_decisions()[-1].reason == "silenced"
    assert posts(advance(engine, D1 + DAY + H)) == []  # a second miss only grows it
    assert engine.next_wakeup() == D1 + DAY + 2 * H  # it wakes for the end
    [post] = posts(advance(engine, D1 + DAY + 2 * H))  # seen up to the end: posted
    assert (post.kind, post.key) == ("missed_deadline", f"daily@{iso(D1)}")
    assert post.details["missed_count"] == 2  # current, not as first held
    assert posts(advance(engine, D1 + DAY + 3 * H)) == []  # once
    engine.handle(succeeded("late", D1 + DAY + 4 * H))
    [recovered] = resolves(advance(engine, D1 + DAY + 5 * H))
    assert recovered.key == post.key  # resolvable like any posted incident


def test_an_incident_that_closes_inside_the_silence_is_never_posted() -> None:
    engine = engine_with(silence(D1 - H, D1 + 5 * H))
    assert posts(advance(engine, D1 + H)) == []
    assert engine.handle(succeeded("late", D1 + 2 * H)) == []  # no recovery of a silent alert
    assert advance(engine, D1 + 6 * H) == []
    assert engine.held == {}


def test_failures_inside_a_silence_are_recorded_and_never_posted_later() -> None:
    engine = engine_with(silence(D1 - 2 * H, D1 - H))
    inside = D1 - 90 * timedelta(minutes=1)
    assert engine.handle(failed("f1", inside)) == []
    assert posts(advance(engine, D1 - H + timedelta(minutes=1))) == []
    assert engine.handle(failed("f1", inside)) == []  # relisted after the silence: still not
    assert engine.held == {}  # a failure is not an incident: nothing waits for the end


def test_star_silences_every_batch_and_a_restart_keeps_what_is_held() -> None:
    engine = engine_with(silence(D1 - H, D1 + 3 * H, ["*"]))
    assert posts(advance(engine, D1 + H)) == []
    restored = Engine.restore(engine.config, engine.to_json(), D1 + 2 * H)
    assert posts(advance(restored, D1 + 2 * H)) == []
    [post] = posts(advance(restored, D1 + 3 * H))
    assert post.key == f"daily@{iso(D1)}"
    assert restored.status()[0]["state"] == "missed"


def test_removing_a_silence_by_reload_posts_the_held_incident_at_once() -> None:
    engine = engine_with(silence(D1 - H, D1 + 10 * DAY))
    assert posts(advance(engine, D1 + H)) == []
    assert engine.status()[0]["state"] == "silenced"
    plain = make_config(deadline_batch())
    actions = engine.handle(ConfigReplaced(plain, D1 + 2 * H))
    actions += advance(engine, D1 + 2 * H)
    assert [a.key for a in actions if isinstance(a, Post)] == [f"daily@{iso(D1)}"]
    assert engine.status()[0]["state"] == "missed"


def test_a_deadline_after_the_silence_is_alerted_normally() -> None:
    engine = engine_with(silence(T0, D1 - H))
    [miss] = posts(advance(engine, D1 + timedelta(minutes=1)))
    assert miss.key == f"daily@{iso(D1)}"
