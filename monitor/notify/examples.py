"""Alerts the engine really produces, for the message previews and the renderer's tests.

A scripted morning is fed to a real `Engine` and every action it returns is kept under a
name. Rendering only these means a preview or a test can never show a detail the engine
does not set (a renderer field nobody fills is then visibly empty, not silently faked).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config.model import Config
from monitor.core.engine import Engine
from monitor.core.facts import (
    KUBERNETES,
    Action,
    ConfigRejected,
    Edit,
    Fact,
    JobSeen,
    Post,
    Remind,
    SourceHealth,
    Tick,
    TracebackSeen,
    Watermark,
)

#: The monitor's first start: 2026-11-26 08:00 Asia/Tokyo.
STARTED = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
MENTION = "<!subteam^S0123>"
UID = "0d4f9c1e-7a3b-4c55-9e0a-2b1f6f1f2a10"

_CONFIG: dict[str, Any] = {
    "timezone": "Asia/Tokyo",
    "slack": {"channel": "#ml-batch-alerts", "remind": "1h"},
    "batches": [
        {
            "name": "recommend-daily",
            "match": {"namespace": "ml-batch", "cronjob": "recommend-daily"},
            "deadline": "0 9 * * *",
            "grace": "5m",
            "slack": {"channel": "#recommend", "mention": MENTION},
        },
        {
            "name": "never-ran",
            "match": {"namespace": "ml-batch", "cronjob": "never-ran"},
            "deadline": "0 9 * * *",
        },
        {
            "name": "hourly-scores",
            "match": {"namespace": "ml-batch", "cronjob": "hourly-scores"},
            "deadline": "30 * * * *",
        },
        {
            "name": "feature-refresh",
            "match": {"namespace": "ml-batch", "cronjob": "feature-refresh"},
            "freshness": "30m",
        },
        {
            "name": "train-embeddings",
            "match": {"namespace": "ml-batch", "cronjob": "train-embeddings"},
            "deadline": "0 9 * * *",
            "max_runtime": "1h",
        },
    ],
    "unmatched": {"notify": {"job_failed": True, "traceback": True}},
}


def _at(minutes: float) -> datetime:
    return STARTED + timedelta(minutes=minutes)


def job(name: str, cronjob: str, **state: Any) -> JobSeen:
    """A Job of `cronjob` in ml-batch as the Kubernetes source reports it."""
    return JobSeen(uid=f"uid-{name}", namespace="ml-batch", name=name, cronjob=cronjob, **state)


def scripted_facts(
    failure: Mapping[str, Any] | None = None,
    traceback: Mapping[str, Any] | None = None,
    outage: str = "connection refused",
    config_errors: tuple[str, ...] = ("sla.yaml:3:5: unknown key <grace_period>",),
) -> list[Fact]:
    """The morning, in the order the sources would deliver it (clock and watermark too).

    `failure` / `traceback` override fields of the failed Job / the traceback, and `outage` /
    `config_errors` are what the API error and the bad reload say, for tests that need
    hostile or oversized text to travel the real path.
    """
    failed = JobSeen(
        **{
            "uid": UID,
            "namespace": "ml-batch",
            "name": "recommend-daily-29399",
            "cronjob": "recommend-daily",
            "start_time": _at(15),
            "outcome": "failed",
            "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
            "failed_at": _at(63),
            **(failure or {}),
        }
    )
    seen = TracebackSeen(
        **{
            "namespace": "ml-batch",
            "pod": "recommend-daily-29399-x7k2p",
            "container": "main",
            "job": "recommend-daily-29399",
            "cronjob": "recommend-daily",
            "time": _at(62.5),
            "first_line": "Traceback (most recent call last):",
            "final_line": "KeyError: 'user_id'",
            **(traceback or {}),
        }
    )
    late = job(
        "recommend-daily-29400",
        "recommend-daily",
        start_time=_at(70),
        outcome="succeeded",
        completion_time=_at(107),
    )
    yesterday = {"outcome": "succeeded", "completion_time": _at(-23 * 60 - 19)}  # 08:41 JST
    # train-embeddings usually takes 25-35 min; today's run starts at 08:02 and hangs.
    history = [
        job(
            f"train-embeddings-2939{day}",
            "train-embeddings",
            start_time=_at(2 - day * 24 * 60),
            outcome="succeeded",
            completion_time=_at(2 - day * 24 * 60 + 25 + 2 * day),
        )
        for day in range(5, 0, -1)
    ]
    hung = {"start_time": _at(2)}
    timeline: list[tuple[float, Fact]] = [
        *((0, run) for run in history),
        (2, job("train-embeddings-29399", "train-embeddings", **hung)),
        (
            110,
            job(
                "train-embeddings-29399",
                "train-embeddings",
                **hung,
                outcome="succeeded",
                completion_time=_at(110),
            ),
        ),
        (0, SourceHealth(KUBERNETES, True, STARTED)),
        (0, job("recommend-daily-29398", "recommend-daily", **yesterday)),
        (
            1,
            job(
                "feature-refresh-1", "feature-refresh", outcome="succeeded", completion_time=_at(1)
            ),
        ),
        (62.5, seen),
        (63, failed),
        (64, SourceHealth(KUBERNETES, False, _at(64), outage)),
        (71, SourceHealth(KUBERNETES, True, _at(71))),
        (75, ConfigRejected(_at(75), config_errors)),
        (107, late),
    ]
    for minute in range(5, 115, 5):
        timeline.append((minute, Tick(_at(minute))))
        if not 64 <= minute < 71:  # the cluster view stops while the API is unreachable
            timeline.append((minute, Watermark(KUBERNETES, _at(minute))))
    return [fact for _, fact in sorted(timeline, key=lambda item: item[0])]


def scripted_config() -> Config:
    return Config.model_validate(_CONFIG)


def engine_actions(facts: list[Fact] | None = None) -> list[Action]:
    """Every action a fresh engine returns for `facts` (default: the scripted morning)."""
    engine = Engine(scripted_config(), started_at=STARTED)
    return engine.handle_all(scripted_facts() if facts is None else facts)


def examples(**script: Any) -> dict[str, Action]:
    """One engine-made action per message the product sends, by a descriptive name.

    `script` is passed to `scripted_facts`.
    """
    named: dict[str, Action] = {}
    for action in engine_actions(scripted_facts(**script)):
        if isinstance(action, Post):
            name: str = action.kind
            if action.kind == "missed_deadline":
                name = _MISSED_NAMES[action.batch]
            elif action.kind == "monitor_degraded":
                name = "config_rejected" if action.key.startswith("degraded:config") else name
            named.setdefault(name, action)
        elif isinstance(action, Edit):
            named.setdefault("incident_edited", action)
        elif isinstance(action, Remind):
            named.setdefault(f"reminder_{action.kind}", action)
        elif action.key not in {a.key for a in named.values() if isinstance(a, Post)}:
            continue  # it resolves an alert not shown (a second one of its kind)
        elif action.closed is not None:
            named.setdefault(f"closed_{action.kind}", action)
        else:
            named.setdefault(f"recovered_{action.kind}", action)
    return named


def storm_failures(count: int = 14) -> list[Post]:
    """`job_failed` alerts of `count` Jobs failing within a minute: a storm, as the engine
    makes it (the notifier folds all but the first `slack.storm.threshold` into a digest)."""
    facts: list[Fact] = [Tick(_at(60)), Watermark(KUBERNETES, _at(60))]
    for index in range(count):
        facts.append(
            job(
                f"hourly-scores-{29400 + index}",
                "hourly-scores",
                start_time=_at(55),
                outcome="failed",
                reason="BackoffLimitExceeded" if index % 3 else "DeadlineExceeded",
                failed_at=_at(60 + index / 60),
            )
        )
    return [a for a in engine_actions(facts) if isinstance(a, Post) and a.kind == "job_failed"]


_MISSED_NAMES = {
    "recommend-daily": "missed_deadline",
    "never-ran": "missed_deadline_never_succeeded",
    "hourly-scores": "missed_deadline_hourly",
    "train-embeddings": "missed_deadline_after_at_risk",
}
