"""`sla-monitor run`: the process around the pipeline — HTTP, leadership, reload, signals.

Without `--leader-elect` the pipeline starts at once. With it, a Lease decides: the
holder runs the pipeline, the others serve HTTP (ready, `leader: false`) and wait. The
config is re-read when its files change (or on SIGHUP); a bad config is reported (once,
as `monitor_degraded`) and the last good one keeps running. A change to how sources
connect (namespaces, Cloud Logging, Slack defaults, state) restarts the pipeline, which
resumes exactly from the saved state. SIGTERM/SIGINT: stop sources, deliver what is
queued for up to 10 s, save, exit 0.

A process that cannot read its state store at start (the API refuses or is down), or
whose saves have failed for `STATE_WRITE_LIMIT_SECONDS`, must not run without its memory
(it would repeat or forget alerts): it answers `/readyz` 503 saying why, and a leader
hands the Lease back so a healthy replica takes over. Without leader election it tries
to start again every `START_RETRY_SECONDS`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from kubernetes.client import ApiClient

from monitor.config.load import ConfigError, load_config
from monitor.config.model import Config
from monitor.config.watch import ConfigWatcher
from monitor.notify.transport import transport_from_env
from monitor.runtime.configmap_store import ConfigMapStore
from monitor.runtime.kube_client import api_client_from_environment
from monitor.runtime.leader import LeaderElector
from monitor.runtime.pipeline import Pipeline, Timings
from monitor.runtime.state import FileStore, StateStore, store_error_text
from monitor.web.metrics import Metrics
from monitor.web.server import StatusServer, StatusSnapshot, parse_listen

logger = logging.getLogger(__name__)

DEFAULT_STATE_FILE = ".sla-monitor/state.json"
#: The outbox lives beside the state: file `state-outbox.json`, ConfigMap `<name>-outbox`.
OUTBOX_SUFFIX = "-outbox"
STOP_BUDGET_SECONDS = 10.0
SIGNAL_POLL_SECONDS = 0.2
START_RETRY_SECONDS = 5.0
STATE_WRITE_LIMIT_SECONDS = 30.0


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def own_namespace() -> str:
    """Without $POD_NAMESPACE: the service account's namespace in a pod, else `default`."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class Options:
    config_path: str
    dry_run: bool = False
    listen: str = "0.0.0.0:8080"
    leader_elect: bool = False


def connection_settings(config: Config) -> tuple[object, ...]:
    """The parts of a config that a running pipeline cannot change in place."""
    return (config.kubernetes, config.argo, config.cloud_logging, config.slack, config.state)


def make_stores(config: Config, api_client: ApiClient) -> tuple[StateStore, StateStore]:
    """(engine state, Slack outbox): two documents, so a post rewrites only the outbox.

    The outbox is saved before the engine state that produced its alerts, so after any
    crash it is at least as new as the engine: replayed alerts are recognised by key.
    """
    if config.state.configmap:
        main = ConfigMapStore.from_reference(api_client, config.state.configmap)
        outbox = ConfigMapStore(api_client, main.namespace, f"{main.name}{OUTBOX_SUFFIX}")
        return main, outbox
    path = Path(config.state.file or DEFAULT_STATE_FILE)
    return FileStore(path), FileStore(path.with_name(f"{path.stem}{OUTBOX_SUFFIX}{path.suffix}"))


