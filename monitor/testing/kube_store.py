"""The fake API server's storage: objects, one resourceVersion counter, watch history.

Like etcd behind a real API server, every write bumps one global resourceVersion and
is appended to the resource's history, which watches replay from any retained
resourceVersion. History is bounded (and can be compacted on demand): a watch or a
paged list from before the retained window is answered 410 Expired, exactly the case
a reflector must survive. Each stored object keeps its JSON encoding so lists and
watches serve bytes without re-encoding.
"""

from __future__ import annotations

import base64
import bisect
import copy
import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    """One served resource: where it lives in the API and what its objects are called."""

    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`jobs.batch` or `pods`: how Status messages name a resource."""
        return f"{self.resource}.{self.group}" if self.group else self.resource


RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType("batch", "v1", "jobs", "Job"),
    ResourceType("batch", "v1", "cronjobs", "CronJob"),
    ResourceType("", "v1", "pods", "Pod"),
    ResourceType("", "v1", "events", "Event"),
    ResourceType("", "v1", "configmaps", "ConfigMap"),
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
    ResourceType("argoproj.io", "v1alpha1", "workflows", "Workflow"),  # Argo's CRD
)
RESOURCES_BY_PATH = {(rt.group, rt.version, rt.resource): rt for rt in RESOURCE_TYPES}
RESOURCES_BY_NAME = {(rt.group, rt.resource): rt for rt in RESOURCE_TYPES}


#: The API server refuses a ConfigMap whose data (binaryData decoded) exceeds 1 MiB.
CONFIGMAP_LIMIT = 1024 * 1024


def _check_size(rt: ResourceType, obj: JsonObject) -> None:
    """422 for a ConfigMap over `CONFIGMAP_LIMIT`, as the real API server answers."""
    if rt.kind != "ConfigMap":
        return
    size = sum(len(str(value).encode()) for value in (obj.get("data") or {}).values())
    for value in (obj.get("binaryData") or {}).values():
        try:
            size += len(base64.b64decode(str(value)))
        except ValueError:
            size += len(str(value))
    if size > CONFIGMAP_LIMIT:
        name = obj.get("metadata", {}).get("name", "")
        raise ApiError(
            422,
            "Invalid",
            f'ConfigMap "{name}" is invalid: []: Too long: must have at most '
            f"{CONFIGMAP_LIMIT} bytes",
        )


class ApiError(Exception):
    """An API failure answered as a real `Status` body."""

    def __init__(
        self, code: int, reason: str, message: str, details: JsonObject | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> JsonObject:
        body: JsonObject = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def rfc3339(moment: datetime) -> str:
    """Kubernetes' wire format for metav1.Time: whole seconds, UTC, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class StoredObject:
    obj: JsonObject
    raw: bytes


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    rv: int
    type: str
    stored: StoredObject


@dataclass
class _History:
    events: list[HistoryEvent] = field(default_factory=list)
    rvs: list[int] = field(default_factory=list)
    floor: int = 0  # watches from a resourceVersion below this answer 410


def _keep_all(obj: JsonObject) -> bool:
    return True


#: The predicate of a list with no selector (`KubeStore.snapshot` then skips calling it).
KEEP_ALL: Callable[[JsonObject], bool] = _keep_all


