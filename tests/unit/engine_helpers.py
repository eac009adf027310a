"""Shared builders for engine tests: configs from dicts, Jobs, and honest time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from monitor.config.model import Config
from monitor.core.engine import Engine
from monitor.core.facts import KUBERNETES, Action, JobSeen, Post, Resolve, Tick, Watermark

T0 = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)


def make_config(*batches: dict[str, Any], **top: Any) -> Config:
    return Config.model_validate({"timezone": "UTC", "batches": list(batches), **top})


def deadline_batch(name: str = "daily", cron: str = "0 9 * * *", **extra: Any) -> dict[str, Any]:
    return {"name": name, "match": {"namespace": "ml", "cronjob": name}, "deadline": cron, **extra}


def succeeded(uid: str, at: datetime, cronjob: str = "daily", ns: str = "ml") -> JobSeen:
    return JobSeen(
        uid=uid,
        namespace=ns,
        name=f"{cronjob}-{uid}",
        cronjob=cronjob,
        outcome="succeeded",
        completion_time=at,
    )


def failed(
    uid: str,
    at: datetime,
    cronjob: str = "daily",
    reason: str = "BackoffLimitExceeded",
    ns: str = "ml",
) -> JobSeen:
    return JobSeen(
        uid=uid,
        namespace=ns,
        name=f"{cronjob}-{uid}",
        cronjob=cronjob,
        outcome="failed",
        reason=reason,
        failed_at=at,
    )


def advance(engine: Engine, now: datetime) -> list[Action]:
    """The clock and the Kubernetes view both reach `now`."""
    return engine.handle(Tick(now)) + engine.handle(Watermark(KUBERNETES, now))


def posts(actions: list[Action]) -> list[Post]:
    return [action for action in actions if isinstance(action, Post)]


def resolves(actions: list[Action]) -> list[Resolve]:
    return [action for action in actions if isinstance(action, Resolve)]