class Daemon:
    """One process. `run()` blocks until a stop signal and returns the exit code."""

    def __init__(self, options: Options, timings: Timings | None = None) -> None:
        self.options = options
        self._timings = timings or Timings()
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._pipeline: Pipeline | None = None
        self._elector: LeaderElector | None = None
        self._unfit: str | None = None  # why this process cannot run the pipeline now
        self._retry_at: float | None = None  # monotonic instant of the next start attempt
        self.metrics = Metrics()

    def run(self) -> int:
        config = self._load_initial()
        api_client = api_client_from_environment()
        self._api_client, self.config = api_client, config
        host, port = parse_listen(self.options.listen)
        server = StatusServer(self, self.metrics, host, port)
        server.start()
        logger.info("HTTP on %s (status page, /healthz, /readyz, /metrics)", server.url)
        watcher = ConfigWatcher(self.options.config_path, self._reload)
        watcher.start()
        self._install_signals(watcher)
        # Before the elector starts: it may win at once and set the gauge to 1.
        self.metrics.set_leader(not self.options.leader_elect)
        if self.options.leader_elect:
            namespace = os.environ.get("POD_NAMESPACE") or own_namespace()
            identity = os.environ.get("POD_NAME") or socket.gethostname()
            self._elector = LeaderElector(
                api_client, namespace, identity, self._become_leader, self._lose_leadership
            )
            self._elector.start()
        else:
            self._try_start()
        # Wake up regularly: the kernel may deliver a signal to another thread, and Python
        # runs handlers only when the main thread runs, so an untimed wait can miss SIGHUP.
        while not self._stop.wait(SIGNAL_POLL_SECONDS):
            self._check_state_store()
        logger.info("stopping")
        watcher.stop()
        with self._lock:
            if self._pipeline is not None:
                self._pipeline.stop(STOP_BUDGET_SECONDS - 1.0)
                self._pipeline = None
        if self._elector is not None:
            self._elector.release()
        server.stop()
        return 0

    def stop(self) -> None:
        self._stop.set()

    # -- startup ---------------------------------------------------------------------------

    def _load_initial(self) -> Config:
        try:
            config = load_config(self.options.config_path)
        except ConfigError as error:
            raise StartupError("\n".join(error.lines())) from error
        if self.options.leader_elect and not config.state.configmap:
            raise StartupError(
                "--leader-elect needs the ConfigMap state store (state: {configmap: NS/NAME}): "
                "a new leader must see what the old one sent, and a file is not shared"
            )
        return config

    def _install_signals(self, watcher: ConfigWatcher) -> None:
        def stop(signum: int, _: FrameType | None) -> None:
            self._stop.set()

        def reload(signum: int, _: FrameType | None) -> None:
            watcher.trigger()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def _try_start(self) -> None:
        """Start the pipeline; if its state cannot be read, say so and retry later."""
        self._retry_at = None
        try:
            self._start_pipeline()
        except Exception:  # reported on /readyz, and retried
            self._retry_at = time.monotonic() + START_RETRY_SECONDS
            logger.error("retrying the start in %.0f s", START_RETRY_SECONDS)

    def _start_pipeline(self) -> None:
        """Start the pipeline (raising, with `_unfit` saying why, if it cannot start)."""
        with self._lock:
            if self._pipeline is not None or self._stop.is_set():
                return
            config = self.config
            transport = transport_from_env(
                os.environ,
                config.slack.token_env,
                dry_run=self.options.dry_run,
                token_file=config.slack.token_file,
            )
            stores = make_stores(config, self._api_client)
            pipeline = Pipeline(
                config,
                api_client=self._api_client,
                store=stores[0],
                outbox_store=stores[1],
                transport=transport,
                metrics=self.metrics,
                timings=self._timings,
            )
            try:
                pipeline.start()
            except Exception as error:
                self._unfit = f"cannot read its state: {store_error_text(error)}"
                logger.exception("the pipeline cannot start: it %s", self._unfit)
                raise
            self._unfit = None
            self._pipeline = pipeline

    def _check_state_store(self) -> None:
        """Retry a failed start when due; give up leading when saves keep failing."""
        if self._retry_at is not None and time.monotonic() >= self._retry_at:
            self._try_start()
        with self._lock:
            pipeline = self._pipeline
        if pipeline is None:
            return
        failure = pipeline.save_failure()
        if failure is None:
            self._unfit = None
            return
        since, error = failure
        if time.monotonic() - since < STATE_WRITE_LIMIT_SECONDS:
            return
        if self._unfit is None:
            logger.error(
                "saving the state has failed for %.0f s (%s)", STATE_WRITE_LIMIT_SECONDS, error
            )
        self._unfit = f"cannot save its state: {error}"
        if self._elector is not None and self._elector.is_leader:
            with self._lock:
                self._pipeline = None
            pipeline.stop(deposed=True)
            self._elector.step_down()

    # -- leadership ------------------------------------------------------------------------

    def _become_leader(self) -> None:
        self.metrics.set_leader(True)
        self._start_pipeline()

    def _lose_leadership(self) -> None:
        self.metrics.set_leader(False)
        with self._lock:
            pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.stop(deposed=True)

    # -- reload ----------------------------------------------------------------------------

    def _reload(self) -> None:
        try:
            config = load_config(self.options.config_path)
        except ConfigError as error:
            lines = tuple(error.lines())
            logger.error(
                "config reload failed; keeping the last good config:\n%s", "\n".join(lines)
            )
            self.metrics.config_reloaded(False)
            with self._lock:
                if self._pipeline is not None:
                    self._pipeline.reject(lines)
            return
        self.metrics.config_reloaded(True)
        logger.info("config reloaded: %d batches", len(config.batches))
        with self._lock:
            previous, self.config = self.config, config
            pipeline = self._pipeline
            if pipeline is None:
                return
            if connection_settings(previous) == connection_settings(config):
                pipeline.reload(config)
                return
            logger.info("connection settings changed: restarting the pipeline")
            self._pipeline = None
        pipeline.stop(STOP_BUDGET_SECONDS - 1.0)
        if self._elector is None or self._elector.is_leader:
            self._try_start()

    # -- status ----------------------------------------------------------------------------

    def status_snapshot(self) -> StatusSnapshot:
        with self._lock:
            pipeline = self._pipeline
        return self._as_served(pipeline.status_snapshot() if pipeline is not None else None)

    def readiness(self) -> StatusSnapshot:
        with self._lock:
            pipeline = self._pipeline
        return self._as_served(pipeline.readiness() if pipeline is not None else None)

    def _as_served(self, snapshot: StatusSnapshot | None) -> StatusSnapshot:
        """The pipeline's snapshot (None: no pipeline runs) with this process's own
        readiness applied: unfit to lead, or a standby follower."""
        unfit = self._unfit
        if unfit is not None:
            state = {"state": {"up": False, "detail": unfit}}
            if snapshot is not None:
                return replace(snapshot, ready=False, sources={**snapshot.sources, **state})
            return StatusSnapshot([], [], state, False, False, datetime.now(UTC))
        if snapshot is not None:
            return snapshot
        follower = self.options.leader_elect
        return StatusSnapshot(
            batches=[],
            history=[],
            sources={},
            leader=False,
            ready=follower,
            generated_at=datetime.now(UTC),
        )
