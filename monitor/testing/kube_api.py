"""A loopback Kubernetes API server for tests and `sla-monitor demo`.

Real HTTP on 127.0.0.1, spoken to by the real `kubernetes` client through a kubeconfig
this fake writes. It serves Jobs, Pods (+ `log`), Events, ConfigMaps, Leases, Argo
Workflows (the CRD's objects) and discovery from an etcd-like store (`kube_store`), with
paged lists, chunked watches, bookmarks and 410 Expired (`kube_http`), an optional bearer
token and RBAC (`kube_rbac`), and controller-like hooks (`kube_workloads` for Jobs,
`argo_workflows` for Workflows). The misbehaviour hooks — 5xx for a
while, dropped or silent watches, compaction, stop and restart on the same port — are
what a reflector must survive.

    with FakeKubeApi() as kube:
        api = kube.api_client()
        kube.jobs.create_job("ml-batch", "daily-1", cronjob="daily")
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from monitor.testing.argo_workflows import WorkflowController
from monitor.testing.kube_http import KubeRequestHandler, ServerControls, WatchStream
from monitor.testing.kube_rbac import Authorizer, RequestAttributes, rules_from_yaml
from monitor.testing.kube_store import RESOURCES_BY_NAME, JsonObject, KubeStore
from monitor.testing.kube_workloads import JobController

DEFAULT_USER = "system:serviceaccount:monitoring:sla-monitor"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class FakeKubeApi:
    """The fake API server; state (objects, history) survives `stop()`/`start()`."""

    def __init__(
        self,
        *,
        port: int = 0,
        token: str | None = None,
        rbac_yaml: Sequence[str] | None = None,
        user: str = DEFAULT_USER,
        bookmark_interval: float = 1.0,
        default_watch_timeout: float = 1800.0,
        max_history: int = 500_000,
    ) -> None:
        self.store = KubeStore(max_history=max_history)
        self.jobs = JobController(self.store)
        self.workflows = WorkflowController(self.store)
        self.controls = ServerControls()
        self.token = token
        self.authorizer = (
            Authorizer(rules_from_yaml(rbac_yaml), user) if rbac_yaml is not None else None
        )
        self.bookmark_interval = bookmark_interval
        self.default_watch_timeout = default_watch_timeout
        self.requests: list[RequestAttributes] = []
        self.denied: list[RequestAttributes] = []  # answered 403 by the authorizer
        self.stopping = False
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._watches: set[WatchStream] = set()
        self._serving_seconds = 0.0
        self.last_bookmark = 0  # highest resourceVersion sent in a BOOKMARK

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> FakeKubeApi:
        handler = type("BoundKubeRequestHandler", (KubeRequestHandler,), {"fake": self})
        self.stopping = False
        self._server = _Server(("127.0.0.1", self._port), handler)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every connection (watches end without a terminator)."""
        if self._server is None:
            return
        self.stopping = True
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        with self.store.changed:
            self.store.changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> FakeKubeApi:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def kubeconfig(self) -> dict[str, Any]:
        user: dict[str, Any] = {"token": self.token} if self.token else {}
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": user}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": "default"},
                }
            ],
            "current-context": "fake",
        }

    def write_kubeconfig(self, path: Path | str) -> Path:
        target = Path(path)
        target.write_text(yaml.safe_dump(self.kubeconfig()))
        return target

    def api_client(self) -> Any:
        """A real `kubernetes.client.ApiClient` pointed at this fake."""
        from kubernetes import config

        return config.new_client_from_config_dict(self.kubeconfig())  # type: ignore[no-untyped-call]

    # -- bookkeeping used by the HTTP handler -------------------------------------------
    def track_connection(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def track_watch(self, stream: WatchStream, open_: bool) -> None:
        with self._lock:
            if open_:
                self._watches.add(stream)
            else:
                self._watches.discard(stream)

    def record(self, request: RequestAttributes) -> None:
        with self._lock:
            self.requests.append(request)

    def note_bookmark(self, resource_version: int) -> None:
        with self._lock:
            self.last_bookmark = max(self.last_bookmark, resource_version)

    def add_serving_time(self, seconds: float) -> None:
        with self._lock:
            self._serving_seconds += seconds

    @property
    def serving_seconds(self) -> float:
        """CPU time the fake's handler threads spent answering (for benchmarks)."""
        with self._lock:
            return self._serving_seconds

    @property
    def open_watches(self) -> int:
        with self._lock:
            return len(self._watches)

    # -- misbehaviour hooks ---------------------------------------------------------------
    def fail_requests(
        self,
        code: int = 503,
        *,
        seconds: float | None = None,
        count: int | None = None,
        path: str | None = None,
    ) -> None:
        """Answer every request (or those whose path contains `path`) with `code` for
        `seconds`, or for the next `count` requests."""
        with self.controls.lock:
            self.controls.error_path = path
            self.controls.error_code = code
            self.controls.error_count = count
            self.controls.error_until = time.monotonic() + (seconds if seconds else 1e9)

    def heal(self) -> None:
        """Stop answering errors and release held watches."""
        with self.controls.lock:
            self.controls.error_code = 0
        self.hold_watches(False)

    def hold_watches(self, hold: bool = True) -> None:
        """Make the open watches silent (still open, no events, no bookmarks), or release.

        Watches opened later are not held: a client that gives up on a silent stream and
        reopens it gets its events.
        """
        with self._lock:
            for stream in self._watches:
                stream.held = hold
        with self.store.changed:
            self.store.changed.notify_all()

    def expire_on_request(self, enabled: bool = True) -> None:
        """Answer a too-old watch resourceVersion with HTTP 410 instead of an ERROR event."""
        self.controls.expired_on_request = enabled

    def expire_every_watch(self, enabled: bool = True) -> None:
        """Answer every watch with an in-stream 410 ERROR (a relist loop), or stop doing so."""
        self.controls.expire_every_watch = enabled

    def garble_watches(self, garbage: bytes = b"zz\r\n\x00\xff{not json\r\n") -> int:
        """Write `garbage` raw into every open watch (breaking its framing) and end it."""
        with self._lock:
            streams = list(self._watches)
        for stream in streams:
            stream.garbage = garbage
        with self.store.changed:
            self.store.changed.notify_all()
        return len(streams)

    def drop_watches(self) -> int:
        """Cut every open watch mid-stream; returns how many were cut."""
        with self._lock:
            streams = list(self._watches)
        for stream in streams:
            stream.drop()
        with self.store.changed:
            self.store.changed.notify_all()
        return len(streams)

    def compact(self) -> None:
        """Forget history: watches and `continue` tokens from before now answer 410."""
        self.store.compact()

    def wait_for_watches(self, count: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.open_watches >= count:
                return True
            time.sleep(0.01)
        return False

    # -- direct object access (no HTTP) ---------------------------------------------------
    def create(self, group: str, resource: str, namespace: str, obj: JsonObject) -> JsonObject:
        rt = RESOURCES_BY_NAME[(group, resource)]
        return self.store.create(rt, namespace, obj).obj

    def get(self, group: str, resource: str, namespace: str, name: str) -> JsonObject:
        return self.store.get(resource, namespace, name).obj

    def put_raw(
        self, group: str, resource: str, namespace: str, name: str, obj: JsonObject
    ) -> None:
        """Store a (possibly malformed) object verbatim, as a watch event and in lists."""
        self.store.put_raw(RESOURCES_BY_NAME[(group, resource)], namespace, name, obj)
