"""What the HTTP endpoints show, and where the server gets it without touching the engine.

A `StatusSnapshot` is an immutable copy of the engine's view, built under the engine's lock
with `StatusSnapshot.from_engine`. A `StatusSource` hands one out: `LatestStatus` holds the
one the engine's thread last published (requests never wait), `OnDemandStatus` builds one
when asked, at most once a second (nothing is built while nobody looks).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from monitor.core.engine import Engine
from monitor.core.schedule import iso


@dataclass(frozen=True)
class StatusSnapshot:
    """What the HTTP endpoints show, copied out of the engine at one instant.

    `batches` are `Engine.status()` entries, `history` `Engine.history` entries (oldest
    first), `sources` name -> {"up": bool, "detail": str, ...}. `ready` is what `/readyz`
    answers; `leader` says whether this replica runs the pipeline.
    """

    batches: list[dict[str, Any]]
    history: list[dict[str, str]]
    sources: dict[str, dict[str, Any]]
    leader: bool
    ready: bool
    generated_at: datetime

    @classmethod
    def starting(cls, at: datetime) -> StatusSnapshot:
        """Before the daemon published anything: alive, not ready, not leading."""
        return cls([], [], {}, leader=False, ready=False, generated_at=at)

    @classmethod
    def from_engine(
        cls,
        engine: Engine,
        *,
        leader: bool,
        synced: bool,
        generated_at: datetime,
        sources: Mapping[str, Mapping[str, Any]] | None = None,
        batches: bool = True,
    ) -> StatusSnapshot:
        """Copy what the page shows; call it while holding the engine's lock.

        Without `batches` only readiness and the sources are copied (what `/readyz`
        shows): walking every batch costs far more, and a kubelet probes every few seconds.

        Readiness: a leader (or a replica without election) is ready once its sources have
        synced; a standby follower is ready at once, so a rollout never waits for a Lease.
        `sources` adds or overrides per-source fields next to the engine's own health view.
        """
        view: dict[str, dict[str, Any]] = {}
        for name, state in engine.sources.items():
            view[name] = {
                "up": state.reachable,
                "last_contact": iso(state.last_contact),
                "detail": state.detail,
                "degraded": state.degraded_key is not None,
            }
        for name, seen in engine.watermarks.items():
            view.setdefault(name, {"up": True, "detail": ""})["seen_up_to"] = iso(seen)
        for name, extra in (sources or {}).items():
            view.setdefault(name, {"up": True, "detail": ""}).update(extra)
        return cls(
            batches=engine.status() if batches else [],
            history=[dict(entry) for entry in engine.history] if batches else [],
            sources=view,
            leader=leader,
            ready=synced or not leader,
            generated_at=generated_at,
        )

    def to_json(self) -> dict[str, Any]:
        """The `/api/status` document (SPEC's shape, plus sources, history and time)."""
        return {
            "batches": self.batches,
            "leader": self.leader,
            "ready": self.ready,
            "sources": self.sources,
            "history": self.history,
            "generated_at": iso(self.generated_at),
        }


class StatusSource(Protocol):
    """Where the server reads its data; must be thread-safe and cheap."""

    def status_snapshot(self) -> StatusSnapshot: ...

    def readiness(self) -> StatusSnapshot:
        """A snapshot that may leave out the batches and history (for `/readyz`)."""
        ...


class LatestStatus:
    """Holds the most recently published snapshot; publishing replaces it whole."""

    def __init__(self, initial: StatusSnapshot | None = None) -> None:
        self._lock = threading.Lock()
        self._snapshot = initial or StatusSnapshot.starting(datetime.now().astimezone())

    def publish(self, snapshot: StatusSnapshot) -> None:
        with self._lock:
            self._snapshot = snapshot

    def status_snapshot(self) -> StatusSnapshot:
        with self._lock:
            return self._snapshot

    def readiness(self) -> StatusSnapshot:
        return self.status_snapshot()


class OnDemandStatus:
    """Builds a snapshot only when a request asks, reused for `max_age` seconds.

    For large configs: nothing is built while nobody looks, and a burst of requests
    shares one build. `build` typically takes the engine's lock and calls `from_engine`;
    concurrent readers wait for the one build in progress.
    """

    def __init__(
        self,
        build: Callable[[], StatusSnapshot],
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, StatusSnapshot] | None = None

    def status_snapshot(self) -> StatusSnapshot:
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= self._max_age:
                self._cached = (now, self._build())
            return self._cached[1]

    def readiness(self) -> StatusSnapshot:
        return self.status_snapshot()
