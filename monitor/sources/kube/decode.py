"""Typed projections of the Kubernetes wire format: only what reducing a Job needs.

A 100k-Job list is ~180 MB of JSON. Decoding it into dicts builds every field of every
pod template; these `msgspec` structs keep only the fields `reduce` reads and skip
the rest while parsing, which is several times faster and lighter.

A list page is decoded in one step with every item projected; only if that fails is it
decoded again in two steps — the envelope with each item kept as raw bytes, then each
item on its own — so one malformed Job is logged and skipped without losing its page.
A watch event is decoded in one step as an event carrying a Job; one that does not fit
(an ERROR's Status, a malformed object) is handled by the caller's slow path.

Fields whose type the reduction checks itself (conditions, owner references) are typed
`Any` on purpose: an oddly shaped condition nobody reads must not make a Job malformed.
Structs are `gc=False`: decoded JSON cannot hold reference cycles.
"""

from __future__ import annotations

from typing import Any

import msgspec

DecodeError = msgspec.DecodeError  # ValidationError is a subclass


class OwnerReference(msgspec.Struct, rename="camel", gc=False):
    kind: Any = None
    name: Any = None
    controller: Any = None
    uid: Any = None
    api_version: Any = None


class ObjectMetadata(msgspec.Struct, rename="camel", gc=False):
    uid: str | None = None
    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    resource_version: Any = None
    creation_timestamp: str | None = None
    owner_references: list[OwnerReference | None] | None = None


class JobCondition(msgspec.Struct, rename="camel", gc=False):
    type: Any = None
    status: Any = None
    reason: Any = None
    message: Any = None
    last_transition_time: Any = None


class JobStatus(msgspec.Struct, rename="camel", gc=False):
    conditions: list[JobCondition | None] | None = None
    start_time: str | None = None
    completion_time: str | None = None


class JobDocument(msgspec.Struct, gc=False):
    """A batch/v1 Job, projected."""

    metadata: ObjectMetadata | None = None
    status: JobStatus | None = None


class ListMetadata(msgspec.Struct, rename="camel", gc=False):
    resource_version: Any = None
    continue_: Any = msgspec.field(default=None, name="continue")


class ListPage(msgspec.Struct, gc=False):
    """A list response: its metadata, and each item still undecoded."""

    metadata: ListMetadata | None = None
    items: list[msgspec.Raw] | None = None


class JobPage(msgspec.Struct, gc=False):
    """A list response with every item projected: the fast path for a well-formed page."""

    metadata: ListMetadata | None = None
    items: list[JobDocument] | None = None


class JobEvent(msgspec.Struct, gc=False):
    """A watch event whose object is a Job (ADDED/MODIFIED/DELETED) or a BOOKMARK."""

    type: str
    object: JobDocument


_page_decoder = msgspec.json.Decoder(ListPage)
_job_page_decoder = msgspec.json.Decoder(JobPage)
_job_decoder = msgspec.json.Decoder(JobDocument)
_event_decoder = msgspec.json.Decoder(JobEvent)

decode_page = _page_decoder.decode
decode_job_page = _job_page_decoder.decode
decode_job = _job_decoder.decode
decode_job_event = _event_decoder.decode


def job_from_mapping(obj: Any) -> JobDocument:
    """The projection of an already-parsed Job (a dict), with the same checks as decoding."""
    return msgspec.convert(obj, JobDocument)
