"""What a reflector watches: one resource's API path, and how its bodies become items.

A reflector lists and watches any resource through the same endpoints
(`/apis/{group}/{version}[/namespaces/{ns}]/{plural}`, or `/api/v1/...` for the core
group), so batch/v1 Jobs, Argo Workflows and Job pods share one list/watch/relist
implementation; only the decoding differs. A `Codec` is that difference: typed
projections of a list page and a watch event (the fast path), reductions of one object
to an item (a frozen value with uid, namespace and name), from a projection, raw bytes
or a parsed dict (the slow paths, for an object that does not fit), how a new copy of an
item settles against the one delivered before (from the little the reflector keeps of
that one: not the item itself, see `Codec.settle`), and the item standing for an object
known only by its identity (`Codec.bare`, for one missing from a relist). Every
reduction raises `MalformedRun` for an object that cannot be an item.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import msgspec
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi
from msgspec import Raw

from monitor.core.facts import JobSeen
from monitor.sources.kube.decode import (
    ListMetadata,
    ObjectMetadata,
    decode_job_event,
    decode_job_page,
)
from monitor.sources.kube.reduce import (
    MalformedRun,
    reduce_document,
    reduce_job,
    reduce_raw,
    settle_job,
)


class Item(Protocol):
    """What a reflector keeps of one object."""

    @property
    def uid(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...


ItemT = TypeVar("ItemT", bound=Item)


class Document(Protocol):
    """A projected object: what the reflector reads itself is its metadata."""

    @property
    def metadata(self) -> ObjectMetadata | None: ...


DocumentT = TypeVar("DocumentT", bound=Document)


class Page(Protocol[DocumentT]):
    @property
    def metadata(self) -> ListMetadata | None: ...
    @property
    def items(self) -> list[DocumentT] | None: ...


class Event(Protocol[DocumentT]):  # type: ignore[misc]
    @property
    def type(self) -> str: ...
    @property
    def object(self) -> DocumentT: ...


def _newest(kept: Any, seen: ItemT) -> tuple[ItemT, Hashable | None]:
    return seen, None


def bare_job(known: Item) -> JobSeen:
    """The `JobSeen` standing for a run known only by its uid, namespace and name."""
    return JobSeen(uid=known.uid, namespace=known.namespace, name=known.name)


@dataclass(frozen=True)
class Codec(Generic[DocumentT, ItemT]):
    """How one resource's JSON becomes items (see the module docstring)."""

    decode_page: Callable[[bytes], Page[DocumentT]]
    decode_event: Callable[[bytes], Event[DocumentT]]
    reduce_document: Callable[[DocumentT], ItemT]
    reduce_raw: Callable[[bytes | Raw], ItemT]
    reduce_mapping: Callable[[Any], ItemT]
    #: An object known only by its identity (what the reflector remembers of one it
    #: delivered) -> an item with that uid, namespace and name, whose other fields mean
    #: nothing: what a relist reports as vanished.
    bare: Callable[[Item], ItemT]
    #: (kept, new copy) -> (what to deliver, what to keep of it): `kept` is what this
    #: returned for the copy delivered before, None if there was none. The reflector keeps
    #: only that part of a delivered item (it must be immutable), so it is all a new copy
    #: can settle against: e.g. a Job's decided outcome never changes. Default: the new
    #: copy, keeping nothing.
    settle: Callable[[Any, ItemT], tuple[ItemT, Hashable | None]] = _newest


def codec_of(
    document: type[Any],
    page: type[Any],
    event: type[Any],
    reduce: Callable[[Any], ItemT],
    settle: Callable[[Any, ItemT], tuple[ItemT, Hashable | None]] = _newest,
) -> Codec[Any, ItemT]:
    """A codec from msgspec structs for one object, a list page of them and a watch event
    carrying one, and the reduction of a projected object: the slow paths (raw bytes, a
    parsed dict) decode into the same projection and report misfits as `MalformedRun`;
    the bare item is the reduction of an object with nothing but that identity."""
    one = msgspec.json.Decoder(document)

    def from_raw(raw: bytes | Raw) -> ItemT:
        try:
            return reduce(one.decode(raw))
        except msgspec.DecodeError as error:
            raise MalformedRun(str(error)) from error

    def from_mapping(obj: Any) -> ItemT:
        try:
            return reduce(msgspec.convert(obj, document))
        except msgspec.DecodeError as error:
            raise MalformedRun(str(error)) from error

    def bare(known: Item) -> ItemT:
        identity = {"uid": known.uid, "namespace": known.namespace, "name": known.name}
        return from_mapping({"metadata": identity})

    return Codec(
        decode_page=msgspec.json.Decoder(page).decode,
        decode_event=msgspec.json.Decoder(event).decode,
        reduce_document=reduce,
        reduce_raw=from_raw,
        reduce_mapping=from_mapping,
        bare=bare,
        settle=settle,
    )


@dataclass(frozen=True)
class WatchedResource(Generic[ItemT]):
    """A listable, watchable resource and how its objects become items."""

    noun: str  # "Job": how log lines name one object
    group: str  # "" for the core group
    version: str
    plural: str
    codec: Codec[Any, ItemT]
    label_selector: str | None = None  # only objects with these labels are listed

    @property
    def qualified(self) -> str:
        """`jobs.batch`: how RBAC and the API server's messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def lister(self, api_client: ApiClient, namespace: str | None) -> Callable[..., Any]:
        """The client call that lists (or, with `watch=True`, watches) it in one scope."""
        group, version, plural = self.group, self.version, self.plural
        if not group:  # the core group has its own paths: only pods are watched there
            core = CoreV1Api(api_client)
            if plural != "pods":
                raise ValueError(f"core resource {plural!r} is not supported")
            if namespace is None:
                return core.list_pod_for_all_namespaces
            return lambda **kwargs: core.list_namespaced_pod(namespace, **kwargs)
        custom = CustomObjectsApi(api_client)
        if namespace is None:
            return lambda **kwargs: custom.list_cluster_custom_object(
                group, version, plural, **kwargs
            )
        return lambda **kwargs: custom.list_namespaced_custom_object(
            group, version, namespace, plural, **kwargs
        )


JOBS: WatchedResource[JobSeen] = WatchedResource(
    noun="Job",
    group="batch",
    version="v1",
    plural="jobs",
    codec=Codec(
        decode_page=decode_job_page,
        decode_event=decode_job_event,
        reduce_document=reduce_document,
        reduce_raw=reduce_raw,
        reduce_mapping=reduce_job,
        bare=bare_job,
        settle=settle_job,
    ),
)
