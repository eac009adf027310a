"""SIGKILL at random moments, twenty times, while Jobs fail and deadlines pass.

A driver thread keeps the cluster busy (a Job fails every few hundred milliseconds; one
batch per few seconds has a deadline, every other one met by a Job that completes in
time) while the daemon is killed without warning and started again. Afterwards every
alert that should exist has reached Slack (none lost), no wrong alert exists, and the
only repeats allowed are posts that were in flight at a kill (at most one per kill).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from monitor.testing.stack import LocalStack, MonitorProcess
from monitor.testing.wait import wait_until
from tests.e2e.helpers import (
    deadline_batch,
    freshness_batch,
    keys,
    now,
    spawn_configured,
    until,
)

KILLS = 20
DEADLINES = 10
FAILURE_EVERY = 0.3  # seconds between Job failures
COMPLETE_BEFORE = timedelta(seconds=3)  # how early a "met" batch's Job completes


class ClusterDriver(threading.Thread):
    """Fails a Job every FAILURE_EVERY seconds; completes met batches before their deadline."""

    def __init__(self, stack: LocalStack, met: dict[str, datetime]) -> None:
        super().__init__(name="cluster-driver", daemon=True)
        self.stack = stack
        self.met = dict(met)
        self.expected: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        jobs = self.stack.kube.jobs
        serial = 0
        while not self.stopping.wait(FAILURE_EVERY):
            serial += 1
            name = f"worker-{serial:04d}"
            job = jobs.create_job("ml", name, cronjob="worker")
            jobs.fail_job("ml", name)
            self.expected.append(f"job_failed:ml/{name}@{job['metadata']['uid']}")
            for batch, deadline in list(self.met.items()):
                if now() >= deadline - COMPLETE_BEFORE:
                    del self.met[batch]
                    jobs.create_job("ml", f"{batch}-run", cronjob=batch)
                    jobs.complete_job("ml", f"{batch}-run")


def kill_at_a_random_point(daemon: MonitorProcess, stack: LocalStack, rng: random.Random) -> str:
    """Kill during start-up, while working, or right after a post (the in-flight window)."""
    mode = rng.choice(["start-up", "working", "after-post"])
    if mode == "start-up":
        kill_at = time.monotonic() + rng.uniform(0.3, 3.0)
        wait_until(lambda: time.monotonic() >= kill_at, timeout=5)
    else:
        daemon.wait_ready(timeout=20)
        if mode == "working":
            kill_at = time.monotonic() + rng.uniform(0.0, 1.0)
            wait_until(lambda: time.monotonic() >= kill_at, timeout=5)
        else:
            seen = len(stack.slack.messages)
            give_up = time.monotonic() + 2.0
            wait_until(
                lambda: len(stack.slack.messages) > seen or time.monotonic() > give_up,
                timeout=5,
                step=0.001,
            )
    daemon.kill()
    return mode


def test_sigkill_twenty_times_loses_no_alert(stack: LocalStack) -> None:
    seed = int(os.environ.get("CRASH_TEST_SEED", time.time()))
    rng = random.Random(seed)
    print(f"crash test seed {seed} (CRASH_TEST_SEED to replay)")
    deadlines: dict[str, datetime] = {}

    def batches(first: datetime) -> list[dict[str, Any]]:
        deadlines.update(
            (f"due-{index:02d}", first + timedelta(seconds=4 * index)) for index in range(DEADLINES)
        )
        return [
            freshness_batch("worker", "1h"),
            *(deadline_batch(name, at) for name, at in deadlines.items()),
        ]

    daemon, _ = spawn_configured(stack, {}, 6, batches)
    config = stack.workdir / "sla.yaml"
    met = {name: at for index, (name, at) in enumerate(deadlines.items()) if index % 2 == 0}
    missed = {name: at for name, at in deadlines.items() if name not in met}
    state_file = stack.workdir / "state.json"

    def judged_in_saved_state() -> set[str]:
        try:
            return set(json.loads(state_file.read_text())["engine"]["tracks"])
        except (FileNotFoundError, KeyError, ValueError):
            return set()

    # What the reload added is saved at once; a kill before that write would leave those
    # batches new to the next start, judged only from it (SPEC), so the kills wait for it.
    wait_until(lambda: set(deadlines) <= judged_in_saved_state())

    driver = ClusterDriver(stack, met)
    driver.start()
    modes: Counter[str] = Counter()
    try:
        for kill in range(1, KILLS + 1):
            modes[kill_at_a_random_point(daemon, stack, rng)] += 1
            daemon = stack.spawn(config, name=f"run-{kill:02d}")
    finally:
        last = max(deadlines.values())
        wait_until(lambda: now() >= last, timeout=until(last))
        driver.stopping.set()
        driver.join(5)

    expected = set(driver.expected) | {f"{name}@{at.isoformat()}" for name, at in missed.items()}
    daemon.wait_ready(timeout=20)
    try:
        wait_until(lambda: expected <= set(keys(stack.slack)), timeout=30)
    finally:
        delivered = keys(stack.slack)
        lost = expected - set(delivered)
        unexpected = set(delivered) - expected
        repeats = sum(count - 1 for count in Counter(delivered).values())
        print(
            f"crash test: {KILLS} kills {dict(modes)}, {len(expected)} alerts expected, "
            f"{len(delivered)} posts, lost {len(lost)}, duplicates {repeats}, "
            f"unexpected {len(unexpected)}"
        )
        for key in sorted(lost):
            print(f"lost: {key}")
    assert daemon.terminate() == 0
    assert lost == set()
    assert unexpected == set(), sorted(unexpected)
    # A kill can repeat only what was in flight: one message per channel worker, which
    # for a storm digest means every alert it lists.
    channels = {message.channel for message in stack.slack.messages}
    widest = max(
        (len(m.payload.get("alerts") or []) if m.payload.get("kind") == "digest" else 1)
        for m in stack.slack.messages
    )
    assert repeats <= KILLS * len(channels) * widest
