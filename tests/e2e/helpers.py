"""Small helpers shared by the end-to-end tests: configs, clocks and what Slack received."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from monitor.testing.slack_api import FakeSlackApi, Message
from monitor.testing.stack import LocalStack, MonitorProcess, cron_at, seconds_ahead
from monitor.testing.wait import wait_until


def deadline_batch(name: str, deadline: datetime, **extra: Any) -> dict[str, Any]:
    """A batch matching Jobs owned by the CronJob `name` in namespace `ml`."""
    return {
        "name": name,
        "match": {"namespace": "ml", "cronjob": name},
        "deadline": cron_at(deadline),
        **extra,
    }


def freshness_batch(name: str, freshness: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "match": {"namespace": "ml", "cronjob": name},
        "freshness": freshness,
        **extra,
    }


def until(instant: datetime, slack: float = 5.0) -> float:
    """A timeout that covers waiting for `instant` plus `slack` seconds."""
    return max(0.0, (instant - datetime.now(UTC)).total_seconds()) + slack


def now() -> datetime:
    return datetime.now(UTC)


def received_at(message: Message) -> float:
    """Epoch seconds at which the fake Slack received `message`."""
    return time.time() - (time.monotonic() - message.arrived)


def kinds(slack: FakeSlackApi) -> list[str]:
    return [message.payload.get("kind", "") for message in list(slack.messages)]


def keys(slack: FakeSlackApi, kind: str | None = None) -> list[str]:
    """Alert keys delivered, in arrival order (optionally of one kind): a storm digest
    stands for each alert it lists, at its place in the channel."""
    found: list[str] = []
    for message in list(slack.messages):
        payload = message.payload
        listed = payload.get("alerts") if payload.get("kind") == "digest" else [payload]
        for alert in listed or []:
            if kind is None or alert.get("kind") == kind:
                found.append(alert.get("key", ""))
    return found


def of_kind(slack: FakeSlackApi, kind: str) -> list[Message]:
    return [m for m in list(slack.messages) if m.payload.get("kind") == kind]


def duplicates(slack: FakeSlackApi) -> dict[str, int]:
    """Keys posted more than once, with their counts."""
    counted = Counter(keys(slack))
    return {key: count for key, count in counted.items() if count > 1}


def everything_sent(slack: FakeSlackApi) -> str:
    """All text and blocks of every message and edit, as one string (for escaping checks)."""
    parts = []
    for message in [*slack.messages, *slack.updates]:
        parts.append(message.text or "")
        parts.append(json.dumps(message.blocks or [], ensure_ascii=False))
    return "\n".join(parts)


def batch_status(daemon: MonitorProcess, name: str) -> dict[str, Any]:
    status = daemon.status()
    found: dict[str, Any] = next(b for b in status["batches"] if b["name"] == name)
    return found


def metric(daemon: MonitorProcess, name: str) -> float | None:
    """The value of one sample line of /metrics (exact name with labels), None if absent."""
    code, body = daemon.get("/metrics")
    assert code == 200
    for line in body.decode().splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        if sample == name:
            return float(value)
    return None


def decided_after(daemon: MonitorProcess, name: str, deadline: datetime) -> bool:
    """The daemon has judged `deadline` for batch `name`: its next deadline moved on."""
    following = batch_status(daemon, name)["next_deadline"]
    return following is not None and datetime.fromisoformat(following) > deadline


def outbox_empty(daemon: MonitorProcess) -> bool:
    """Everything decided so far has reached Slack (status first: it refreshes the gauge)."""
    daemon.status()
    return metric(daemon, "sla_monitor_outbox_depth") == 0


def spawn_configured(
    stack: LocalStack,
    settings: dict[str, Any],
    lead: float,
    batches: Callable[[datetime], list[dict[str, Any]]],
) -> tuple[MonitorProcess, datetime]:
    """A ready daemon judging `batches(deadline)`, with `deadline` at least `lead` s ahead.

    Start-up (mostly imports) can take seconds on a loaded machine, and a first start
    ignores deadlines before it. So the daemon starts on a placeholder batch, and once it
    is ready the real batches arrive by reload (`reconfigure_ahead`). `settings`
    (everything but `batches`) stays the same, so the pipeline is reconfigured, not restarted.
    """
    path = stack.write_config({**settings, "batches": [freshness_batch("placeholder", "1d")]})
    daemon = stack.spawn(path)
    daemon.wait_ready()
    deadline = reconfigure_ahead(stack, daemon, settings, lead, batches)
    return daemon, deadline


def reconfigure_ahead(
    stack: LocalStack,
    daemon: MonitorProcess,
    settings: dict[str, Any],
    lead: float,
    batches: Callable[[datetime], list[dict[str, Any]]],
) -> datetime:
    """Reload to `batches(deadline)` with `deadline` about `lead` s ahead; return `deadline`.

    A batch added by a reload counts only deadlines after the reload (SPEC), so a reload
    that a busy machine applies after `deadline` would silently drop it. This checks what the
    daemon reports instead of hoping: every deadline batch must show `deadline` as its next
    one, and at least half the lead must be left for the test to act before it; if the
    reload landed too late, it is done again with twice the lead.
    """
    for _ in range(4):
        deadline = seconds_ahead(lead)
        configured = batches(deadline)
        reconfigure(stack, daemon, {**settings, "batches": configured})
        timed = [b["name"] for b in configured if b.get("deadline") == cron_at(deadline)]
        upcoming = [batch_status(daemon, name)["next_deadline"] for name in timed]
        landed = all(u is not None and datetime.fromisoformat(u) == deadline for u in upcoming)
        if landed and (deadline - now()).total_seconds() >= lead / 2:
            return deadline
        lead *= 2
    raise AssertionError("the daemon never applied a reload before the deadline it carried")


def reconfigure(stack: LocalStack, daemon: MonitorProcess, config: dict[str, Any]) -> None:
    """Replace the config file atomically, SIGHUP, and wait until the batches are live."""
    staged = stack.write_config(config, name=".staged.yaml")
    os.replace(staged, stack.workdir / "sla.yaml")
    daemon.signal(signal.SIGHUP)
    names = [batch["name"] for batch in config["batches"]]
    wait_until(lambda: [b["name"] for b in daemon.status()["batches"]] == names, timeout=20)
