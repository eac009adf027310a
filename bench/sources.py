"""Benchmark: the Kubernetes source's watermark under churn, watch latency, big initial syncs.

The fake API server (and the writer that churns it) runs in this process; each measured
`KubeRunSource` runs in its own child process, so server and client do not share a GIL.
Measured:

- watermark lag under churn: N Jobs are listed, then a writer here changes one Job's
  label (`bench/seq`, a sequence number) 200 times a second; the client runs the source
  with production-like watermark settings (interval 0.25 s, settle 0.2 s, margin 0) and
  samples `now - source.watermark` every 50 ms while the writer runs. A watch that busy is
  never silent for `settle`, so this is the progress-probe rule at work; the probes are
  counted from the fake's request log (one-item lists);
- watch delivery latency: for every churn write, from the wall time it was committed here
  to the wall time its `JobSeen` reached `emit` in the child (the same machine's clock):
  what the watermark margin has to cover under the idle rule (the fake, like the API
  server, sets TCP_NODELAY, so small watch chunks are not held back by Nagle's algorithm);
- initial sync of J Jobs + W Argo Workflows (most of both finished), all namespaces, from
  `start()` to `synced`, with the child's peak RSS (VmHWM); and of the same Jobs alone.

    python bench/sources.py            # churn over 10,000 Jobs for 30 s; sync 100,000 + 10,000
    python bench/sources.py --small    # churn over 1,000 Jobs for 8 s; sync 2,000 + 200 (smoke)
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.core.facts import Fact, JobSeen, Watermark
from monitor.testing.argo_workflows import WORKFLOWS, workflow_object
from monitor.testing.kube_api import FakeKubeApi
from monitor.testing.kube_store import JsonObject, rfc3339
from monitor.testing.kube_workloads import JOBS, job_object

SEQ_LABEL = "bench/seq"
RATE = 200.0  # churn writes per second
SAMPLE_EVERY = 0.05  # seconds between lag samples
LAG_TARGET = 2.0  # seconds, p99
NAMESPACES = 50


def peak_rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB (VmRSS, VmHWM)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _client(url: str) -> Any:
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = url
    return client.ApiClient(configuration)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 600 samples is the 594th)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


# -- measured clients (child processes) -------------------------------------------------
def churn_client(url: str, conn: Connection) -> None:
    """The source over the churned Jobs: lag samples while the writer runs, arrivals."""
    from monitor.sources.kube.resources import JOBS as JOB_RESOURCE
    from monitor.sources.kube.source import KubeRunSource

    arrivals: dict[int, float] = {}
    counts = {"seen": 0, "watermarks": 0}

    def emit(fact: Fact) -> None:
        now = time.time()
        if isinstance(fact, JobSeen):
            counts["seen"] += 1
            seq = fact.labels.get(SEQ_LABEL)
            if seq is not None:
                arrivals[int(seq)] = now
        elif isinstance(fact, Watermark):
            counts["watermarks"] += 1

    source = KubeRunSource(
        _client(url),
        emit,
        resources=(JOB_RESOURCE,),
        watermark_margin=timedelta(0),
        watermark_interval=0.25,
        settle=0.2,
    )
    started = time.perf_counter()
    source.start()
    deadline = time.monotonic() + 120
    while not source.synced and time.monotonic() < deadline:
        time.sleep(0.001)
    synced = time.perf_counter() - started
    while source.watermark is None and time.monotonic() < deadline:
        time.sleep(0.01)
    conn.send({"sync": synced, "listed": counts["seen"], "first_watermark": source.watermark})
    assert conn.recv() == "go"
    watermarks_before = counts["watermarks"]
    lags: list[tuple[float, float]] = []  # (seconds since go, lag in seconds)
    began = time.monotonic()
    due = began
    while not conn.poll():
        due += SAMPLE_EVERY
        time.sleep(max(0.0, due - time.monotonic()))
        watermark = source.watermark
        if watermark is not None:
            lag = (datetime.now(UTC) - watermark).total_seconds()
            lags.append((time.monotonic() - began, lag))
    last_seq = conn.recv()
    deadline = time.monotonic() + 15
    while last_seq not in arrivals and time.monotonic() < deadline:
        time.sleep(0.01)
    conn.send(
        {
            "lags": lags,
            "arrivals": arrivals,
            "watermarks": counts["watermarks"] - watermarks_before,
            "relists": source.relists,
            "watch_restarts": source.watch_restarts,
        }
    )
    source.stop()


def sync_client(url: str, with_workflows: bool, conn: Connection) -> None:
    """Time from `start()` to `synced`, when each kind's last run was emitted, peak RSS."""
    from monitor.sources.argo.workflows import WORKFLOWS as WORKFLOW_RESOURCE
    from monitor.sources.kube.resources import JOBS as JOB_RESOURCE
    from monitor.sources.kube.source import KubeRunSource

    counts = {"Job": 0, "Workflow": 0}
    last = {"Job": 0.0, "Workflow": 0.0}
    base = peak_rss_mb()[0]
    started = time.perf_counter()

    def emit(fact: Fact) -> None:
        if isinstance(fact, JobSeen):
            counts[fact.kind] += 1
            last[fact.kind] = time.perf_counter() - started

    resources = (JOB_RESOURCE, WORKFLOW_RESOURCE) if with_workflows else (JOB_RESOURCE,)
    source = KubeRunSource(_client(url), emit, resources=resources)
    source.start()
    while not source.synced:
        time.sleep(0.001)
    elapsed = time.perf_counter() - started
    current, peak = peak_rss_mb()
    conn.send(
        {
            "seconds": elapsed,
            "counts": dict(counts),
            "last": dict(last),
            "rss": current,
            "peak": peak,
            "base": base,
        }
    )
    # A watch opened just after `synced` may not be cut by stop() yet (its reader waits on
    # it); the measurement is sent, so do not wait the default 5 s for it.
    source.stop(timeout=0.5)


