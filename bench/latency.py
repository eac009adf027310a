"""Benchmark: alert latency, idle CPU, memory and state saves of the real daemon at scale.

The loopback fakes (Kubernetes API, Slack) run in this process; `sla-monitor run` runs as a
subprocess against them, exactly as deployed. One daemon, one world, one run, in order:

1. start-up: N Jobs already in the cluster (mostly completed, some failed, in the past),
   B batches (deadline batches due hours from now, freshness batches); time to ready;
2. idle: CPU (utime+stime from /proc/PID/stat) and RSS (VmRSS from /proc/PID/status)
   over an idle window once start-up work has settled;
3. Job failure at the API -> Slack post received: F Jobs fail one at a time (every 50 ms),
   each measured from the write to the fake API to the post's arrival;
4. deadline instant -> Slack post received: D new deadline batches are added by a config
   reload (SIGHUP), due two per second a few seconds later, none completed; each measured
   from its deadline to the post's arrival. The daemon decides once the watch is known to
   have seen the cluster up to the deadline *plus the watermark margin* (1.25 s), so the
   target is that margin + 300 ms. The daemon's log gives the decision time, which splits
   the latency into "waiting to decide" and "delivering";
5. storm: S Jobs of one channel fail at once; the time until every one of their keys was
   delivered (posted, or listed in a storm digest);
6. state saves: the daemon's own `sla_monitor_state_save_seconds` histogram over the run
   (writes happen on their own thread, never on an alert's path); peak RSS (VmHWM).

Prints one table: each measure, its value, its target, PASS/MISS.

    python bench/latency.py            # B=10000, N=100000, F=200, D=50, S=150, idle 30 s
    python bench/latency.py --small    # B=200, N=2000, F=20, D=10, S=30, idle 3 s (smoke)
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client.parser import text_string_to_metric_families

from monitor.config.load import load_config
from monitor.testing.kube_store import rfc3339
from monitor.testing.kube_workloads import JOBS, job_object
from monitor.testing.stack import LocalStack, MonitorProcess, cron_at
from monitor.testing.wait import wait_until

NAMESPACES = 50
FAILING = "bench-fail"
#: The failing Jobs' batches send their failures to this many channels: Slack paces each
#: channel to about one post per second, so one channel could not take 20 failures a second
#: one by one (in one channel they would become a storm digest, measured on its own).
FAIL_CHANNELS = 20
TICKS = os.sysconf("SC_CLK_TCK")
LOG_ALERT = re.compile(r"^(\S+ \S+) INFO monitor\.runtime\.pipeline: alert missed_deadline (\S+)")


@dataclass(frozen=True)
class Size:
    batches: int
    jobs: int
    failures: int
    deadlines: int
    storm: int
    idle: float

    @property
    def steady(self) -> int:
        """Batches of the world other than the failing and the reloaded deadline ones."""
        return self.batches - FAIL_CHANNELS - self.deadlines - 1


FULL = Size(batches=10_000, jobs=100_000, failures=200, deadlines=50, storm=150, idle=30.0)
SMALL = Size(batches=200, jobs=2_000, failures=20, deadlines=10, storm=30, idle=3.0)
STORM = "bench-storm"
#: The daemon judges a deadline once the watch is known to be this far past it.
WATERMARK_MARGIN = 1.25


# -- the world ---------------------------------------------------------------------------
def batches(size: Size, now: datetime) -> list[dict[str, Any]]:
    """Deadline batches due 1-23 h from now (nothing due while measuring), freshness 1 d."""
    rng = random.Random(7)
    found: list[dict[str, Any]] = []
    for index in range(size.steady):
        name = f"batch-{index}"
        entry: dict[str, Any] = {
            "name": name,
            "match": {"namespace": f"ns-{index % NAMESPACES}", "cronjob": name},
        }
        if index % 10 < 7:
            due = now + timedelta(minutes=rng.randrange(60, 23 * 60))
            entry["deadline"] = f"{due.minute} {due.hour} * * *"
            entry["grace"] = "5m"
        else:
            entry["freshness"] = "1d"
        found.append(entry)
    found.append(
        {
            "name": STORM,
            "match": {"namespace": "bench", "cronjob": STORM},
            "freshness": "1d",
            "slack": {"errors_channel": "#bench-storm"},
        }
    )
    for channel in range(FAIL_CHANNELS):
        name = f"{FAILING}-{channel}"
        found.append(
            {
                "name": name,
                "match": {"namespace": "bench", "cronjob": name},
                "freshness": "1d",
                "slack": {"errors_channel": f"#bench-{channel}"},
            }
        )
    return found


def populate(stack: LocalStack, size: Size, now: datetime) -> None:
    """N Jobs of the batches, finished in the last 12 h (5 % failed), plus the running
    Jobs that will fail during the measurement."""
    template = job_object("ns-0", "template", cronjob="batch-0")
    rng = random.Random(11)
    store = stack.kube.store
    for index in range(size.jobs):
        batch = index % size.steady
        namespace, cronjob = f"ns-{batch % NAMESPACES}", f"batch-{batch}"
        job = copy.deepcopy(template)
        meta = job["metadata"]
        meta.update(name=f"{cronjob}-{index}", namespace=namespace, uid=f"uid-{index}")
        meta["ownerReferences"][0]["name"] = cronjob
        finished = now - timedelta(seconds=rng.randrange(60, 12 * 3600))
        stamp = rfc3339(finished)
        failed = index % 20 == 0
        condition = {
            "type": "Failed" if failed else "Complete",
            "status": "True",
            "reason": "BackoffLimitExceeded" if failed else "CompletionsReached",
            "lastTransitionTime": stamp,
            "lastProbeTime": stamp,
        }
        status: dict[str, Any] = {"active": 0, "conditions": [condition]}
        status["startTime"] = rfc3339(finished - timedelta(minutes=5))
        if failed:
            status["failed"] = 7
        else:
            status.update(succeeded=1, completionTime=stamp)
        job["status"] = status
        store.create(JOBS, namespace, job)
    for index in range(size.failures):
        cronjob = f"{FAILING}-{index % FAIL_CHANNELS}"
        stack.kube.jobs.create_job("bench", f"{FAILING}-job-{index}", cronjob=cronjob)
    for index in range(size.storm):
        stack.kube.jobs.create_job("bench", f"{STORM}-job-{index}", cronjob=STORM)


# -- the daemon's process ------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_share(pid: int, seconds: float) -> float:
    """Fraction of one core used over the next `seconds`."""
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - started)


def settle(pid: int, timeout: float) -> float:
    """Wait until start-up work is done: two 1-second windows under 5 % CPU."""
    deadline, calm = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and calm < 2:
        calm = calm + 1 if cpu_share(pid, 1.0) < 0.05 else 0
    return time.monotonic()


# -- measurements ------------------------------------------------------------------------
def arrival_epoch(arrived: float) -> float:
    return time.time() - (time.monotonic() - arrived)


def failure_latencies(stack: LocalStack, size: Size) -> list[float]:
    posted_before = len(stack.slack.messages)
    written: dict[str, float] = {}
    for index in range(size.failures):
        name = f"{FAILING}-job-{index}"
        written[name] = time.monotonic()
        stack.kube.jobs.fail_job("bench", name)
        time.sleep(0.05)
    arrived = lambda: len(stack.slack.messages) - posted_before  # noqa: E731
    wait_until(lambda: arrived() >= size.failures, 120)
    latencies = []
    for message in stack.slack.messages[posted_before:]:
        job = message.payload["key"].split("/", 1)[1].split("@", 1)[0]
        latencies.append(message.arrived - written[job])
    return latencies


def deadline_latencies(
    stack: LocalStack, daemon: MonitorProcess, config: dict[str, Any], size: Size
) -> tuple[list[float], list[float]]:
    """(deadline -> post received, deadline -> decision logged), seconds."""
    # A batch added by a reload only counts deadlines after the reload, and reloading a
    # config of thousands of batches takes seconds: lead by twice what a load takes here.
    started = time.monotonic()
    load_config(stack.workdir / "sla.yaml")
    lead = 8 + 2 * (time.monotonic() - started)
    first = (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)
    due: dict[str, datetime] = {}
    for index in range(size.deadlines):
        name = f"deadline-{index}"
        due[name] = first + timedelta(seconds=index // 2)
        config["batches"].append(
            {
                "name": name,
                "match": {"namespace": "bench", "cronjob": name},
                "deadline": cron_at(due[name]),
                # Two are due per second: two channels, each within Slack's pace.
                "slack": {"channel": f"#bench-{index % FAIL_CHANNELS}"},
            }
        )
    stack.write_config(config)
    posted_before = len(stack.slack.messages)
    daemon.signal(signal.SIGHUP)
    last = max(due.values()).timestamp()
    wait_until(
        lambda: len(stack.slack.messages) >= posted_before + size.deadlines,
        180 + last - time.time(),
    )
    received, decided = [], []
    for message in stack.slack.messages[posted_before:]:
        name = message.payload["batch"]
        received.append(arrival_epoch(message.arrived) - due[name].timestamp())
    for line in daemon.logs().splitlines():
        match = LOG_ALERT.match(line)
        if match and match.group(2).split("@")[0] in due:
            logged = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone()
            decided.append(logged.timestamp() - due[match.group(2).split("@")[0]].timestamp())
    return received, decided


def storm_delivery(stack: LocalStack, size: Size) -> tuple[float, int]:
    """(seconds from the storm's first failure until every key of it was delivered, posts
    it took): its Jobs all fail at once, in one channel."""

    def delivered() -> tuple[set[str], int]:
        found, posts = set(), 0
        for message in list(stack.slack.messages):
            payload = message.payload
            listed = payload.get("alerts") if payload.get("kind") == "digest" else [payload]
            mine = [a for a in listed or [] if f"/{STORM}-job-" in a.get("key", "")]
            posts += bool(mine)
            found.update(alert["key"] for alert in mine)
        return found, posts

    began = time.monotonic()
    for index in range(size.storm):
        stack.kube.jobs.fail_job("bench", f"{STORM}-job-{index}")
    wait_until(lambda: len(delivered()[0]) >= size.storm, 120)
    return time.monotonic() - began, delivered()[1]


def state_saves(daemon: MonitorProcess) -> tuple[int, int, float]:
    """(saves, saves within 50 ms, the upper bound of the slowest one's bucket) from the
    daemon's `sla_monitor_state_save_seconds` histogram."""
    code, body = daemon.get("/metrics")
    assert code == 200, f"/metrics answered {code}"
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(body.decode()):
        if family.name == "sla_monitor_state_save_seconds":
            buckets = [
                (float(sample.labels["le"]), sample.value)
                for sample in family.samples
                if sample.name.endswith("_bucket")
            ]
    total = int(max((count for _, count in buckets), default=0))
    within = int(next((count for bound, count in buckets if bound >= 0.05), 0))
    slowest = next((bound for bound, count in sorted(buckets) if count >= total), 0.0)
    return total, within, slowest


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# -- the run -------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--small", action="store_true", help="a quick smoke-sized run")
    size = SMALL if parser.parse_args().small else FULL
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="sla-bench-") as workdir:
        channels = ("alerts", "bench-storm", *(f"bench-{n}" for n in range(FAIL_CHANNELS)))
        stack = LocalStack(Path(workdir), bookmark_interval=60.0, channels=channels)
        with stack:
            built = time.monotonic()
            populate(stack, size, now)
            print(
                f"world: {size.jobs} Jobs written in {time.monotonic() - built:.1f} s", flush=True
            )
            config: dict[str, Any] = {
                "timezone": "UTC",
                "slack": {"channel": "#alerts"},
                "batches": batches(size, now),
            }
            daemon = stack.spawn(stack.write_config(config), "--log-level", "info")
            launched = time.monotonic()
            daemon.wait_ready(timeout=600)
            ready = time.monotonic() - launched
            settled = settle(daemon.pid, timeout=300) - launched
            idle = cpu_share(daemon.pid, size.idle)
            rss, _ = memory_mb(daemon.pid)
            print(f"idle: {idle * 100:.2f} % CPU, RSS {rss:.0f} MB", flush=True)
            try:
                failures = failure_latencies(stack, size)
                print(f"failures: p99 {millis(failures, 0.99)}", flush=True)
                received, decided = deadline_latencies(stack, daemon, config, size)
                print(f"deadlines: p99 {millis(received, 0.99)}", flush=True)
                storm, storm_posts = storm_delivery(stack, size)
                print(f"storm: {storm:.1f} s", flush=True)
                saves, quick, slowest = state_saves(daemon)
            except AssertionError:
                print(f"daemon log ends with:\n{daemon.logs()[-3000:]}", flush=True)
                raise
            _, peak = memory_mb(daemon.pid)
            daemon.terminate()

    world = f"{size.batches} batches, {size.jobs} Jobs"
    failed, due = f"{len(failures)} failures", f"{len(received)} deadlines"
    deadline_target = WATERMARK_MARGIN + 0.3
    rows = [
        Row("start-up to ready (listed and synced)", f"{ready:.1f} s", "<= 10 s", ready <= 10),
        Row("start-up settled (CPU < 5 %)", f"{settled:.1f} s"),
        Row(f"failure -> Slack, p50 ({failed})", millis(failures, 0.50)),
        Row(
            f"failure -> Slack, p99 ({failed})",
            millis(failures, 0.99),
            "<= 250 ms",
            percentile(failures, 0.99) <= 0.25,
        ),
        Row(f"deadline -> Slack, p50 ({due})", millis(received, 0.50)),
        Row(
            f"deadline -> Slack, p99 ({due})",
            millis(received, 0.99),
            f"<= {deadline_target * 1000:.0f} ms (margin {WATERMARK_MARGIN} s + 300)",
            percentile(received, 0.99) <= deadline_target,
        ),
        Row("  of which deadline -> decision, p99", millis(decided, 0.99)),
        Row(
            f"storm of {size.storm} failures: last key delivered",
            f"{storm:.1f} s ({storm_posts} posts)",
            "<= 15 s",
            storm <= 15,
        ),
        Row(
            f"idle CPU ({world}, {size.idle:.0f} s)",
            f"{idle * 100:.2f} % of a core",
            "<= 0.5 %",
            idle <= 0.005,
        ),
        Row(f"RSS steady ({world})", f"{rss:.0f} MB", "<= 200 MB", rss <= 200),
        Row("RSS peak (whole run)", f"{peak:.0f} MB", "<= 250 MB", peak <= 250),
        Row(
            f"state saves within 50 ms ({saves} saves, own thread)",
            f"{quick} (slowest <= {slowest * 1000:.0f} ms)",
            "all",
            saves > 0 and quick == saves,
        ),
    ]
    print()
    print(f"{'measure':<52} {'value':>24}  {'target':<38} result")
    print("-" * 124)
    for row in rows:
        verdict = "" if row.met is None else ("PASS" if row.met else "MISS")
        print(f"{row.name:<52} {row.value:>24}  {row.target:<38} {verdict}")


@dataclass(frozen=True)
class Row:
    name: str
    value: str
    target: str = ""
    met: bool | None = None


def millis(values: list[float], share: float) -> str:
    return f"{percentile(values, share) * 1000:.0f} ms" if values else "n/a"


if __name__ == "__main__":
    main()
