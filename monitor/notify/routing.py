"""From the core's route (a lane and a batch) to a Slack channel and mention.

The engine says only *what* an alert is about; which channel hears it and whom it pings
is config, applied here when the alert is queued (a queued alert keeps its address even
if a reload changes the routing meanwhile). SPEC "Channels":

- `sla` (missed_deadline, stale, monitor_degraded, their recoveries): the batch's
  `channel`, else `slack.channel`;
- `errors` (job_failed, traceback): the batch's `errors_channel`, its `channel`,
  `slack.errors_channel`, `slack.channel`; a run of no batch uses `unmatched.slack` first.

Only a batch's own alerts carry its `mention`; `monitor_degraded` mentions no one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from monitor.config.model import Config
from monitor.core.kinds import Route


@dataclass(frozen=True, slots=True)
class Address:
    """A Slack channel (None: none configured) and the mention to lead the message with."""

    channel: str | None
    mention: str | None = None


class Router(Protocol):
    def address(self, route: Route) -> Address: ...

    @property
    def default_channel(self) -> str | None:
        """Where a message goes when its own channel refuses it."""
        ...


@dataclass(frozen=True, slots=True)
class OneChannel:
    """Every alert to one channel, no mention (tests, and the stdout transport)."""

    channel: str | None

    def address(self, route: Route) -> Address:
        return Address(self.channel)

    @property
    def default_channel(self) -> str | None:
        return self.channel


@dataclass(frozen=True, slots=True)
class ConfigRouter:
    """The routing a config describes."""

    config: Config

    @property
    def default_channel(self) -> str | None:
        return self.config.slack.channel

    def address(self, route: Route) -> Address:
        slack = self.config.slack
        if route.batch:
            batch = self.config.batch_named(route.batch)
            own = batch.slack if batch is not None else None
        else:
            unmatched = self.config.unmatched
            own = unmatched.slack if unmatched is not None and route.lane == "errors" else None
        mention = own.mention if own is not None else None
        candidates: tuple[str | None, ...]
        if route.lane == "errors":
            candidates = (
                own.errors_channel if own is not None else None,
                own.channel if own is not None else None,
                slack.errors_channel,
                slack.channel,
            )
        else:
            candidates = (own.channel if own is not None else None, slack.channel)
        return Address(next((c for c in candidates if c), None), mention)
