"""`sla-monitor demo`: a scripted minute of batch life, judged by the real daemon.

No cluster, Slack or Google Cloud needed: the bundled loopback fakes (`monitor.testing`)
stand in for the Kubernetes API, Slack and Cloud Logging in this process, and
`sla-monitor run` runs as a subprocess against them through its ordinary seams. A script
then plays Jobs and log lines against deadlines a few seconds apart: one batch on time,
one whose run hangs (warned `at_risk` from its past durations, then `overrun`, then late
and recovered), one failing with BackoffLimitExceeded, one logging a traceback, an Argo
Workflow batch whose run fails, and a freshness batch going stale and recovering.
Every message that reaches the fake Slack is printed as its plain-text fallback, as it
arrives; the status page's URL is printed first. The demo ends by itself; Ctrl-C (or
SIGTERM) ends it and the daemon.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from monitor.testing.logging_api import container_entry
from monitor.testing.slack_api import FakeSlackApi, Message
from monitor.testing.stack import LocalStack, MonitorProcess, cron_at

NAMESPACE = "ml-batch"
ALERTS, ERRORS = "ml-batch-alerts", "ml-batch-errors"
PROJECT, CLUSTER = "demo-project", "demo-cluster"
#: Every post the script provokes, by kind; the demo succeeds when all have arrived.
EXPECTED = {
    "job_failed": 2,
    "missed_deadline": 1,
    "at_risk": 2,  # the hung run puts today's deadline at risk, then tomorrow's
    "overrun": 1,
    "traceback": 1,
    "stale": 1,
    "recovered": 3,
}
TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/app/score.py", line 88, in <module>',
    "    main()",
    '  File "/app/score.py", line 61, in main',
    "    features = load_features(day)",
    "KeyError: 'user_embedding_v2'",
]


@dataclass(frozen=True)
class Pace:
    """How long the script takes: offsets in seconds are multiplied by `scale`."""

    scale: float
    lead: float  # from launching the daemon to the script's start (its start-up)
    freshness: int  # the freshness batch's bound, seconds
    linger: float  # the status page stays up this long after the last alert

    def at(self, offset: float) -> float:
        return offset * self.scale


NORMAL = Pace(scale=1.0, lead=5.0, freshness=20, linger=15.0)
FAST = Pace(scale=0.5, lead=4.0, freshness=10, linger=0.0)


def _nothing() -> None:
    """A script step that only narrates (the daemon acts on its own)."""


@dataclass(frozen=True)
class Step:
    """At `offset` seconds (before pacing) into the script: say `text`, do `action`."""

    offset: float
    text: str
    action: Callable[[], None] = _nothing


class Interrupted(Exception):
    """SIGTERM, handled like Ctrl-C."""


class DaemonExited(Exception):
    """The daemon stopped before the demo did (it shares Ctrl-C with us)."""


class Console:
    """What the person watching sees: timestamped lines, colour only on a terminal."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._colour = out.isatty()
        self._lock = threading.Lock()

    def style(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self._colour else text

    def line(self, text: str = "", *, stamp: bool = False) -> None:
        prefix = self.style(datetime.now(UTC).strftime("%H:%M:%S "), "2") if stamp else ""
        with self._lock:
            self._out.write(prefix + text + "\n")
            self._out.flush()

    def step(self, text: str) -> None:
        self.line(self.style(f"▸ {text}", "36"), stamp=True)


def shown(text: str | None) -> str:
    """Slack's escaping undone, as the Slack client would display the text."""
    return (text or "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class SlackPrinter:
    """Prints every post and edit the fake Slack receives, in arrival order."""

    def __init__(self, slack: FakeSlackApi, console: Console) -> None:
        self._slack, self._console = slack, console
        self._names = {slack.channel_id(name): name for name in (ALERTS, ERRORS)}
        self._posts = self._edits = 0
        self.kinds: dict[str, int] = {}
        self.resolved_edits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-slack", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.print_new()

    def complete(self) -> bool:
        """Every scripted alert arrived, and every recovery also edited its alert (the edit
        follows the reply, so the reply alone does not mean the demo is over)."""
        arrived = all(self.kinds.get(kind, 0) >= count for kind, count in EXPECTED.items())
        return arrived and self.resolved_edits >= EXPECTED["recovered"]

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.print_new()

    def print_new(self) -> None:
        posts, edits = list(self._slack.messages), list(self._slack.updates)
        for message in posts[self._posts :]:
            self._post(message)
        for message in edits[self._edits :]:
            self._edit(message)
        self._posts, self._edits = len(posts), len(edits)

    def _post(self, message: Message) -> None:
        kind = str(message.payload.get("kind", "?"))
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        channel = self._names.get(message.channel, message.channel)
        where = f"#{channel}" + (" (thread reply)" if message.thread_ts else "")
        colour = "32" if kind == "recovered" else "1;31"
        head = self._console.style(f"[{kind}]", colour)
        self._console.line(f"{head} Slack {where}", stamp=True)
        for text_line in shown(message.text).splitlines() or [""]:
            self._console.line(f"         {text_line}")

    def _edit(self, message: Message) -> None:
        first = shown(message.text).splitlines()[0] if message.text else ""
        if first.startswith("[Resolved]"):
            self.resolved_edits += 1
        self._console.line(self._console.style(f"[edited] {first}", "2"), stamp=True)


class Demo:
    """The fakes, the daemon, the script, and the cleanup of all of them."""

    def __init__(self, pace: Pace, console: Console, workdir: Path) -> None:
        self.pace, self.console, self.workdir = pace, console, workdir
        self.stack = LocalStack(workdir, channels=(ALERTS, ERRORS), cloud_logging=True)
        self.daemon: MonitorProcess | None = None

    # -- setup -----------------------------------------------------------------------------

    def config(self, start: datetime) -> dict[str, Any]:
        assert self.stack.logging is not None
        later = cron_at(start + timedelta(hours=2))  # deadlines that do not fall in the demo

        def batch(name: str, **rest: Any) -> dict[str, Any]:
            return {"name": name, "match": {"namespace": NAMESPACE, "cronjob": name}, **rest}

        errors = {"channel": f"#{ERRORS}"}
        return {
            "timezone": "UTC",
            "slack": {"channel": f"#{ALERTS}"},
            "kubernetes": {"namespaces": [NAMESPACE]},
            "argo": {"enabled": True},
            "cloud_logging": {
                "project": PROJECT,
                "cluster": CLUSTER,
                "poll_interval": "1s",
                "endpoint": self.stack.logging.url,
            },
            "state": {"file": str(self.workdir / "state.json")},
            "batches": [
                batch("recommend-daily", deadline=cron_at(self.instant(start, 12))),
                batch(
                    "feature-build",
                    deadline=cron_at(self.instant(start, 15)),
                    window="60s",  # its five earlier runs lie before this window
                    max_runtime=f"{round(self.pace.at(10))}s",
                ),
                batch("train-model", deadline=later, slack=errors),
                batch("score-users", deadline=later, slack=errors),
                batch("feature-refresh", freshness=f"{self.pace.freshness}s"),
                {
                    "name": "nightly-pipeline",
                    "match": {"namespace": NAMESPACE, "workflow": "nightly-pipeline"},
                    "deadline": later,
                    "slack": errors,
                },
            ],
        }

    def instant(self, start: datetime, offset: float) -> datetime:
        return start + timedelta(seconds=round(self.pace.at(offset)))

    def launch(self) -> datetime:
        self.stack.start()
        start = (datetime.now(UTC) + timedelta(seconds=self.pace.lead + 1)).replace(microsecond=0)
        path = self.stack.write_config(self.config(start))
        self.daemon = self.stack.spawn(path, name="sla-monitor")
        self.console.line(self.console.style("sla-monitor demo", "1"))
        self.console.line(f"  status page  {self.daemon.url}/   (also /api/status, /metrics)")
        self.console.line(f"  config       {path}")
        self.console.line(f"  daemon       pid {self.daemon.pid}, log {self.daemon.log_path}")
        self.console.line("  fakes        Kubernetes API, Slack, Cloud Logging on 127.0.0.1")
        self.console.line("  times below are UTC; Ctrl-C ends the demo\n")
        try:
            self.daemon.wait_ready(timeout=60)
        except AssertionError as error:
            raise DaemonExited(f"The daemon did not become ready: {error}") from error
        return start

    # -- the script --------------------------------------------------------------------------

    def script(self, start: datetime) -> list[Step]:
        jobs, flows = self.stack.kube.jobs, self.stack.kube.workflows
        recommend, build = self.instant(start, 12), self.instant(start, 15)
        bound = self.pace.freshness
        usual = round(self.pace.at(4))
        return [
            Step(0, f"feature-build ran 5 times before, about {usual}s each (its p90)",
                 lambda: self.history("feature-build", usual)),
            Step(0, f"feature-refresh-1 succeeds (a success needed every {bound}s)",
                 lambda: self.succeed("feature-refresh-1")),
            Step(1, f"recommend-daily-1 starts (deadline {recommend:%H:%M:%S})",
                 lambda: self.create("recommend-daily-1")),
            Step(2, f"feature-build-1 starts (deadline {build:%H:%M:%S}); it hangs: at risk "
                    "once it outlasts its usual duration, an overrun after max_runtime",
                 lambda: self.create("feature-build-1")),
            Step(3, "train-model-1 starts", lambda: self.create("train-model-1")),
            Step(5, "recommend-daily-1 completes before its deadline: no alert",
                 lambda: jobs.complete_job(NAMESPACE, "recommend-daily-1")),
            Step(4, "nightly-pipeline-7k2p starts (an Argo Workflow of a CronWorkflow)",
                 lambda: self.submit("nightly-pipeline-7k2p")),
            Step(10, "train-model-1 fails: BackoffLimitExceeded",
                 lambda: jobs.fail_job(NAMESPACE, "train-model-1")),
            Step(13, "nightly-pipeline-7k2p fails: phase Failed",
                 lambda: flows.finish(NAMESPACE, "nightly-pipeline-7k2p", "Failed",
                                      message="child 'nightly-pipeline-7k2p-train' failed")),
            Step(12.5, f"recommend-daily's {recommend:%H:%M:%S} deadline passed, met: silence"),
            Step(15, f"feature-build's {build:%H:%M:%S} deadline passes with no completion"),
            Step(17, "score-users-1 starts", lambda: self.create("score-users-1")),
            Step(19, "score-users-1 logs a Python traceback (read from Cloud Logging)",
                 lambda: self.traceback("score-users-1")),
            Step(22, "score-users-1 succeeds on retry (no deadline missed)",
                 lambda: jobs.complete_job(NAMESPACE, "score-users-1")),
            Step(26, "feature-build-1 finally completes, late",
                 lambda: jobs.complete_job(NAMESPACE, "feature-build-1")),
            Step(30, "feature-refresh-2 succeeds", lambda: self.succeed("feature-refresh-2")),
        ]  # fmt: skip

    def create(self, job: str) -> None:
        self.stack.kube.jobs.create_job(NAMESPACE, job, cronjob=job.rsplit("-", 1)[0])

    def history(self, batch: str, seconds: int) -> None:
        """Five earlier successful runs of `batch`, `seconds` long, minutes ago."""
        jobs = self.stack.kube.jobs
        now = datetime.now(UTC)
        for index in range(5):
            started = now - timedelta(minutes=10 - index)
            name = f"{batch}-0{index}"
            jobs.create_finished_job(
                NAMESPACE,
                name,
                cronjob=batch,
                start_time=started,
                completed_at=started + timedelta(seconds=seconds),
            )

    def submit(self, workflow: str) -> None:
        family = workflow.rsplit("-", 1)[0]
        self.stack.kube.workflows.submit(NAMESPACE, workflow, cron_workflow=family)

    def succeed(self, job: str) -> None:
        self.create(job)
        self.stack.kube.jobs.complete_job(NAMESPACE, job)

    def traceback(self, job: str) -> None:
        assert self.stack.logging is not None
        [pod] = self.stack.kube.jobs.pods_of(NAMESPACE, job)
        moment = datetime.now(UTC)
        self.stack.logging.add(
            *(
                container_entry(
                    namespace=NAMESPACE,
                    pod=pod["metadata"]["name"],
                    text=text,
                    timestamp=moment + timedelta(milliseconds=index),
                    job=job,
                    job_uid=pod["metadata"]["labels"]["controller-uid"],
                    cluster=CLUSTER,
                    project=PROJECT,
                )
                for index, text in enumerate(TRACEBACK)
            )
        )

    # -- running -----------------------------------------------------------------------------

    def run(self) -> int:
        start = self.launch()
        printer = SlackPrinter(self.stack.slack, self.console)
        printer.start()
        try:
            for step in self.script(start):
                self.wait_until(start.timestamp() + self.pace.at(step.offset))
                self.console.step(step.text)
                step.action()
            ends = time.time() + 20 * self.pace.scale + 5
            while not printer.complete() and time.time() < ends:
                self.wait_until(min(ends, time.time() + 0.1))
        finally:
            printer.stop()
        return self.finish(printer)

    def wait_until(self, epoch: float) -> None:
        """Sleep until `epoch`, noticing a dead daemon."""
        while (remaining := epoch - time.time()) > 0:
            if self.daemon is not None and not self.daemon.alive():
                tail = self.daemon.logs()[-3000:]
                raise DaemonExited(f"The daemon exited early; its log ends with:\n{tail}")
            time.sleep(min(remaining, 0.2))

    def finish(self, printer: SlackPrinter) -> int:
        assert self.daemon is not None
        seen = ", ".join(f"{count} {kind}" for kind, count in sorted(printer.kinds.items()))
        self.console.line()
        self.console.line(f"Slack received: {seen or 'nothing'}")
        if self.pace.linger > 0:
            self.console.line(
                f"The status page stays up {self.pace.linger:.0f} s more: {self.daemon.url}/"
            )
            self.wait_until(time.time() + self.pace.linger)
        if printer.complete():
            self.console.line("Every scripted alert arrived, once. Demo complete.")
            return 0
        self.console.line("Some scripted alerts did not arrive; the daemon's log ends with:")
        self.console.line(self.daemon.logs()[-3000:])
        return 1

    def close(self) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL) and the fakes."""
        daemon = self.daemon
        if daemon is not None and daemon.alive():
            try:
                daemon.terminate(timeout=12)
            except Exception:
                daemon.kill()
        self.stack.stop()


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted


def run_demo(*, fast: bool = False, keep: bool = False) -> int:
    """The `demo` subcommand: 0 when every scripted alert arrived, 130 when interrupted."""
    pace = FAST if fast else NORMAL
    console = Console(sys.stdout)
    workdir = Path(tempfile.mkdtemp(prefix="sla-monitor-demo-"))
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    # Ctrl-C must work even when the demo was started with SIGINT ignored (a background job
    # of a non-interactive shell inherits that, and Python then leaves it ignored).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    demo = Demo(pace, console, workdir)
    try:
        return demo.run()
    except (KeyboardInterrupt, Interrupted):
        console.line("\nInterrupted: stopping the daemon and the fakes.")
        return 130
    except DaemonExited as error:
        console.line(f"\n{error}")
        return 1
    finally:
        demo.close()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        if keep:
            console.line(f"Kept the demo's files in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
