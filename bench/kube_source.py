"""Benchmark: the Kubernetes Job source against the loopback API server, raw JSON vs models.

The fake API server runs in this process; each measured client runs in its own child
process (its own core, GIL, garbage collector and RSS). Measured side by side:

- initial sync of N Jobs through paged lists (limit 500): the source as shipped (raw
  JSON, typed msgspec projection, next page requested ahead, GC generation-0 threshold
  raised while listing), then without the prefetch, without the GC relief, after
  `gc.freeze()` and with the GC off; and the same lists through the client's models;
- a backlog of M Job updates streamed by a watch: the source vs `Watch` with model
  deserialization;
- the fake's own serving CPU time for each row (it runs on the other core);
- matching 100k Jobs against 10k batches with `BatchIndex`, and the brute-force rate.

    python bench/kube_source.py            # N=100000, M=30000
    python bench/kube_source.py --small    # N=2000, M=1000 (smoke)
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.core.facts import Fact, JobSeen
from monitor.testing.kube_api import FakeKubeApi
from monitor.testing.kube_store import encode, rfc3339
from monitor.testing.kube_workloads import JOBS, job_object

PAGE = 500


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _client(url: str) -> Any:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = url
    return client.ApiClient(configuration)


# -- measured clients (child processes) -------------------------------------------------
def raw_sync(url: str, gc_mode: str, prefetch: bool, conn: Connection) -> None:
    """The real source: time to a full initial sync; optionally then a watch backlog."""
    from monitor.sources.kube.source import KubeRunSource

    api = _client(url)
    if gc_mode == "freeze":
        gc.freeze()
    elif gc_mode == "off":
        gc.disable()
    count = [0]

    def emit(fact: Fact) -> None:
        if isinstance(fact, JobSeen):
            count[0] += 1

    base = rss_mb()[0]
    started = time.perf_counter()
    source = KubeRunSource(
        api,
        emit,
        page_size=PAGE,
        backoff_initial=0.001,
        prefetch_pages=prefetch,
        relax_gc_while_listing=gc_mode != "untouched",
    )
    source.start()
    while not source.synced:
        time.sleep(0.001)
    elapsed = time.perf_counter() - started
    current, peak = rss_mb()
    conn.send({"seconds": elapsed, "jobs": count[0], "rss": current, "peak": peak, "base": base})
    if conn.recv() == "watch":
        # The parent holds our open watch, writes the backlog, then cuts the watch once
        # we are timing: the resumed watch streams the whole backlog.
        final = conn.recv()
        before = count[0]
        started = time.perf_counter()
        conn.send("timing")
        while int(source.resource_versions["jobs/*"] or 0) < final:
            time.sleep(0.001)
        seconds = time.perf_counter() - started
        conn.send({"seconds": seconds, "events": count[0] - before})
    source.stop()


def model_sync(url: str, conn: Connection) -> None:
    """The same paged lists through the client's models, reduced from V1Job attributes."""
    from kubernetes import client

    batch = client.BatchV1Api(_client(url))
    base = rss_mb()[0]
    started = time.perf_counter()
    seen: dict[str, JobSeen] = {}
    token = None
    while True:
        page = batch.list_job_for_all_namespaces(limit=PAGE, _continue=token)
        for job in page.items:
            seen[job.metadata.uid] = _reduce_model(job)
        token = page.metadata._continue
        if not token:
            break
    elapsed = time.perf_counter() - started
    current, peak = rss_mb()
    conn.send({"seconds": elapsed, "jobs": len(seen), "rss": current, "peak": peak, "base": base})


def model_watch(url: str, start: str, final: int, conn: Connection) -> None:
    from kubernetes import client, watch

    batch = client.BatchV1Api(_client(url))
    started = time.perf_counter()
    events = 0
    for event in watch.Watch().stream(
        batch.list_job_for_all_namespaces, resource_version=start, timeout_seconds=600
    ):
        if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
            _reduce_model(event["object"])
            events += 1
        if int(event["object"].metadata.resource_version) >= final:
            break
    conn.send({"seconds": time.perf_counter() - started, "events": events})


