"""One-shot scheduler jobs in named slots: each slot holds at most one pending job.

The pipeline wakes the engine at its next decision instant, saves a second after a
change and polls Cloud Logging, each as a one-shot `DateTrigger` job that replaces the
slot's previous one. Not APScheduler's `id=` + `replace_existing`: the scheduler removes
a fired date job by id right after dispatching it, which can delete the replacement the
job itself just scheduled (a lost wake-up). Here a slot remembers the job object, and
only that object is removed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

logger = logging.getLogger(__name__)


class Slots:
    """A background scheduler whose one-shot jobs live in named slots."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        """Stop at once; pending jobs never run (a job already running finishes)."""
        self._scheduler.shutdown(wait=False)

    def every(self, seconds: float, func: Callable[[], None], name: str) -> None:
        """Run `func` every `seconds` until shutdown."""
        self._scheduler.add_job(func, "interval", seconds=seconds, id=name)

    def at(self, slot: str, when: datetime, func: Callable[[], None]) -> None:
        """Run `func` once at `when` (at once if past), replacing the slot's pending job."""
        with self._lock:
            previous = self._jobs.pop(slot, None)
            if previous is not None:
                with contextlib.suppress(JobLookupError):
                    previous.remove()
            if self._scheduler.running:
                trigger = DateTrigger(run_date=max(when, self._clock()))
                self._jobs[slot] = self._scheduler.add_job(func, trigger, misfire_grace_time=None)

    def after(self, slot: str, seconds: float, func: Callable[[], None]) -> None:
        self.at(slot, self._clock() + timedelta(seconds=seconds), func)

    def repeat(self, slot: str, poll: Callable[[], float], delay: float, retry: float) -> None:
        """Run `poll` after `delay` s, then again after the seconds it returns (`retry`
        after one that raised, which is logged)."""

        def run() -> None:
            try:
                next_delay = poll()
            except Exception:
                logger.exception("%s failed", slot)
                next_delay = retry
            self.repeat(slot, poll, next_delay, retry)

        if self.running:
            self.after(slot, delay, run)

    def pending(self, slot: str) -> datetime | None:
        """When the slot's job runs next (None: nothing pending)."""
        with self._lock:
            job = self._jobs.get(slot)
        if job is None or self._scheduler.get_job(job.id) is None:  # none, or it has run
            return None
        when: datetime | None = job.next_run_time
        return when
