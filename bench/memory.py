"""Benchmark: what each part of the daemon holds in memory at 10,000 batches, 100,000 Jobs.

Each part is built on the real code path and measured with tracemalloc (Python objects
the part keeps once built, garbage collected); the libraries as the RSS an interpreter
reaches by importing what `sla-monitor run` imports. Parts:

- libraries: the process after its imports (the kubernetes package alone, with the auth and
  HTTP libraries its config loaders import, is ~40 MB; its API models load only when used);
- config: `load_config` of N batches, as kept by the daemon;
- engine: `Engine(config)` after a day of 100,000 completions of labelled Jobs (tracks, recent
  runs, the recent successes a reload-added batch may match);
- Job cache: a Jobs reflector after listing 100,000 typical Jobs (its per-Job memo);
- outbox: the Slack outbox after 1,000 alerts delivered (its sent log is bounded);
- and the engine's saved state: its JSON, and gzipped as the ConfigMap store keeps it.

    python bench/memory.py            # 10,000 batches, 100,000 Jobs
    python bench/memory.py --small    # 200 batches, 2,000 Jobs (smoke)
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import gzip
import json
import random
import subprocess
import sys
import tempfile
import threading
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import START, completions, config_document
from kubernetes.client import ApiClient

from monitor.config.load import load_config
from monitor.core.engine import Engine
from monitor.core.facts import KUBERNETES, JobSeen, Post, Tick, Watermark
from monitor.notify.outbox import Outbox
from monitor.sources.kube.reduce import shared_labels
from monitor.sources.kube.reflector import Reflector, ReflectorSettings
from monitor.sources.kube.resources import JOBS
from monitor.testing.kube_workloads import CONTROLLER_UID_LABEL, JOB_NAME_LABEL, job_object

T = TypeVar("T")
IMPORTS = "import monitor.cli, monitor.runtime.daemon, monitor.runtime.pipeline"


def kept(build: Callable[[], T]) -> tuple[T, int]:
    """What `build` returns and the bytes of Python objects it keeps alive."""
    built, kept_bytes, _ = footprint(build)
    return built, kept_bytes


def footprint(build: Callable[[], T]) -> tuple[T, int, int]:
    """What `build` returns, the bytes it keeps alive, and the most it held at once."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    built = build()
    peak = tracemalloc.get_traced_memory()[1] - before
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return built, after - before, peak