def encode(obj: JsonObject) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class KubeStore:
    """Thread-safe objects + history; `changed` wakes watchers on every write."""

    def __init__(self, max_history: int = 500_000) -> None:
        self.changed = threading.Condition()
        self._rv = 1
        self._objects: dict[str, dict[tuple[str, str], StoredObject]] = {
            rt.resource: {} for rt in RESOURCE_TYPES
        }
        self._history: dict[str, _History] = {rt.resource: _History() for rt in RESOURCE_TYPES}
        self._max_history = max_history
        self._snapshots: dict[int, tuple[int, list[StoredObject]]] = {}
        self._snapshot_ids = itertools.count(1)
        #: Each resource's keys in order, kept until a key comes or goes: a list (a progress
        #: probe asks for one item) must not sort 100,000 objects each time.
        self._order: dict[str, list[tuple[str, str]]] = {}

    # -- reads -------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        with self.changed:
            return self._rv

    def get(self, resource: str, namespace: str, name: str) -> StoredObject:
        with self.changed:
            stored = self._objects[resource].get((namespace, name))
        if stored is None:
            raise _not_found(resource, name)
        return stored

    def snapshot(
        self, resource: str, namespace: str | None, keep: Callable[[JsonObject], bool]
    ) -> tuple[int, list[StoredObject]]:
        """The matching objects in key order, and the resourceVersion they are current at."""
        with self.changed:
            rv = self._rv
            objects = self._objects[resource]
            order = self._order.get(resource)
            if order is None:
                order = self._order[resource] = sorted(objects)
            if namespace is not None:
                order = order[
                    bisect.bisect_left(order, (namespace, "")) : bisect.bisect_right(
                        order, (namespace, "\U0010ffff")
                    )
                ]
            chosen = [objects[key] for key in order]
        if keep is KEEP_ALL:
            return rv, chosen
        return rv, [s for s in chosen if keep(s.obj)]

    def remember_snapshot(self, rv: int, items: list[StoredObject]) -> int:
        """Keep a list snapshot for `continue` tokens (a few at a time, like etcd's window)."""
        with self.changed:
            snapshot_id = next(self._snapshot_ids)
            self._snapshots[snapshot_id] = (rv, items)
            while len(self._snapshots) > 16:
                del self._snapshots[min(self._snapshots)]
            return snapshot_id

    def recall_snapshot(self, snapshot_id: int, resource: str) -> tuple[int, list[StoredObject]]:
        with self.changed:
            found = self._snapshots.get(snapshot_id)
            if found is None or found[0] < self._history[resource].floor:
                raise expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                )
            return found

    def floor(self, resource: str) -> int:
        with self.changed:
            return self._history[resource].floor

    def events_after(self, resource: str, rv: int, limit: int) -> tuple[list[HistoryEvent], int]:
        """Events newer than `rv` (at most `limit`), and the current resourceVersion.

        Raises 410 when `rv` is older than the retained history. Caller holds `changed`.
        """
        history = self._history[resource]
        if rv < history.floor:
            raise expired(f"too old resource version: {rv} ({history.floor})")
        start = bisect.bisect_right(history.rvs, rv)
        return history.events[start : start + limit], self._rv

    # -- writes ------------------------------------------------------------------------
    def create(self, rt: ResourceType, namespace: str, obj: JsonObject) -> StoredObject:
        _check_size(rt, obj)
        with self.changed:
            meta = obj.setdefault("metadata", {})
            name = meta.get("name")
            if not name and meta.get("generateName"):
                name = meta["generateName"] + uuid.uuid4().hex[:5]
                meta["name"] = name
            if not isinstance(name, str) or not name:
                raise ApiError(422, "Invalid", f"{rt.kind} is invalid: metadata.name: Required")
            key = (namespace, name)
            if key in self._objects[rt.resource]:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{rt.qualified} "{name}" already exists',
                    {"name": name, "group": rt.group, "kind": rt.resource},
                )
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", rfc3339(datetime.now(UTC)))
            meta["generation"] = 1
            if rt.namespaced:
                meta["namespace"] = namespace
            return self._write(rt, key, obj, "ADDED")

    def update(self, rt: ResourceType, namespace: str, name: str, obj: JsonObject) -> StoredObject:
        """PUT semantics: a given metadata.resourceVersion must be current, else 409."""
        _check_size(rt, obj)
        with self.changed:
            key = (namespace, name)
            current = self._objects[rt.resource].get(key)
            if current is None:
                raise _not_found(rt.resource, name)
            meta = obj.setdefault("metadata", {})
            wanted = meta.get("resourceVersion")
            if wanted not in (None, "") and str(wanted) != current.obj["metadata"].get(
                "resourceVersion"
            ):
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                    {"name": name, "group": rt.group, "kind": rt.resource},
                )
            old_meta = current.obj.get("metadata", {})
            for kept in ("uid", "creationTimestamp", "namespace"):
                if kept in old_meta:
                    meta[kept] = old_meta[kept]
            meta["name"] = name
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
            return self._write(rt, key, obj, "MODIFIED")

    def modify(
        self, rt: ResourceType, namespace: str, name: str, change: Callable[[JsonObject], None]
    ) -> StoredObject:
        """Read-modify-write under the lock (what a controller's status update does)."""
        with self.changed:
            obj = copy.deepcopy(self.get(rt.resource, namespace, name).obj)
            change(obj)
            obj["metadata"].pop("resourceVersion", None)
            return self.update(rt, namespace, name, obj)

    def delete(self, rt: ResourceType, namespace: str, name: str) -> StoredObject:
        with self.changed:
            key = (namespace, name)
            current = self._objects[rt.resource].pop(key, None)
            if current is None:
                raise _not_found(rt.resource, name)
            self._order.pop(rt.resource, None)
            obj = copy.deepcopy(current.obj)
            self._rv += 1
            obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
            stored = StoredObject(obj, encode(obj))
            self._append(rt.resource, HistoryEvent(self._rv, "DELETED", stored))
            return stored

    def put_raw(self, rt: ResourceType, namespace: str, name: str, obj: JsonObject) -> None:
        """Store `obj` as is (only resourceVersion set when possible): for malformed objects."""
        with self.changed:
            key = (namespace, name)
            event = "MODIFIED" if key in self._objects[rt.resource] else "ADDED"
            self._write(rt, key, obj, event)

    def compact(self) -> None:
        """Forget all history: every older resourceVersion now answers 410."""
        with self.changed:
            for history in self._history.values():
                history.events.clear()
                history.rvs.clear()
                history.floor = self._rv
            self._snapshots.clear()
            self.changed.notify_all()

    def objects(self, resource: str) -> Iterable[StoredObject]:
        with self.changed:
            return list(self._objects[resource].values())

    def _write(
        self, rt: ResourceType, key: tuple[str, str], obj: JsonObject, event: str
    ) -> StoredObject:
        self._rv += 1
        if isinstance(obj.get("metadata"), dict):
            obj["metadata"]["resourceVersion"] = str(self._rv)
        obj.setdefault("kind", rt.kind)
        obj.setdefault("apiVersion", rt.api_version)
        stored = StoredObject(obj, encode(obj))
        if key not in self._objects[rt.resource]:
            self._order.pop(rt.resource, None)
        self._objects[rt.resource][key] = stored
        self._append(rt.resource, HistoryEvent(self._rv, event, stored))
        return stored

    def _append(self, resource: str, event: HistoryEvent) -> None:
        history = self._history[resource]
        history.events.append(event)
        history.rvs.append(event.rv)
        if len(history.events) > 2 * self._max_history:
            cut = len(history.events) - self._max_history
            history.floor = history.rvs[cut - 1]
            del history.events[:cut]
            del history.rvs[:cut]
        self.changed.notify_all()


def _not_found(resource: str, name: str) -> ApiError:
    rt = next(rt for rt in RESOURCE_TYPES if rt.resource == resource)
    return ApiError(
        404,
        "NotFound",
        f'{rt.qualified} "{name}" not found',
        {"name": name, "group": rt.group, "kind": resource},
    )