def _reduce_model(job: Any) -> JobSeen:
    owners = job.metadata.owner_references or []
    cronjob = next((o.name for o in owners if o.kind == "CronJob"), None)
    outcome = "running"
    done = None
    for condition in job.status.conditions or []:
        if condition.status == "True" and condition.type in ("SuccessCriteriaMet", "Complete"):
            outcome, done = "succeeded", condition.last_transition_time
    return JobSeen(
        uid=job.metadata.uid,
        namespace=job.metadata.namespace,
        name=job.metadata.name,
        labels=job.metadata.labels or {},
        cronjob=cronjob,
        start_time=job.status.start_time,
        completion_time=done,
        outcome=outcome,  # type: ignore[arg-type]
    )


# -- the fake side ------------------------------------------------------------------------
def populate(kube: FakeKubeApi, count: int) -> None:
    """N Jobs across 50 namespaces and 1000 CronJobs, written straight into the store."""
    template = job_object("ns-0", "template", cronjob="cron-0", labels={"team": "ml"})
    for index in range(count):
        job = copy.deepcopy(template)
        namespace, cronjob = f"ns-{index % 50}", f"cron-{index % 1000}"
        job["metadata"].update(name=f"{cronjob}-{index}", namespace=namespace, uid=f"uid-{index}")
        job["metadata"]["ownerReferences"][0]["name"] = cronjob
        kube.store.create(JOBS, namespace, job)


def write_updates(kube: FakeKubeApi, count: int) -> int:
    """Mark `count` Jobs SuccessCriteriaMet; returns the last resourceVersion."""
    stamp = rfc3339(datetime.now(UTC))
    stored = list(kube.store.objects("jobs"))[:count]
    for entry in stored:
        job = copy.deepcopy(entry.obj)
        job["status"]["conditions"] = [
            {
                "type": "SuccessCriteriaMet",
                "status": "True",
                "reason": "CompletionsReached",
                "lastTransitionTime": stamp,
                "lastProbeTime": stamp,
            }
        ]
        job["metadata"].pop("resourceVersion")
        kube.store.update(JOBS, job["metadata"]["namespace"], job["metadata"]["name"], job)
    return kube.store.resource_version


def warm_up(url: str) -> None:
    """One full paged list of raw bodies, unmeasured."""
    from kubernetes import client

    batch = client.BatchV1Api(_client(url))
    token = None
    while True:
        response = batch.list_job_for_all_namespaces(
            limit=PAGE, _continue=token, _preload_content=False
        )
        token = json.loads(response.data)["metadata"].get("continue")
        if not token:
            break


def run_child(target: Callable[..., None], *args: Any) -> tuple[Any, Connection]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=target, args=(*args, child), daemon=True)
    process.start()
    return process, parent


def _match_config(index: int) -> dict[str, Any]:
    """A mix of batch shapes: CronJob, anchored name regex, label-only, namespace+labels."""
    namespace = f"ns-{index // 10 % 50}"  # every namespace gets every shape
    kind = index % 10
    if kind == 7:
        return {"namespace": namespace, "job_name": f"^adhoc-{index}-"}
    if kind == 8:
        return {"job_name": f"^etl-{index}-"}
    if kind == 9:
        return {"labels": {"pipeline": f"p{index}"}}
    if kind == 0:
        return {"namespace": namespace, "labels": {"team": f"t{index // 10 % 400}"}}
    return {"namespace": namespace, "cronjob": f"cron-{index}"}