def libraries_mb() -> float:
    """RSS of a fresh interpreter after the daemon's imports."""
    probe = (
        f"{IMPORTS}\n"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS')][0])"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return int(output) / 1024


class _Sink:
    """Takes what a reflector emits and drops it (the engine is measured on its own)."""

    lock = threading.RLock()

    def emit(self, item: Any) -> None: ...
    def vanished(self, item: Any) -> None: ...
    def contact(self, ok: bool, detail: str = "") -> None: ...


def list_pages(jobs: int) -> list[bytes]:
    """`jobs` typical Jobs (CronJob-owned; 90 % finished) as list pages of 500."""
    started = datetime(2026, 11, 27, 9, tzinfo=UTC)
    stamp = "2026-11-27T09:05:00Z"
    objects = []
    for number in range(jobs):
        job = job_object(
            f"ns-{number % 50}",
            f"batch-{number % 10_000:05d}-{number}",
            cronjob=f"batch-{number % 10_000:05d}",
            labels={"app": "etl", "team": f"team-{number % 20}"},
            start_time=started,
        )
        status = job.setdefault("status", {})
        status["startTime"] = "2026-11-27T09:00:00Z"
        if number % 10 < 9:
            kind = "Complete" if number % 20 else "Failed"
            status["conditions"] = [{"type": kind, "status": "True", "lastTransitionTime": stamp}]
            if kind == "Complete":
                status["completionTime"] = stamp
        job["metadata"]["creationTimestamp"] = "2026-11-27T09:00:00Z"
        job["metadata"]["resourceVersion"] = str(number + 1)
        objects.append(job)
    return [
        json.dumps({"metadata": {"resourceVersion": "1"}, "items": objects[i : i + 500]}).encode()
        for i in range(0, jobs, 500)
    ]


def job_cache(pages: list[bytes]) -> Reflector[Any]:
    reflector: Reflector[Any] = Reflector(
        ApiClient(), JOBS, None, _Sink(), ReflectorSettings(), threading.Event(), random.Random(1)
    )
    for body in pages:
        _, items = reflector._decode_page(body)  # the list path, minus HTTP
        for item in items:
            reflector._deliver(item)
    return reflector


def labelled(job: JobSeen) -> JobSeen:
    """The run as the Job reducer makes it from JSON: with the labels a CronJob's Job carries
    (its own uid and name, twice), each decoded as a string of its own and then shared as
    `shared_labels` shares them, and its namespace and owner interned."""

    def decoded(text: str) -> str:
        return text.encode().decode()

    labels = {
        decoded(CONTROLLER_UID_LABEL): decoded(job.uid),
        decoded(JOB_NAME_LABEL): decoded(job.name),
        decoded("controller-uid"): decoded(job.uid),
        decoded("job-name"): decoded(job.name),
        decoded("app"): decoded("etl"),
    }
    return dataclasses.replace(
        job,
        labels=shared_labels(labels, job.uid, job.name),
        namespace=sys.intern(job.namespace),
        cronjob=sys.intern(job.cronjob) if job.cronjob is not None else None,
    )


def outbox(alerts: int) -> Outbox:
    box = Outbox()
    at = datetime(2026, 11, 27, 9, tzinfo=UTC)
    for number in range(alerts):
        post = Post(
            kind="job_failed",
            batch=f"batch-{number:05d}",
            key=f"job_failed:ns-{number % 50}/batch-{number:05d}-{number}@uid-{number}",
            at=at,
            details={"job": f"batch-{number:05d}-{number}", "reason": "BackoffLimitExceeded"},
            thread=f"run:ns-{number % 50}/batch-{number:05d}-{number}",
        )
        entry = box.add(post, None, "#alerts", float(number))
        assert entry is not None
        box.delivered(entry, "C0ALERTS", f"{number}.000100", float(number) + 0.1)
    return box


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true")
    batches, jobs = (200, 2_000) if parser.parse_args().small else (10_000, 100_000)

    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "sla.yaml"
        path.write_text(yaml.safe_dump(config_document(batches), sort_keys=False))
        config, config_bytes, load_peak = footprint(lambda: load_config(str(path)))

    day = START + timedelta(days=1)

    def engine() -> Engine:
        built = Engine(config, started_at=START)
        # The runs are made here, as a source would decode them, so what the engine keeps
        # of them is counted (and what it lets go is not).
        for job in completions(batches, jobs, day):
            built.handle(labelled(job))
        built.handle(Tick(day))
        built.handle(Watermark(KUBERNETES, day))
        built.take_decisions()  # the pipeline takes them after every fact
        built.prune()
        return built

    built, engine_bytes = kept(engine)
    state = built.encoded().encode()
    packed = len(gzip.compress(state, 6))
    del built
    pages = list_pages(jobs)
    _, cache_bytes = kept(lambda: job_cache(pages))
    pages.clear()
    _, outbox_bytes = kept(lambda: outbox(1_000))
    libraries = libraries_mb()

    rows = [
        ("libraries (interpreter + imports, RSS)", libraries, ""),
        (
            f"config ({batches:,} batches)",
            config_bytes / 1e6,
            f"{config_bytes / batches:,.0f} B/batch",
        ),
        (
            f"engine ({batches:,} batches, {jobs:,} runs in a day)",
            engine_bytes / 1e6,
            f"{engine_bytes / batches:,.0f} B/batch",
        ),
        (f"Job cache ({jobs:,} Jobs)", cache_bytes / 1e6, f"{cache_bytes / jobs:,.0f} B/Job"),
        ("outbox (1,000 alerts delivered)", outbox_bytes / 1e6, "sent log bounded at 500"),
    ]
    total = sum(mb for _, mb, _ in rows)
    state_rows = [
        (
            f"saved engine state, JSON ({batches:,} batches)",
            len(state) / 1e6,
            f"{len(state) / batches * 1000 / 1e3:,.0f} KB per 1k batches",
        ),
        (
            "saved engine state, gzipped (ConfigMap binaryData)",
            packed / 1e6,
            f"{packed / batches * 1000 / 1e3:,.0f} KB per 1k batches (limit 1 MiB)",
        ),
    ]
    print(f"{'part':<52} {'MB':>8}  per unit")
    print("-" * 84)
    for name, mb, unit in rows:
        print(f"{name:<52} {mb:>8.1f}  {unit}")
    print(f"{'sum (the daemon adds allocator slack and buffers)':<52} {total:>8.1f}")
    print()
    print(
        f"{f'config load, transient peak ({batches:,} batches)':<52} {load_peak / 1e6:>8.1f}"
        "  at start-up and at each reload"
    )
    print()
    for name, mb, unit in state_rows:
        print(f"{name:<52} {mb:>8.2f}  {unit}")


if __name__ == "__main__":
    main()
