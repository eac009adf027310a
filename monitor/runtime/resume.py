"""Reading the saved state back at start-up, and what to do when it cannot be used.

A saved document is decoded by its store (bounded size, a JSON object) and then restored
section by section by the caller's `restore` function, which builds every object the
pipeline resumes from (engine, cursors, outbox) without starting anything. Whatever goes
wrong in either step, be it a torn file, a wrong type or a shape this code never wrote,
makes the document unusable. The store then keeps it aside, where the next save never
overwrites it (if even that copy fails, the error is raised: starting would overwrite it);
the pipeline starts from `fresh` (first-start rules: nothing that happened before now is
alerted); and the start reports it once as `monitor_degraded` (`degraded:state@<time>`).

An error *reaching* the store (the API server refuses or is down) is not corruption: it is
raised to the caller, which must not run without its memory (see `Daemon`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar, cast

from monitor.config.model import Config
from monitor.core.engine import STATE_VERSION, Engine
from monitor.core.facts import Post
from monitor.core.kinds import DegradedDetails
from monitor.core.schedule import iso
from monitor.notify.outbox import Outbox
from monitor.runtime.state import CorruptState, Document, StateDocument, StateStore
from monitor.sources.logs.cursor import Cursor
from monitor.sources.logs.pods import parse_pod_cursor

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Key prefix of the report of a state that was kept aside.
STATE_KEY_PREFIX = "degraded:state@"
#: Longest reason kept (an error may quote much of the document).
REASON_LIMIT = 300


@dataclass(frozen=True)
class KeptAside:
    """A saved document that could not be used: which store, why, and where it is now."""

    where: str
    reason: str
    aside: str


@dataclass(frozen=True)
class Resumed(Generic[T]):
    """A store's document, what was restored from it, and whether it was kept aside."""

    document: StateDocument
    restored: T
    kept_aside: KeptAside | None


class PartlyReadable(ValueError):
    """Raised by a `restore` that used what it could read but skipped parts of it: the
    document is kept aside while the restored value (`partial`) is still used."""

    def __init__(self, reason: str, partial: object) -> None:
        super().__init__(reason)
        self.partial = partial


def resume(
    store: StateStore, restore: Callable[[Document], T], fresh: Callable[[], T]
) -> Resumed[T]:
    """Load `store` and `restore` from it; an unusable document is kept aside and `fresh()`
    is used (or the partial value of a `PartlyReadable`)."""
    salvaged: T | None = None
    try:
        document = store.load() or {}  # errors reaching the store are raised as they are
    except CorruptState as error:
        reason = str(error)
    else:
        try:
            return Resumed(StateDocument(store, document), restore(document), None)
        except PartlyReadable as partly:
            reason, salvaged = str(partly), cast(T, partly.partial)
        except Exception as error:  # restoring untrusted data may fail in any way
            reason = f"{type(error).__name__}: {error}"
    reason = reason if len(reason) <= REASON_LIMIT else reason[: REASON_LIMIT - 1] + "…"
    aside = store.keep_aside()  # if even that fails, starting would overwrite it: raised
    logger.error("the %s is unusable (%s); kept aside as %s", store.where, reason, aside)
    restored = salvaged if salvaged is not None else fresh()
    return Resumed(StateDocument(store, {}), restored, KeptAside(store.where, reason, aside))


@dataclass(frozen=True)
class LeaderState:
    """What the pipeline resumes from its main document: the engine (None: none was saved,
    a first start) and the log readers' cursors as saved (already checked to be readable)."""

    engine: Engine | None
    log_cursor: Document | None
    pod_log_cursor: Document | None
    events_cursor: Document | None = None


def leader_state_restorer(config: Config, now: datetime) -> Callable[[Document], LeaderState]:
    """A `restore` for the main document under `config` at `now`."""

    def restore(document: Document) -> LeaderState:
        engine = None
        saved = _section(document, "engine")
        if saved is not None and _older_version(saved):
            logger.warning(
                "the saved engine state is of an older version (%s): starting as a first start",
                saved["version"],
            )
        elif saved is not None:
            engine = Engine.restore(config, saved, now)
            engine.encoded()  # every saved batch re-read whole; kept for the first save
        log_cursor = _section(document, "log_cursor")
        if log_cursor is not None:
            Cursor.parse(log_cursor, now)
        events_cursor = _section(document, "events_cursor")
        if events_cursor is not None:
            Cursor.parse(events_cursor, now)
        pod_log_cursor = _section(document, "pod_log_cursor")
        if pod_log_cursor is not None:
            parse_pod_cursor(pod_log_cursor)
        return LeaderState(engine, log_cursor, pod_log_cursor, events_cursor)

    return restore


def restore_outbox(document: Document) -> Outbox:
    """A `restore` for the outbox document: records it cannot read make it `PartlyReadable`
    (the rest is delivered, the original kept aside)."""
    outbox = Outbox.from_json(_section(document, "outbox"))
    if outbox.unreadable:
        raise PartlyReadable(f"{outbox.unreadable} unreadable records skipped", outbox)
    return outbox


def _older_version(saved: Document) -> bool:
    """A state an earlier release wrote: not corrupt, just superseded (an upgrade)."""
    version = saved.get("version")
    return (
        isinstance(version, int) and not isinstance(version, bool) and 0 < version < STATE_VERSION
    )


def _section(document: Document, name: str) -> Document | None:
    value = document.get(name)
    if value is not None and not isinstance(value, dict):
        raise CorruptState(f"section {name!r} is a {type(value).__name__}, not an object")
    return value


def kept_aside_report(kept: list[KeptAside], at: datetime) -> Post:
    """The one `monitor_degraded` of a start that kept state aside."""
    lines = [f"{item.where}: {item.reason}; kept aside as {item.aside}" for item in kept]
    details: DegradedDetails = {"source": "state", "since": iso(at), "detail": "\n".join(lines)}
    key = f"{STATE_KEY_PREFIX}{iso(at)}"
    return Post(kind="monitor_degraded", batch="", key=key, at=at, details=details)
