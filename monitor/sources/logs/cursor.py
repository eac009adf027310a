"""Where the Cloud Logging source is, as a small JSON-able dict saved with daemon state.

`checked_up_to` is the instant of the last complete poll; the next query starts an
overlap window before it, so entries ingested late are still found, and the insertIds
already handled inside that window (bounded) keep them from being handled twice.
Tracebacks still being assembled are saved too, so a restart resumes their follow-up
instead of losing them, and the (namespace, pod, container, time) keys already emitted
keep a restart from repeating an alert fact.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.core.rfc3339 import format_rfc3339, parse_rfc3339
from monitor.sources.logs.entries import ContainerKey

logger = logging.getLogger(__name__)

CURSOR_VERSION = 1
MAX_SEEN_IDS = 20_000
MAX_EMITTED = 5_000
MAX_PENDING = 500

EmissionKey = tuple[str, str, str, str]  # namespace, pod, container, traceback time


@dataclass
class PendingTraceback:
    """A container whose traceback lines are still being fetched and grouped."""

    since: datetime
    fetched_up_to: datetime
    job: str | None
    labels: dict[str, str]
    fed: dict[str, datetime] = field(default_factory=dict)  # insertIds fed, not persisted

    def advance(self, time: datetime) -> None:
        """Lines before `time` will not be fetched again: forget their insertIds."""
        self.fetched_up_to = max(self.fetched_up_to, time)
        self.fed = {key: at for key, at in self.fed.items() if at >= self.fetched_up_to}


@dataclass
class Cursor:
    started: datetime
    checked_up_to: datetime
    seen: dict[str, datetime] = field(default_factory=dict)
    emitted: dict[EmissionKey, datetime] = field(default_factory=dict)
    pending: dict[ContainerKey, PendingTraceback] = field(default_factory=dict)

    def query_since(self, overlap: timedelta) -> datetime:
        return self.checked_up_to - overlap

    def first_sight(self, insert_id: str, time: datetime) -> bool:
        """Record an entry; False if it was handled before (a duplicate delivery)."""
        if insert_id in self.seen:
            return False
        self.seen[insert_id] = time
        return True

    def first_emission(self, key: ContainerKey, time: datetime) -> bool:
        emission = (*key, format_rfc3339(time))
        if emission in self.emitted:
            return False
        self.emitted[emission] = time
        return True

    def checked(self, instant: datetime, overlap: timedelta) -> None:
        """Everything ingested by `instant` was read: move on and prune what is too old."""
        self.checked_up_to = max(self.checked_up_to, instant)
        horizon = self.query_since(overlap)
        self.seen = _newest({k: t for k, t in self.seen.items() if t >= horizon}, MAX_SEEN_IDS)
        oldest_pending = min((p.since for p in self.pending.values()), default=horizon)
        keep_from = min(horizon, oldest_pending)
        self.emitted = _newest(
            {k: t for k, t in self.emitted.items() if t >= keep_from}, MAX_EMITTED
        )
        if len(self.pending) > MAX_PENDING:
            newest = sorted(self.pending.items(), key=lambda item: item[1].since)[-MAX_PENDING:]
            self.pending = dict(newest)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CURSOR_VERSION,
            "checked_up_to": format_rfc3339(self.checked_up_to),
            "insert_ids": {key: format_rfc3339(at) for key, at in self.seen.items()},
            "emitted": [list(key) for key in self.emitted],
            "pending": [
                {
                    "namespace": namespace,
                    "pod": pod,
                    "container": container,
                    "since": format_rfc3339(pending.since),
                    "job": pending.job,
                    "labels": pending.labels,
                }
                for (namespace, pod, container), pending in self.pending.items()
            ],
        }

    @classmethod
    def restore(cls, saved: Mapping[str, Any] | None, *, default_checked: datetime) -> Cursor:
        """Rebuild from `to_dict()` output; an unreadable cursor starts fresh (logged)."""
        if not saved:
            return cls(started=default_checked, checked_up_to=default_checked)
        try:
            return cls.parse(saved, default_checked)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            logger.warning("ignoring unreadable Cloud Logging cursor: %s", error)
            return cls(started=default_checked, checked_up_to=default_checked)

    @classmethod
    def parse(cls, saved: Mapping[str, Any], started: datetime) -> Cursor:
        """Rebuild from `to_dict()` output, raising on anything else (see `restore`)."""
        if saved.get("version") != CURSOR_VERSION:
            raise ValueError(f"unknown cursor version {saved.get('version')!r}")
        cursor = cls(started=started, checked_up_to=parse_rfc3339(saved["checked_up_to"]))
        cursor.seen = {str(k): parse_rfc3339(v) for k, v in saved["insert_ids"].items()}
        for namespace, pod, container, stamp in saved.get("emitted", []):
            key = (str(namespace), str(pod), str(container), str(stamp))
            cursor.emitted[key] = parse_rfc3339(stamp)
        for item in saved.get("pending", []):
            since = parse_rfc3339(item["since"])
            job = item.get("job")
            cursor.pending[(item["namespace"], item["pod"], item["container"])] = PendingTraceback(
                since=since,
                fetched_up_to=since,
                job=job if isinstance(job, str) else None,
                labels={str(k): str(v) for k, v in dict(item.get("labels") or {}).items()},
            )
        return cursor


def _newest(items: dict[Any, datetime], limit: int) -> dict[Any, datetime]:
    if len(items) <= limit:
        return items
    return dict(sorted(items.items(), key=lambda item: item[1])[-limit:])