def run_child(target: Callable[..., None], *args: Any) -> tuple[Any, Connection]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=target, args=(*args, child), daemon=True)
    process.start()
    return process, parent


# -- the fake side ------------------------------------------------------------------------
def populate_jobs(kube: FakeKubeApi, count: int, finished: float = 0.0) -> list[tuple[str, str]]:
    """`count` Jobs over 50 namespaces and 1000 CronJobs, the first `finished` fraction
    completed (SuccessCriteriaMet + Complete, as the Job controller writes them); their
    (namespace, name) keys."""
    stamp = rfc3339(datetime.now(UTC))
    keys = []
    for index in range(count):
        namespace, cronjob = f"ns-{index % NAMESPACES}", f"cron-{index % 1000}"
        name = f"{cronjob}-{index}"
        job = job_object(namespace, name, cronjob=cronjob, labels={"team": f"t{index % 40}"})
        if index < finished * count:
            job["status"].update(
                {"active": 0, "succeeded": 1, "completionTime": stamp, "conditions": []}
            )
            for kind in ("SuccessCriteriaMet", "Complete"):
                job["status"]["conditions"].append(_condition(kind, stamp))
        kube.store.create(JOBS, namespace, job)
        keys.append((namespace, name))
    return keys


def _condition(kind: str, stamp: str) -> JsonObject:
    return {
        "type": kind,
        "status": "True",
        "reason": "CompletionsReached",
        "message": "Reached expected number of succeeded pods",
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }


def populate_workflows(kube: FakeKubeApi, count: int) -> None:
    """`count` Workflows (from CronWorkflows, a fifth from WorkflowTemplates); 90% of them
    finished by the controller (most Succeeded, some Failed or Error), the rest Running."""
    for index in range(count):
        namespace = f"ns-{index % NAMESPACES}"
        name = f"wf-{index}"
        if index % 5 == 4:
            workflow = workflow_object(namespace, name, template=f"tmpl-{index % 100}")
        else:
            workflow = workflow_object(namespace, name, cron_workflow=f"cwf-{index % 500}")
        kube.store.create(WORKFLOWS, namespace, workflow)
        if index % 10 != 9:
            phase = ("Failed", "Error")[index % 2] if index % 10 == 7 else "Succeeded"
            kube.workflows.finish(namespace, name, phase, message=None)


def warm_up(url: str, with_workflows: bool) -> None:
    """One full paged list of each resource's raw bodies, unmeasured."""
    from kubernetes import client

    api = _client(url)
    batch, custom = client.BatchV1Api(api), client.CustomObjectsApi(api)
    listers: list[Callable[..., Any]] = [batch.list_job_for_all_namespaces]
    if with_workflows:
        listers.append(
            lambda **kw: custom.list_cluster_custom_object(
                "argoproj.io", "v1alpha1", "workflows", **kw
            )
        )
    for lister in listers:
        token = None
        while True:
            kwargs: dict[str, Any] = {"limit": 500, "_preload_content": False}
            if token:
                kwargs["_continue"] = token
            token = json.loads(lister(**kwargs).data)["metadata"].get("continue")
            if not token:
                break


def churn(
    kube: FakeKubeApi,
    keys: list[tuple[str, str]],
    seconds: float,
    written: dict[int, float],
    stop: threading.Event,
) -> None:
    """Change one Job's `bench/seq` label RATE times a second (on a fixed schedule: a
    late write is not made up for by a burst) for `seconds`; commit times in `written`."""

    def relabel(seq: int) -> Callable[[JsonObject], None]:
        def change(job: JsonObject) -> None:
            job["metadata"]["labels"][SEQ_LABEL] = str(seq)

        return change

    began = time.monotonic()
    seq = 0
    while not stop.is_set():
        due = began + seq / RATE
        if due - began >= seconds:
            break
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        namespace, name = keys[seq % len(keys)]
        kube.store.modify(JOBS, namespace, name, relabel(seq))
        written[seq] = time.time()
        seq += 1


def probes(kube: FakeKubeApi) -> int:
    """Progress probes the fake has answered so far (one-item lists)."""
    return sum(1 for r in list(kube.requests) if r.verb == "list" and r.limit == 1)