def bench_matching(jobs: int, batches: int) -> dict[str, float]:
    from pydantic import TypeAdapter

    from monitor.config.model import Batch
    from monitor.core.matching import BatchIndex, JobIdentity, batch_matches

    validated = TypeAdapter(Batch).validate_python

    rng = random.Random(7)
    config = [
        validated({"name": f"b{i}", "freshness": "1h", "match": _match_config(i)})
        for i in range(batches)
    ]
    started = time.perf_counter()
    index = BatchIndex(config)
    build = time.perf_counter() - started
    prefixes = ("cron", "adhoc", "etl")
    identities = [
        JobIdentity(
            f"ns-{i % 50}",
            f"{prefixes[i % 3]}-{rng.randrange(batches)}-{i}",
            f"cron-{rng.randrange(batches)}",
            {"team": f"t{rng.randrange(400)}", "pipeline": f"p{rng.randrange(batches)}"},
        )
        for i in range(jobs)
    ]
    started = time.perf_counter()
    matched = sum(len(index.batches_for(identity)) for identity in identities)
    seconds = time.perf_counter() - started
    sample = identities[:200]
    started = time.perf_counter()
    brute = [[b for b in config if batch_matches(b, job)] for job in sample]
    brute_seconds = time.perf_counter() - started
    assert brute == [index.batches_for(job) for job in sample]
    return {
        "seconds": seconds,
        "matched": matched,
        "build": build,
        "brute_rate": len(sample) / brute_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="smoke run: N=2000, M=1000")
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--updates", type=int)
    args = parser.parse_args()
    jobs = args.jobs or (2000 if args.small else 100_000)
    updates = args.updates or (1000 if args.small else 30_000)

    kube = FakeKubeApi(max_history=updates + 10).start()
    populate(kube, jobs)
    size = sum(len(encode(s.obj)) for s in list(kube.store.objects("jobs"))[:100]) // 100
    warm_up(kube.url)  # the fake's first paged list is slower; no row should pay for it
    rows: list[tuple[str, ...]] = [("", "", "rate", "peak RSS", "fake server CPU")]
    served = [kube.serving_seconds]

    def fake_cpu() -> str:
        """Serving CPU since the last call; a watch's is counted when its stream ends."""
        kube.drop_watches()
        deadline = time.monotonic() + 10
        while kube.open_watches and time.monotonic() < deadline:
            time.sleep(0.001)
        now = kube.serving_seconds
        spent, served[0] = now - served[0], now
        return f"{spent:.2f} s"

    def sync_row(label: str, result: dict[str, Any]) -> float:
        rate = result["jobs"] / result["seconds"]
        rows.append(
            (
                label,
                f"{result['jobs']} Jobs in {result['seconds']:.2f} s",
                f"{rate:,.0f} Jobs/s",
                f"{result['peak']:.0f} MB (start {result['base']:.0f})",
                fake_cpu(),
            )
        )
        assert result["jobs"] == jobs, result
        return rate

    process, conn = run_child(raw_sync, kube.url, "on", True)
    raw_rate = sync_row("initial sync, source", conn.recv())
    conn.send("watch")
    deadline = time.monotonic() + 30
    while kube.open_watches < 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    kube.hold_watches()
    start_version = str(kube.store.resource_version)
    final = write_updates(kube, updates)
    conn.send(final)
    assert conn.recv() == "timing"
    kube.drop_watches()
    raw_watch = conn.recv()
    process.join()
    assert raw_watch["events"] == updates, raw_watch
    raw_events = updates / raw_watch["seconds"]
    watch_cpu = fake_cpu()
    variants = [
        ("initial sync, source, no prefetch", "on", False),
        ("initial sync, source, GC thresholds untouched", "untouched", True),
        ("initial sync, source, gc.freeze() first", "freeze", True),
        ("initial sync, source, GC off", "off", True),
    ]
    for label, mode, prefetch in variants:
        process, conn = run_child(raw_sync, kube.url, mode, prefetch)
        sync_row(label, conn.recv())
        conn.send("done")
        process.join()
    process, conn = run_child(model_sync, kube.url)
    model_rate = sync_row("initial sync, client models", conn.recv())
    process.join()
    process, conn = run_child(model_watch, kube.url, start_version, final)
    model_watch_result = conn.recv()
    process.join()
    model_events = model_watch_result["events"] / model_watch_result["seconds"]
    rows.append(
        (
            "watch backlog, source",
            f"{updates} events in {raw_watch['seconds']:.2f} s",
            f"{raw_events:,.0f} events/s",
            "",
            watch_cpu,
        )
    )
    rows.append(
        (
            "watch backlog, client models",
            f"{model_watch_result['events']} events in {model_watch_result['seconds']:.2f} s",
            f"{model_events:,.0f} events/s",
            "",
            fake_cpu(),
        )
    )
    kube.stop()
    match_jobs = 2000 if args.small else 100_000
    match = bench_matching(match_jobs, 10_000)
    rows.append(
        (
            f"match {match_jobs} Jobs x 10000 batches",
            f"{match['seconds']:.2f} s (index built in {match['build']:.2f} s)",
            f"{match_jobs / match['seconds']:,.0f} Jobs/s",
            f"{match['matched']:.0f} matches",
            "",
        )
    )
    rows.append(
        ("match by testing every batch", "200 Jobs", f"{match['brute_rate']:,.0f} Jobs/s", "", "")
    )

    print(f"Job JSON ~{size} bytes; N={jobs}, M={updates}; cpus={os.cpu_count()}")
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    sync_ratio, watch_ratio = raw_rate / model_rate, raw_events / model_events
    print(f"source vs models: sync x{sync_ratio:.1f}, watch x{watch_ratio:.1f}")


if __name__ == "__main__":
    main()
