"""Benchmark: what each part of the daemon holds in memory at 10,000 batches, 100,000 Jobs.

Each part is built on the real code path and measured with tracemalloc (Python objects
the part keeps once built, garbage collected); the libraries as the RSS an interpreter
reaches by importing what `sla-monitor run` imports. Parts:

- libraries: the process after its imports (the kubernetes package alone, with the auth and
  HTTP libraries its config loaders import, is ~40 MB; its API models load only when used);
- config: `load_config` of N batches, as kept by the daemon;
- Job cache: a Jobs reflector after listing 100,000 typical Jobs (its per-Job memo);
- engine: `Engine(config)` after a day of 100,000 completions, fed by such a reflector from
  their list pages as the daemon feeds it (tracks, recent runs, the recent successes a
  reload-added batch may match); counted beyond the Job cache, with which it shares each
  run's uid, name and times;
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
from monitor.sources.kube.reflector import Reflector, ReflectorSettings
from monitor.sources.kube.resources import JOBS
from monitor.testing.kube_store import rfc3339
from monitor.testing.kube_workloads import job_object

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


def list_pages(runs: list[JobSeen]) -> list[bytes]:
    """The runs as Jobs a CronJob made (with its labels) in list pages of 500; a run whose
    outcome is `failed` has a Failed condition, one `running` neither."""
    objects = []
    for number, run in enumerate(runs):
        assert run.cronjob is not None
        assert run.start_time is not None
        job = job_object(
            run.namespace, run.name, cronjob=run.cronjob, labels={"app": "etl"},
            start_time=run.start_time,
        )  # fmt: skip
        started = rfc3339(run.start_time)
        job["metadata"]["creationTimestamp"] = started
        job["metadata"]["resourceVersion"] = str(number + 1)
        status = job.setdefault("status", {})
        status["startTime"] = started
        if run.outcome != "running":
            ended = rfc3339(run.completion_time or run.start_time)
            kind = "Complete" if run.outcome == "succeeded" else "Failed"
            status["conditions"] = [{"type": kind, "status": "True", "lastTransitionTime": ended}]
            if kind == "Complete":
                status["completionTime"] = ended
        objects.append(job)
    return [
        json.dumps({"metadata": {"resourceVersion": "1"}, "items": objects[i : i + 500]}).encode()
        for i in range(0, len(objects), 500)
    ]


def typical_runs(batches: int, jobs: int, day: datetime) -> list[JobSeen]:
    """A day of completions of the batches' Jobs; one in ten still running, one in twenty
    failed."""
    runs = completions(batches, jobs, day)
    for number in range(0, len(runs), 10):
        runs[number] = dataclasses.replace(runs[number], outcome="running", completion_time=None)
    for number in range(5, len(runs), 20):
        runs[number] = dataclasses.replace(runs[number], outcome="failed", completion_time=None)
    return runs


class _Forward:
    """Hands what a reflector emits to an engine, as the pipeline does."""

    lock = threading.RLock()

    def __init__(self, engine: Engine | None) -> None:
        self._engine = engine

    def emit(self, item: Any) -> None:
        if self._engine is not None:
            self._engine.handle(item)
            self._engine.take_decisions()  # the pipeline takes them after every fact

    def vanished(self, item: Any) -> None: ...
    def contact(self, ok: bool, detail: str = "") -> None: ...


def job_cache(pages: list[bytes], engine: Engine | None = None) -> Reflector[Any]:
    """A Jobs reflector after listing `pages` (the list path, minus HTTP), emitting to
    `engine` if given."""
    reflector: Reflector[Any] = Reflector(
        ApiClient(), JOBS, None, _Forward(engine), ReflectorSettings(), threading.Event(),
        random.Random(1),
    )  # fmt: skip
    for body in pages:
        _, items = reflector._decode_page(body)
        for item in items:
            reflector._deliver(item)
    return reflector


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
    pages = list_pages(typical_runs(batches, jobs, day))
    _, cache_bytes = kept(lambda: job_cache(pages))

    def engine_fed() -> tuple[Engine, Reflector[Any]]:
        engine = Engine(config, started_at=START)
        reflector = job_cache(pages, engine)
        engine.handle(Tick(day))
        engine.handle(Watermark(KUBERNETES, day))
        engine.take_decisions()
        engine.prune()
        return engine, reflector

    (built, _), both_bytes = kept(engine_fed)
    engine_bytes = both_bytes - cache_bytes
    state = built.encoded().encode()
    packed = len(gzip.compress(state, 6))
    del built
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
        (f"Job cache ({jobs:,} Jobs)", cache_bytes / 1e6, f"{cache_bytes / jobs:,.0f} B/Job"),
        (
            f"engine ({batches:,} batches, {jobs:,} runs in a day)",
            engine_bytes / 1e6,
            f"{engine_bytes / batches:,.0f} B/batch, beyond the Job cache",
        ),
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
    print(f"{'sum (the daemon adds its buffers and heap slack)':<52} {total:>8.1f}")
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
