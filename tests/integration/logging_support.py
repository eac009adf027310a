"""The Cloud Logging source's test harness: the fake API, a clock, and the facts emitted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config.model import CloudLoggingSettings
from monitor.core.facts import Fact, TracebackSeen
from monitor.sources.logs.cloud import CloudLoggingSource
from monitor.testing.logging_api import FakeCloudLogging, container_entry

NAMESPACE = "ml-batch"


@dataclass
class Clock:
    """Real time, with a skip-ahead for backoff tests (never sleeps)."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Harness:
    api: FakeCloudLogging
    clock: Clock
    facts: list[Fact] = field(default_factory=list)
    jobs: dict[tuple[str, str], str] = field(default_factory=dict)

    def source(
        self, namespaces: tuple[str, ...] = (NAMESPACE,), *, events: bool = False, **kwargs: Any
    ) -> CloudLoggingSource:
        """A source on the fake (traceback queries only unless `events`)."""
        settings = CloudLoggingSettings(
            project="test-project",
            cluster="test-cluster",
            poll_interval=timedelta(seconds=1),
            endpoint=self.api.url,
            events=events,
        )
        kwargs.setdefault("settle", timedelta(0))
        return CloudLoggingSource(
            settings,
            namespaces,
            self.facts.append,
            job_for_pod=lambda namespace, pod: self.jobs.get((namespace, pod)),
            clock=self.clock,
            **kwargs,
        )

    def tracebacks(self) -> list[TracebackSeen]:
        return [fact for fact in self.facts if isinstance(fact, TracebackSeen)]

    def lines(
        self, pod: str, text: str, start: datetime, *, container: str = "main", **kwargs: Any
    ) -> list[dict[str, Any]]:
        """One entry per line, 1 ms apart, as GKE writes a container's stderr (a `job`
        gets its uid label too, as a Job's pods have)."""
        if "job" in kwargs:
            kwargs.setdefault("job_uid", f"uid-{kwargs['job']}")
        return [
            container_entry(
                namespace=NAMESPACE,
                pod=pod,
                container=container,
                text=line,
                timestamp=start + timedelta(milliseconds=index),
                **kwargs,
            )
            for index, line in enumerate(text.splitlines())
        ]


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)