def bench_churn(jobs: int, seconds: float) -> dict[str, Any]:
    kube = FakeKubeApi().start()
    try:
        keys = populate_jobs(kube, jobs, finished=0.5)
        process, conn = run_child(churn_client, kube.url)
        ready = conn.recv()
        written: dict[int, float] = {}
        stop = threading.Event()
        writer = threading.Thread(target=churn, args=(kube, keys, seconds, written, stop))
        probes_before = probes(kube)
        began = time.monotonic()
        writer.start()
        conn.send("go")
        writer.join()
        duration = time.monotonic() - began
        probes_made = probes(kube) - probes_before
        conn.send(max(written))
        result = conn.recv()
        process.join(timeout=30)
    finally:
        kube.stop()
    arrivals = result["arrivals"]
    delays = [(arrivals[seq] - at) * 1000 for seq, at in written.items() if seq in arrivals]
    return {
        "ready": ready,
        "written": len(written),
        "duration": duration,
        "probes": probes_made,
        "delays": delays,
        **result,
    }


def bench_sync(jobs: int, workflows: int) -> tuple[dict[str, Any], dict[str, Any]]:
    kube = FakeKubeApi().start()
    try:
        populate_jobs(kube, jobs, finished=0.8)
        populate_workflows(kube, workflows)
        warm_up(kube.url, with_workflows=True)  # the fake's first paged list is slower
        results = []
        for with_workflows in (True, False):
            process, conn = run_child(sync_client, kube.url, with_workflows)
            results.append(conn.recv())
            process.join(timeout=30)
    finally:
        kube.stop()
    return results[0], results[1]


# -- report -------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="smoke run (see the docstring)")
    args = parser.parse_args()
    churn_jobs, churn_seconds = (1_000, 8.0) if args.small else (10_000, 30.0)
    sync_jobs, sync_workflows = (2_000, 200) if args.small else (100_000, 10_000)

    churned = bench_churn(churn_jobs, churn_seconds)
    both, jobs_only = bench_sync(sync_jobs, sync_workflows)

    lags = [lag for _, lag in churned["lags"]]
    p50, p99, worst = (percentile(lags, q) for q in (0.5, 0.99, 1.0))
    worst_at = max(churned["lags"], key=lambda sample: sample[1])[0]
    delays = churned["delays"]
    written, duration = churned["written"], churned["duration"]
    rows: list[tuple[str, str, str, str]] = [
        ("measure", "measured", "target", "result"),
        (
            f"initial sync of {churn_jobs:,} Jobs (churn client)",
            f"{churned['ready']['sync']:.2f} s, {churned['ready']['listed']:,} JobSeen",
            "—",
            "info",
        ),
        (
            "churn written (label change per update)",
            f"{written:,} updates in {duration:.1f} s ({written / duration:.0f}/s)",
            f"{RATE:.0f}/s",
            "info",
        ),
        (
            "watermark lag p50 / p99 / max",
            f"{p50:.2f} / {p99:.2f} / {worst:.2f} s ({len(lags)} samples,"
            f" max at +{worst_at:.1f} s)",
            f"p99 ≤ {LAG_TARGET:.0f} s",
            "PASS" if lags and p99 <= LAG_TARGET else "MISS",
        ),
        (
            "progress probes during churn",
            f"{churned['probes']} ({churned['probes'] / duration:.1f}/s),"
            f" {churned['watermarks']} Watermarks emitted",
            "—",
            "info",
        ),
        (
            "watch restarts / relists (churn client)",
            f"{churned['watch_restarts']} / {churned['relists']}",
            "—",
            "info",
        ),
        (
            "watch delivery latency p50 / p99 / max",
            (
                f"{percentile(delays, 0.5):.1f} / {percentile(delays, 0.99):.1f} /"
                f" {max(delays):.1f} ms ({len(delays):,} of {written:,} delivered)"
            )
            if delays
            else f"none of {written:,} delivered",
            "—",
            "info",
        ),
    ]
    for label, result in (
        (f"{sync_jobs:,} Jobs + {sync_workflows:,} Workflows", both),
        (f"{sync_jobs:,} Jobs only", jobs_only),
    ):
        counts, last = result["counts"], result["last"]
        done = f"Jobs' last at {last['Job']:.2f} s"
        if counts["Workflow"]:
            done += f", Workflows' at {last['Workflow']:.2f} s"
        rows.append(
            (
                f"initial sync, {label}",
                f"{result['seconds']:.2f} s ({done})",
                "—",
                "info",
            )
        )
        rows.append(
            (
                f"  peak RSS of that client ({counts['Job']:,} + {counts['Workflow']:,} runs)",
                f"{result['peak']:.0f} MB (start {result['base']:.0f} MB)",
                "—",
                "info",
            )
        )
        assert counts["Job"] == sync_jobs, counts
        assert counts["Workflow"] == (sync_workflows if result is both else 0), counts

    print(
        f"sources benchmark: churn {churn_jobs:,} Jobs x {churn_seconds:.0f} s at {RATE:.0f}/s;"
        f" sync {sync_jobs:,} Jobs + {sync_workflows:,} Workflows; cpus={os.cpu_count()};"
        f" lag sd {statistics.pstdev(lags) if lags else 0:.2f} s"
    )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
