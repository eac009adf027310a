"""What a reflector watches: one resource's API path, and how its bodies become runs.

A reflector lists and watches any resource through the same generic endpoints
(`/apis/{group}/{version}[/namespaces/{ns}]/{plural}`), so batch/v1 Jobs and Argo
Workflows share one list/watch/relist implementation; only the decoding differs. A
`RunCodec` is that difference: typed projections of a list page and a watch event (the
fast path), and reductions of one object, from a projection, raw bytes or a parsed dict
(the slow paths, for an item that does not fit). Every reduction raises `MalformedRun`
for an object that cannot be a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from msgspec import Raw

from monitor.core.facts import JobSeen
from monitor.sources.kube.decode import (
    ListMetadata,
    ObjectMetadata,
    decode_job_event,
    decode_job_page,
)
from monitor.sources.kube.reduce import reduce_document, reduce_job, reduce_raw


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


@dataclass(frozen=True)
class RunCodec(Generic[DocumentT]):
    """How one resource's JSON becomes `JobSeen` facts (see the module docstring)."""

    decode_page: Callable[[bytes], Page[DocumentT]]
    decode_event: Callable[[bytes], Event[DocumentT]]
    reduce_document: Callable[[DocumentT], JobSeen]
    reduce_raw: Callable[[bytes | Raw], JobSeen]
    reduce_mapping: Callable[[Any], JobSeen]


@dataclass(frozen=True)
class WatchedResource:
    """A listable, watchable resource whose objects are runs."""

    noun: str  # "Job": how log lines name one object
    group: str
    version: str
    plural: str
    codec: RunCodec[Any]

    @property
    def qualified(self) -> str:
        """`jobs.batch`: how RBAC and the API server's messages name the resource."""
        return f"{self.plural}.{self.group}"


JOBS = WatchedResource(
    noun="Job",
    group="batch",
    version="v1",
    plural="jobs",
    codec=RunCodec(
        decode_page=decode_job_page,
        decode_event=decode_job_event,
        reduce_document=reduce_document,
        reduce_raw=reduce_raw,
        reduce_mapping=reduce_job,
    ),
)
