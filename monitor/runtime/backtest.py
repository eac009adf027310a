"""`sla-monitor backtest`: the alerts a config would have posted over the runs still listed.

The runs the cluster still lists (Jobs, and Workflows with `argo.enabled`) are replayed
through the same engine the daemon runs, in time order — each run seen running at its
start and finished at its end, the clock and the Kubernetes view advancing with them — as
if the daemon had first started `since` ago. So deadlines, incidents, `at_risk` and
`overrun` are judged exactly as the daemon would have, only nothing is posted: each
top-level alert is printed (`TIME KIND BATCH KEY`, in the batch's zone), then one summary
line per batch. With `cloud_logging` (and its `events`), the Job end events kept in Cloud
Logging are read over the same span too, so Jobs deleted since (TTL, history limits) count
as they did for the daemon, deduplicated by uid with what the cluster lists; without it,
deleted runs are not seen and their deadlines show as missed.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TextIO
from zoneinfo import ZoneInfo

from kubernetes.client import ApiClient

from monitor.config.model import Config
from monitor.core.engine import Engine
from monitor.core.facts import KUBERNETES, Action, Fact, JobSeen, Post, Tick, Watermark
from monitor.sources.argo.workflows import WORKFLOWS
from monitor.sources.kube.resources import JOBS
from monitor.sources.kube.source import KubeRunSource
from monitor.sources.logs.events import read_events

LIST_TIMEOUT_SECONDS = 300.0


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a backtest found: the top-level alerts, and per batch its decided deadlines."""

    alerts: list[Post]
    decided: dict[str, Counter[str]]


def list_runs(api_client: ApiClient, config: Config) -> list[JobSeen]:
    """Every run the cluster lists now, through the daemon's own source (one paged list)."""
    runs: list[JobSeen] = []
    lock = threading.Lock()

    def collect(fact: Fact) -> None:
        if isinstance(fact, JobSeen):
            with lock:
                runs.append(fact)

    resources = (JOBS, WORKFLOWS) if config.argo.enabled else (JOBS,)
    source = KubeRunSource(
        api_client, collect, resources=resources, namespaces=config.kubernetes.namespaces
    )
    source.start()
    try:
        give_up = time.monotonic() + LIST_TIMEOUT_SECONDS
        while not source.synced and time.monotonic() < give_up:
            time.sleep(0.05)
        if not source.synced:
            raise TimeoutError("the cluster's runs could not be listed in time")
    finally:
        source.stop(timeout=1.0)
    return runs


def with_event_runs(
    config: Config, runs: list[JobSeen], since: datetime, now: datetime
) -> list[JobSeen]:
    """`runs` plus the ends only the Job events in Cloud Logging still witness (a uid the
    cluster lists is taken from the cluster, which knows its start and owner)."""
    settings = config.cloud_logging
    if settings is None or not settings.events:
        return runs
    listed = {run.uid for run in runs}
    events = read_events(settings, config.kubernetes.namespaces, since, now)
    witnessed = {event.seen.uid: event.seen for event in events if event.seen.uid not in listed}
    return runs + list(witnessed.values())


def timeline(runs: Iterable[JobSeen]) -> list[tuple[datetime, JobSeen]]:
    """Each run as the daemon would have seen it: running at its start, then finished."""
    events: list[tuple[datetime, JobSeen]] = []
    for run in runs:
        started = run.start_time or run.created_at
        ended = run.completion_time or run.failed_at
        if started is not None and run.outcome != "running" and (ended is None or started < ended):
            running = dataclasses.replace(
                run, outcome="running", completion_time=None, failed_at=None, reason=None,
                message=None,
            )  # fmt: skip
            events.append((started, running))
        events.append((ended or started or datetime.now(UTC), run))
    events.sort(key=lambda event: event[0])
    return events


def replay(config: Config, runs: Iterable[JobSeen], since: datetime, now: datetime) -> Outcome:
    """Judge `runs` with `config` as a daemon first started at `since` would have, to `now`."""
    engine = Engine(config, started_at=since)
    actions: list[Action] = []
    decided: dict[str, Counter[str]] = {batch.name: Counter() for batch in config.batches}

    def advance(to: datetime) -> None:
        actions.extend(engine.handle(Tick(to)) + engine.handle(Watermark(KUBERNETES, to)))
        for decision in engine.take_decisions():
            decided.setdefault(decision.batch, Counter())[decision.reason] += 1

    advance(since)
    for at, run in timeline(runs):
        if at > now:
            break
        if at > since:
            advance(at)
        actions.extend(engine.handle(run))
    advance(now)
    threads: set[str] = set()
    alerts: list[Post] = []
    for action in actions:
        if not isinstance(action, Post) or action.kind == "monitor_degraded":
            continue
        if action.thread is not None:
            if action.thread in threads:
                continue  # a reply in its run's thread, not a top-level alert
            threads.add(action.thread)
        alerts.append(action)
    alerts.sort(key=lambda post: post.at)
    return Outcome(alerts, decided)


def report(config: Config, outcome: Outcome, out: TextIO) -> None:
    """`TIME KIND BATCH KEY` per alert, then `BATCH: N deadlines, M met, K missed, on time P%`."""
    zones = {batch.name: config.zone_of(batch) for batch in config.batches}
    for post in outcome.alerts:
        zone = zones.get(post.batch, ZoneInfo("UTC"))
        when = post.at.astimezone(zone).isoformat()
        print(f"{when} {post.kind} {post.batch or '-'} {post.key}", file=out)
    for batch in config.batches:
        counts = outcome.decided.get(batch.name, Counter())
        met, missed = counts["met"], counts["missed"] + counts["repeat"]
        total = met + missed
        rate = f"{100 * met / total:.0f}%" if total else "n/a"
        print(
            f"{batch.name}: {total} deadlines, {met} met, {missed} missed, on time {rate}",
            file=out,
        )


def backtest(
    config: Config,
    since: timedelta,
    out: TextIO,
    api_client: Callable[[], ApiClient],
    now: datetime | None = None,
) -> int:
    moment = now or datetime.now(UTC)
    runs = with_event_runs(config, list_runs(api_client(), config), moment - since, moment)
    report(config, replay(config, runs, moment - since, moment), out)
    return 0
