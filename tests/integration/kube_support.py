"""Shared pieces of the Kubernetes source tests: the fake server, a fact recorder, a source."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from monitor.core.facts import Fact, JobGone, JobSeen, SourceHealth, Watermark
from monitor.sources.kube.source import KubeRunSource
from monitor.testing.kube_api import FakeKubeApi
from monitor.testing.kube_rbac import RequestAttributes


class Recorder:
    """Thread-safe, ordered record of every fact a source emitted."""

    def __init__(self) -> None:
        self._facts: list[Fact] = []
        self._lock = threading.Lock()

    def __call__(self, fact: Fact) -> None:
        with self._lock:
            self._facts.append(fact)

    @property
    def facts(self) -> list[Fact]:
        with self._lock:
            return list(self._facts)

    def seen(self, name: str | None = None) -> list[JobSeen]:
        return [f for f in self.facts if isinstance(f, JobSeen) and name in (None, f.name)]

    def outcomes(self, name: str) -> list[str]:
        return [seen.outcome for seen in self.seen(name)]

    def gone(self) -> list[str]:
        return [f.name for f in self.facts if isinstance(f, JobGone)]

    def health(self) -> list[SourceHealth]:
        return [f for f in self.facts if isinstance(f, SourceHealth)]

    def watermarks(self) -> list[Watermark]:
        return [f for f in self.facts if isinstance(f, Watermark)]


def requests_of(kube: FakeKubeApi, verb: str, resource: str = "jobs") -> list[RequestAttributes]:
    """The requests of `verb` on `resource`; a "list" is a full list (the first page of
    one), not a one-item progress probe of the watermark."""
    return [
        r
        for r in list(kube.requests)
        if r.verb == verb and r.resource == resource and not (verb == "list" and r.limit == 1)
    ]


@pytest.fixture
def kube() -> Iterator[FakeKubeApi]:
    with FakeKubeApi(bookmark_interval=0.1) as fake:
        yield fake


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


SourceFactory = Callable[..., KubeRunSource]


@pytest.fixture
def make_source(kube: FakeKubeApi, recorder: Recorder) -> Iterator[SourceFactory]:
    """Start a source against `kube` with test-speed timings; stopped at teardown."""
    started: list[KubeRunSource] = []

    def make(fake: FakeKubeApi | None = None, **overrides: Any) -> KubeRunSource:
        settings: dict[str, Any] = {
            "silence_timeout": 1.0,
            "backoff_initial": 0.05,
            "backoff_max": 0.3,
            "watermark_interval": 0.05,
            "watermark_margin": timedelta(seconds=2),
            "settle": 0.05,
        }
        settings.update(overrides)
        source = KubeRunSource((fake or kube).api_client(), recorder, **settings)
        started.append(source.start())
        return source

    yield make
    for source in started:
        source.stop()
