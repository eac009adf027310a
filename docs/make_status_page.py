"""Render docs/status-page.html: the status page after two scripted weeks, at a fixed time.

A real engine is driven with facts (two weeks of runs: on time, late, failed, retried; a
traceback; source health) so the example shows exactly what the daemon serves at `/`. Run
from the repository root:

    .venv/bin/python docs/make_status_page.py            # docs/status-page.html
    .venv/bin/python docs/make_status_page.py --png      # and docs/status-page.png

`--png` serves the page over HTTP on 127.0.0.1 and takes a 1200x900 screenshot with headless
Chromium (Debian's `chromium` package). A test checks that the HTML file in the repository
is what this script renders.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from monitor.config.model import Config
from monitor.core.engine import Engine
from monitor.core.facts import (
    CLOUD_LOGGING,
    KUBERNETES,
    SLACK,
    Fact,
    JobSeen,
    SourceHealth,
    Tick,
    TracebackSeen,
    Watermark,
)
from monitor.web.metrics import Metrics
from monitor.web.page import render_status_page
from monitor.web.server import LatestStatus, StatusServer, StatusSnapshot

TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
STARTED = datetime(2026, 11, 12, 0, 0, tzinfo=TOKYO)
NOW = datetime(2026, 11, 26, 9, 20, tzinfo=TOKYO)
DAYS = 14
OUTPUT = Path(__file__).with_name("status-page.html")
SCREENSHOT = Path(__file__).with_name("status-page.png")
M = timedelta(minutes=1)


def _batch(name: str, **rule: str) -> dict[str, object]:
    return {"name": name, "match": {"namespace": "ml-batch", "cronjob": name}, **rule}


def _run(cronjob: str, start: datetime, minutes: float, outcome: str = "succeeded") -> JobSeen:
    """A Job of `cronjob` started at `start`, as last seen `minutes` later."""
    name = f"{cronjob}-{int(start.timestamp()) // 60}"  # the CronJob naming rule
    end = start + timedelta(minutes=minutes)
    common = {"uid": f"uid-{name}", "namespace": "ml-batch", "name": name, "cronjob": cronjob}
    if outcome == "running":
        return JobSeen(**common, start_time=start)
    if outcome == "succeeded":
        return JobSeen(**common, start_time=start, outcome="succeeded", completion_time=end)
    return JobSeen(**common, start_time=start, outcome="failed", reason=outcome, failed_at=end)


def _day(day: int, hour: int, minute: int = 0, zone: ZoneInfo = TOKYO) -> datetime:
    date = (STARTED + timedelta(days=day)).date()
    return datetime(date.year, date.month, date.day, hour, minute, tzinfo=zone)


def _script() -> Iterator[tuple[datetime, Fact]]:
    """Every fact with the instant it is delivered at (a Job when it last changed)."""
    for day in range(DAYS + 1):
        today = day == DAYS
        # recommend-daily, 09:00 + 5m grace: ~12 min from 08:30; one day 44 min (late).
        yield _seen(
            _run("recommend-daily", _day(day, 8, 30 - today), 44 if day == 9 else 10 + day % 4)
        )
        # ranking-daily, 09:30: one run failed and its rerun came in late; today's is running.
        if day == 5:
            yield _seen(_run("ranking-daily", _day(day, 9), 10, "OOMKilled"))
            yield _seen(_run("ranking-daily", _day(day, 9, 15), 21))
        else:
            yield _seen(
                _run(
                    "ranking-daily",
                    _day(day, 9, 2),
                    18 + day % 4,
                    "running" if today else "succeeded",
                )
            )
        # churn-daily, 08:00: started late today, finished at 08:17.
        yield _seen(
            _run("churn-daily", _day(day, 7, 40 if today else 30), 37 if today else 24 + day % 3)
        )
        # user-embedding, 09:00: a failure retried in time on day 12; today a traceback.
        if day == 12:
            yield _seen(_run("user-embedding", _day(day, 8), 20, "BackoffLimitExceeded"))
            yield _seen(_run("user-embedding", _day(day, 8, 21), 37))
        elif today:
            run = _run("user-embedding", _day(day, 8), 53.2, "BackoffLimitExceeded")
            yield _seen(run)
            crashed = _day(day, 8, 52) + timedelta(seconds=13)
            yield crashed, _traceback(run.name, crashed)
        else:
            yield _seen(_run("user-embedding", _day(day, 8), 36 + day % 5))
        # ads-ctr-model, 12:00: today's run failed early.
        if today:
            yield _seen(_run("ads-ctr-model", _day(day, 8), 10, "BackoffLimitExceeded"))
        else:
            yield _seen(_run("ads-ctr-model", _day(day, 11), 40 + day % 6))
        # ltv-forecast, 10:00 on weekdays (a six-field cron): not started yet today.
        if not today and _day(day, 9).weekday() < 5:
            yield _seen(_run("ltv-forecast", _day(day, 9, 30), 15 + day % 3))
        # weekly-report, Mondays 06:00 in New York.
        if _day(day, 5, zone=NEW_YORK).weekday() == 0:
            yield _seen(_run("weekly-report", _day(day, 5, zone=NEW_YORK), 42))
        for hour in range(24):
            # feature-refresh: every 30 min, 3 min each; search-index hourly, until 07:50 today.
            for minute in (5, 35):
                start = _day(day, hour, minute)
                if start + 3 * M <= NOW:
                    yield _seen(_run("feature-refresh", start, 3))
            start = _day(day, hour, 50)
            if start < _day(DAYS, 8):
                yield _seen(_run("search-index", start, 4))
    yield _seen(_run("search-index", _day(DAYS, 8, 50), 6, "DeadlineExceeded"))


def _seen(job: JobSeen) -> tuple[datetime, Fact]:
    at = job.completion_time or job.failed_at or job.start_time
    assert at is not None
    return at, job


def _traceback(job: str, at: datetime) -> TracebackSeen:
    return TracebackSeen(
        namespace="ml-batch",
        pod=f"{job}-x7k2p",
        container="main",
        job=job,
        cronjob="user-embedding",
        time=at,
        first_line="Traceback (most recent call last):",
        final_line="google.api_core.exceptions.NotFound: 404 Table user_features not found",
    )


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
                _batch("ltv-forecast", deadline="0 0 10 * * MON-FRI"),
                _batch("feature-refresh", freshness="30m"),
                _batch("search-index", freshness="1h"),
                _batch("weekly-report", deadline="0 6 * * 1", timezone="America/New_York"),
            ],
        }
    )
    engine = Engine(config, started_at=STARTED)
    _advance(engine, STARTED)
    for at, fact in sorted(_script(), key=lambda event: event[0]):
        engine.handle(fact)  # delivered, then the cluster view moves past it
        _advance(engine, at)
    for source in (KUBERNETES, CLOUD_LOGGING, SLACK):
        engine.handle(SourceHealth(source, reachable=True, last_contact=NOW - timedelta(seconds=4)))
    _advance(engine, NOW)
    return engine


def example_snapshot() -> StatusSnapshot:
    return StatusSnapshot.from_engine(example_engine(), leader=True, synced=True, generated_at=NOW)


def render_example() -> str:
    return render_status_page(example_snapshot())


def screenshot(path: Path = SCREENSHOT, size: tuple[int, int] = (1200, 900)) -> None:
    """Serve the example on a free loopback port and let headless Chromium photograph it."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium not installed: apt-get install chromium")
    status = LatestStatus(example_snapshot())
    with (
        StatusServer(status, Metrics(), host="127.0.0.1", port=0) as server,
        tempfile.TemporaryDirectory() as profile,
    ):
        subprocess.run(
            [
                browser,
                *chromium_flags(profile),
                f"--window-size={size[0]},{size[1]}",
                f"--screenshot={path.resolve()}",
                server.url,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def chromium_flags(profile: str) -> list[str]:
    """Headless, with its own throw-away profile, and never a request beyond loopback."""
    return [
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
        "--disable-domain-reliability",
        "--no-pings",
        "--no-proxy-server",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", action="store_true", help="also take docs/status-page.png")
    arguments = parser.parse_args()
    OUTPUT.write_text(render_example(), encoding="utf-8")
    print(f"wrote {OUTPUT}")
    if arguments.png:
        screenshot()
        print(f"wrote {SCREENSHOT}")


if __name__ == "__main__":
    main()
