"""Render docs/status-page.html: the status page for one scripted morning, at a fixed time.

A real engine is driven with facts (completions, a failure, a traceback, source health) so
the example shows exactly what the daemon serves at `/`. Run from the repository root:

    .venv/bin/python docs/make_status_page.py

A test checks that the file in the repository is what this script renders.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from monitor.config.model import Config
from monitor.core.engine import Engine
from monitor.core.facts import (
    CLOUD_LOGGING,
    KUBERNETES,
    SLACK,
    JobSeen,
    SourceHealth,
    Tick,
    TracebackSeen,
    Watermark,
)
from monitor.web.page import render_status_page
from monitor.web.server import StatusSnapshot

TOKYO = ZoneInfo("Asia/Tokyo")
STARTED = datetime(2026, 11, 26, 0, 0, tzinfo=TOKYO)
NOW = datetime(2026, 11, 26, 9, 20, tzinfo=TOKYO)
OUTPUT = Path(__file__).with_name("status-page.html")


def _batch(name: str, **rule: str) -> dict[str, object]:
    return {"name": name, "match": {"namespace": "ml-batch", "cronjob": name}, **rule}


def _job(cronjob: str, at: datetime, outcome: str = "succeeded", reason: str = "") -> JobSeen:
    uid = f"{cronjob}-{at:%H%M}"
    if outcome == "failed":
        return JobSeen(
            uid, "ml-batch", uid, cronjob=cronjob, outcome="failed", reason=reason, failed_at=at
        )
    return JobSeen(uid, "ml-batch", uid, cronjob=cronjob, outcome="succeeded", completion_time=at)


def _advance(engine: Engine, now: datetime) -> None:
    engine.handle(Tick(now))
    engine.handle(Watermark(KUBERNETES, now))


def example_engine() -> Engine:
    config = Config.model_validate(
        {
            "timezone": "Asia/Tokyo",
            "batches": [
                _batch("recommend-daily", deadline="0 9 * * *", grace="5m"),
                _batch("ranking-daily", deadline="30 9 * * *"),
                _batch("churn-daily", deadline="0 8 * * *"),
                _batch("user-embedding", deadline="0 9 * * *"),
                _batch("ads-ctr-model", deadline="0 12 * * *"),
                _batch("feature-refresh", freshness="30m"),
                _batch("search-index", freshness="1h"),
                _batch("weekly-report", deadline="0 6 * * 1"),
            ],
        }
    )
    engine = Engine(config, started_at=STARTED)
    _advance(engine, STARTED)
    at = STARTED.replace
    engine.handle(_job("search-index", at(hour=7, minute=50)))
    engine.handle(_job("ads-ctr-model", at(hour=8, minute=10), "failed", "BackoffLimitExceeded"))
    engine.handle(_job("recommend-daily", at(hour=8, minute=41)))
    _advance(engine, at(hour=9, minute=1))
    engine.handle(_job("churn-daily", at(hour=8, minute=17)))  # late: resolves 08:00
    engine.handle(
        TracebackSeen(
            namespace="ml-batch",
            pod="user-embedding-29140200-x7k2p",
            container="main",
            job="user-embedding-29140200",
            cronjob="user-embedding",
            time=at(hour=8, minute=52, second=13),
            first_line="Traceback (most recent call last):",
            final_line="google.api_core.exceptions.NotFound: 404 Table user_features not found",
        )
    )
    engine.handle(_job("feature-refresh", at(hour=9, minute=5)))
    for source in (KUBERNETES, CLOUD_LOGGING, SLACK):
        engine.handle(SourceHealth(source, reachable=True, last_contact=NOW - timedelta(seconds=4)))
    _advance(engine, NOW)
    return engine


def render_example() -> str:
    snapshot = StatusSnapshot.from_engine(
        example_engine(), leader=True, synced=True, generated_at=NOW
    )
    return render_status_page(snapshot)


def main() -> None:
    OUTPUT.write_text(render_example(), encoding="utf-8")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
