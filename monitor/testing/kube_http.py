"""The fake API server's HTTP side: routing, verbs, lists, watches, pod logs, Status errors.

Requests are parsed the way the API server does (`/api/v1/...`, `/apis/GROUP/VERSION/...`,
optionally `namespaces/NS/`), authenticated (optional bearer token), recorded, authorized
(optional RBAC) and served from `KubeStore`. Watches are chunked HTTP/1.1 streams of one
JSON event per line; the server-side behaviour a reflector must survive is switchable
through `ServerControls` (5xx answers, held or dropped streams, 410 on the request).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from monitor.testing.kube_documents import discovery_document, json_patch, merge_patch
from monitor.testing.kube_rbac import RequestAttributes
from monitor.testing.kube_selectors import selector_predicate
from monitor.testing.kube_store import (
    RESOURCES_BY_PATH,
    ApiError,
    JsonObject,
    ResourceType,
    encode,
    expired,
)

if TYPE_CHECKING:
    from monitor.testing.kube_api import FakeKubeApi

_WATCH_BATCH = 2000
logger = logging.getLogger(__name__)


@dataclass(eq=False)
class WatchStream:
    """One open watch; `drop()` cuts it without the terminating chunk (a broken stream)."""

    connection: socket.socket
    dropped: bool = False
    held: bool = False  # open but silent: no events, no bookmarks
    garbage: bytes = b""  # written raw (breaking the chunked framing), then the stream ends

    def drop(self) -> None:
        self.dropped = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


@dataclass
class ServerControls:
    """Misbehaviour switches, set by the fake's test hooks."""

    error_code: int = 0
    error_until: float = 0.0
    error_count: int | None = None
    error_path: str | None = None  # only requests whose path contains this fail
    expired_on_request: bool = False
    expire_every_watch: bool = False  # a lagging watch cache: every watch gets a 410 ERROR
    errors_answered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def injected_error(self, path: str) -> int:
        with self.lock:
            if not self.error_code:
                return 0
            if self.error_path is not None and self.error_path not in path:
                return 0
            if self.error_count is not None:
                if self.error_count <= 0:
                    self.error_code = 0
                    return 0
                self.error_count -= 1
                self.errors_answered += 1
                return self.error_code
            if time.monotonic() < self.error_until:
                self.errors_answered += 1
                return self.error_code
            self.error_code = 0
            return 0


def _truthy(value: str | None) -> bool:
    return value in ("true", "1", "True")


class KubeRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver"
    fake: FakeKubeApi  # set on the subclass the fake creates

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # As the API server does: small watch chunks go out at once, not after the
        # client's delayed ACK (Nagle's algorithm would add up to ~40 ms per event).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fake.track_connection(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake.track_connection(self.connection, False)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- plumbing -------------------------------------------------------------------
    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_error(self, error: ApiError) -> None:
        self._send(error.code, encode(error.status()))

    def _drain_body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else {}
        except ValueError as error:
            raise ApiError(400, "BadRequest", f"invalid JSON body: {error}") from error

    def _handle(self, method: str) -> None:
        started = time.thread_time()
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        try:
            code = self.fake.controls.injected_error(parts.path)
            if code:
                self._drain_body()  # else the body is read as the next request
                reasons = {500: "InternalError", 403: "Forbidden"}
                raise ApiError(
                    code,
                    reasons.get(code, "ServiceUnavailable"),
                    "the server is currently unable to handle the request",
                )
            self._authenticate()
            discovery = discovery_document(parts.path)
            if discovery is not None:
                self._send(200, encode(discovery))
                return
            self._resource_request(method, parts.path, query)
        except ApiError as error:
            self._send_error(error)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as error:  # a bug in the fake must not hang the client
            logger.exception("fake API server failed on %s %s", method, self.path)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send_error(ApiError(500, "InternalError", f"fake server error: {error}"))
        finally:
            self.fake.add_serving_time(time.thread_time() - started)

    def _authenticate(self) -> None:
        token = self.fake.token
        if token is None:
            return
        if self.headers.get("Authorization") != f"Bearer {token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")

    # -- resources --------------------------------------------------------------------
    def _resource_request(self, method: str, path: str, query: dict[str, str]) -> None:
        rt, namespace, name, subresource = _parse_path(path)
        watch = _truthy(query.get("watch"))
        verb = {
            "GET": "get" if name else ("watch" if watch else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }[method]
        limit = int(query.get("limit") or 0) if verb == "list" else 0
        request = RequestAttributes(
            verb, rt.group, rt.resource, subresource, namespace, name, limit
        )
        self.fake.record(request)
        if self.fake.authorizer is not None:
            try:
                self.fake.authorizer.check(request)
            except ApiError:
                self.fake.denied.append(request)
                raise
        store = self.fake.store
        if subresource == "log" and rt.resource == "pods" and verb == "get":
            self._pod_log(namespace, name, query)
        elif subresource:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        elif verb == "watch":
            self._watch(rt, namespace, query)
        elif verb == "list":
            self._list(rt, namespace, query)
        elif verb == "get":
            self._send(200, store.get(rt.resource, namespace, name).raw)
        elif verb == "create":
            self._send(201, store.create(rt, namespace, self._object(rt)).raw)
        elif verb == "update":
            self._send(200, store.update(rt, namespace, name, self._object(rt)).raw)
        elif verb == "patch":
            self._patch(rt, namespace, name)
        elif verb == "delete":
            self._send(200, store.delete(rt, namespace, name).raw)
        else:
            raise ApiError(405, "MethodNotAllowed", f"{verb} is not supported by the fake")

    def _object(self, rt: ResourceType) -> JsonObject:
        body = self._body()
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", f"expected a {rt.kind} object")
        return body

    def _patch(self, rt: ResourceType, namespace: str, name: str) -> None:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        patch = self._body()
        current = copy.deepcopy(self.fake.store.get(rt.resource, namespace, name).obj)
        if content_type == "application/json-patch+json":
            patched = json_patch(current, patch)
            wanted = None
        elif content_type in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            if not isinstance(patch, dict):
                raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
            wanted = (patch.get("metadata") or {}).get("resourceVersion")
            patched = merge_patch(current, patch)
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, "
                "application/strategic-merge-patch+json",
            )
        patched.setdefault("metadata", {})["resourceVersion"] = (
            wanted if wanted is not None else current["metadata"]["resourceVersion"]
        )
        self._send(200, self.fake.store.update(rt, namespace, name, patched).raw)

    def _list(self, rt: ResourceType, namespace: str, query: dict[str, str]) -> None:
        store = self.fake.store
        limit = int(query.get("limit") or 0)
        token = query.get("continue")
        if token:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
                snapshot_id, start = int(decoded["s"]), int(decoded["i"])
            except (ValueError, KeyError, TypeError) as error:
                raise ApiError(400, "BadRequest", "invalid continue token") from error
            rv, items = store.recall_snapshot(snapshot_id, rt.resource)
        else:
            keep = selector_predicate(query.get("labelSelector"), query.get("fieldSelector"))
            rv, items = store.snapshot(rt.resource, namespace or None, keep)
            snapshot_id, start = 0, 0
        end = start + limit if limit else len(items)
        meta: JsonObject = {"resourceVersion": str(rv)}
        if end < len(items):
            if not snapshot_id:
                snapshot_id = store.remember_snapshot(rv, items)
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps({"s": snapshot_id, "i": end}).encode()
            ).decode()
            meta["remainingItemCount"] = len(items) - end
        body = b"".join(
            (
                b'{"kind":"',
                rt.kind.encode(),
                b'List","apiVersion":"',
                rt.api_version.encode(),
                b'","metadata":',
                encode(meta),
                b',"items":[',
                b",".join(stored.raw for stored in items[start:end]),
                b"]}",
            )
        )
        self._send(200, body)

    def _pod_log(self, namespace: str, name: str, query: dict[str, str]) -> None:
        pod = self.fake.store.get("pods", namespace, name).obj
        containers = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        container = query.get("container")
        if container is None:
            if len(containers) != 1:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(containers)}]",
                )
            container = containers[0]
        elif container not in containers:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        lines = self.fake.jobs.pod_log(namespace, name, container)
        if "tailLines" in query:
            tail = int(query["tailLines"])
            lines = lines[-tail:] if tail > 0 else []
        stamped = _truthy(query.get("timestamps"))
        text = "".join(
            (f"{_nano(moment)} {line}\n" if stamped else f"{line}\n") for moment, line in lines
        ).encode()
        if "limitBytes" in query:
            text = text[: int(query["limitBytes"])]
        self._send(200, text, "text/plain")

    # -- watch ------------------------------------------------------------------------
    def _watch(self, rt: ResourceType, namespace: str, query: dict[str, str]) -> None:
        store, controls = self.fake.store, self.fake.controls
        keep = selector_predicate(query.get("labelSelector"), query.get("fieldSelector"))
        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        timeout = float(query.get("timeoutSeconds") or self.fake.default_watch_timeout)
        deadline = time.monotonic() + timeout
        requested = query.get("resourceVersion") or "0"
        initial: list[bytes] = []
        if requested == "0":
            next_rv, items = store.snapshot(rt.resource, namespace or None, keep)
            initial = [_event_line("ADDED", stored.raw) for stored in items]
        else:
            next_rv = int(requested)
            if next_rv < store.floor(rt.resource) and controls.expired_on_request:
                raise expired(f"too old resource version: {next_rv} ({store.floor(rt.resource)})")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        stream = WatchStream(self.connection)
        self.fake.track_watch(stream, True)
        try:
            if controls.expire_every_watch:
                self._chunk(
                    _event_line("ERROR", encode(expired("too old resource version").status()))
                )
                self._chunk(b"")
                return
            for start in range(0, len(initial), _WATCH_BATCH):
                self._chunk(b"".join(initial[start : start + _WATCH_BATCH]))
            self._stream_events(rt, namespace, keep, bookmarks, deadline, next_rv, stream)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            self.fake.track_watch(stream, False)

    def _stream_events(
        self,
        rt: ResourceType,
        namespace: str,
        keep: Any,
        bookmarks: bool,
        deadline: float,
        next_rv: int,
        stream: WatchStream,
    ) -> None:
        store = self.fake.store
        interval = self.fake.bookmark_interval
        last_write = time.monotonic()
        while True:
            lines: list[bytes] = []
            with store.changed:
                while True:
                    if stream.dropped or self.fake.stopping:
                        self.close_connection = True
                        return
                    if stream.garbage:
                        self.wfile.write(stream.garbage)
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    now = time.monotonic()
                    if now >= deadline:
                        self._chunk(b"")
                        return
                    if not stream.held:
                        try:
                            events, current = store.events_after(rt.resource, next_rv, _WATCH_BATCH)
                        except ApiError as error:
                            lines.append(_event_line("ERROR", encode(error.status())))
                            break
                        for event in events:
                            next_rv = event.rv
                            obj = event.stored.obj
                            if namespace and obj.get("metadata", {}).get("namespace") != namespace:
                                continue
                            if keep(obj):
                                lines.append(_event_line(event.type, event.stored.raw))
                        if lines:
                            break
                        if not events and bookmarks and now - last_write >= interval:
                            next_rv = current
                            lines.append(_bookmark(rt, current))
                            self.fake.note_bookmark(current)
                            break
                        if events:
                            continue
                    wait = deadline - now
                    if bookmarks and not stream.held:
                        wait = min(wait, max(0.0, last_write + interval - now))
                    store.changed.wait(max(wait, 0.005))
            self._chunk(b"".join(lines))
            last_write = time.monotonic()
            if lines[-1].startswith(b'{"type":"ERROR"'):
                self._chunk(b"")
                return

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


def _event_line(kind: str, raw: bytes) -> bytes:
    return b'{"type":"%s","object":%s}\n' % (kind.encode(), raw)


def _bookmark(rt: ResourceType, rv: int) -> bytes:
    obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": {"resourceVersion": str(rv)}}
    return _event_line("BOOKMARK", encode(obj))


def _nano(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def _parse_path(path: str) -> tuple[ResourceType, str, str, str]:
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    rt = RESOURCES_BY_PATH.get((group, version, rest[0]))
    if rt is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    return rt, namespace, name, subresource
