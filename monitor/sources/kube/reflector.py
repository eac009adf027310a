"""List-then-watch for one resource in one scope, with client-go reflector semantics.

A paged list gives every object and a resourceVersion; a watch from it delivers every
later change. A dropped or timed-out watch resumes from the last resourceVersion seen
(events and bookmarks advance it); a 410 Expired — in the stream or on the request —
means that history is gone, so the reflector relists and diffs against what it
delivered: changed runs are re-emitted, vanished ones reported gone. Of what it delivered
it keeps only a compact memo per object (`Memo`: identity, a fingerprint, the codec's
kept part), not the item: 100,000 Jobs must not cost 100,000 items. Failures back off
(capped, jittered); a watch silent for longer than `silence_timeout` is presumed dead
and reopened. Expiries in a row back off too, and from the third on they are reported
as a failure: a relist loop must not look healthy.

Bodies are read as raw JSON, decoded into a typed projection of the few fields we use
(the resource's `RunCodec`) and reduced to facts at once: no client models are built.

For the source's watermark the reflector publishes how far it has got: `live` (a watch
is open), `confirmed` (that watch delivered something other than an error, so it works),
`waiting_since` (since when the reader has been blocked reading the stream with nothing
received — None while it is handling what it received, so a reader slowed by its
consumer, the GIL or a GC pause never looks like a quiet server) and `applied_version`
(the resourceVersion of the last change whose facts were emitted, as an integer when the
server's versions are).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import msgspec
import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from msgspec import Raw

from monitor.sources.base import Backoff, supervised
from monitor.sources.kube.decode import DecodeError, ListMetadata, decode_page
from monitor.sources.kube.plumbing import discard_response, fewer_collections, in_background
from monitor.sources.kube.reduce import MalformedRun, job_key
from monitor.sources.kube.resources import Item, ItemT, WatchedResource

logger = logging.getLogger(__name__)

ItemContra = TypeVar("ItemContra", bound=Item, contravariant=True)

#: Expiries in a row (no working watch in between) from which the scope is reported down.
EXPIRY_LOOP = 3


class Memo(msgspec.Struct, frozen=True, gc=False):
    """What a reflector remembers of an object it delivered: enough to tell whether a new
    copy repeats it (`fingerprint`), to settle that copy (`kept`, from `Codec.settle`) and
    to report it vanished (its identity: a memo is an `Item`). Every field is immutable,
    so no cycle can go through a memo (`gc=False`: no GC header, never traversed)."""

    uid: str
    namespace: str
    name: str
    fingerprint: int
    kept: Hashable | None = None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):  # e.g. labels in a read-only mapping
        return dict(value)
    raise NotImplementedError(f"cannot fingerprint {type(value).__name__}")


# Dicts (labels) with their keys sorted: equal items encode alike whatever the order.
_ENCODER = msgspec.json.Encoder(enc_hook=_plain, order="deterministic")


def fingerprint(item: Any) -> int:
    """A digest of every field of `item` (labels included: `hash(item)` leaves them out),
    equal for equal items within this process (times are decoded to UTC, so equal
    instants encode alike).

    64 bits (`hash` of bytes is SipHash, keyed per process): a changed copy is taken for
    the delivered one only if its digest equals that one's, about 1 in 2**64 per change;
    even at a million changes a day that is once in ~10**13 days. Nothing is persisted,
    so a per-process key is enough.
    """
    return hash(_ENCODER.encode(item))


class ReflectorSink(Protocol[ItemContra]):
    """Where a reflector reports; implemented by the source that owns it."""

    lock: threading.RLock

    def emit(self, item: ItemContra) -> None:
        """A new or changed object."""

    def vanished(self, item: ItemContra) -> None:
        """An object deleted (after its last state was emitted: `item` is that state) or
        missing from a relist (`item` is the codec's bare item: only its uid, namespace
        and name mean anything)."""

    def contact(self, ok: bool, detail: str = "") -> None:
        """A request succeeded or failed."""


@dataclass(frozen=True)
class ReflectorSettings:
    page_size: int = 500
    connect_timeout: float = 10.0
    list_timeout: float = 120.0
    silence_timeout: float = 70.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    watch_seconds: tuple[int, int] = (300, 600)
    prefetch_pages: bool = True
    relax_gc_while_listing: bool = True


class WatchExpired(Exception):
    """The resourceVersion we resume from is older than the server's history."""


class Reflector(Generic[ItemT]):
    """Keeps one scope's objects of one resource delivered to `sink`; `run` loops until
    `stopped` is set (and raises only on a bug, for the supervisor to restart it)."""

    def __init__(
        self,
        api_client: ApiClient,
        resource: WatchedResource[ItemT],
        namespace: str | None,
        sink: ReflectorSink[ItemT],
        settings: ReflectorSettings,
        stopped: threading.Event,
        rng: random.Random,
    ) -> None:
        self.namespace = namespace
        self.resource = resource
        self.scope = f'namespace "{namespace}"' if namespace else "all namespaces"
        self.name = f"{resource.plural}/{namespace or '*'}"
        self._list = resource.lister(api_client, namespace)
        self._codec = resource.codec
        self._sink = sink
        self._settings = settings
        self._stopped = stopped
        self._rng = rng
        self._known: dict[str, Memo] = {}  # by uid: what was delivered (see `Memo`)
        self._namespaces: dict[str, str] = {}  # one copy of each namespace name for memos
        self._response: Any = None
        self.synced = False  # one full list delivered
        self.resource_version = ""  # where a resumed watch would start
        self.live = False  # a watch is open
        self.confirmed = False  # ... and has delivered a line that is not an error
        self.waiting_since: float | None = None  # see the module docstring
        self.applied_version: int | None = None  # see the module docstring
        self.expired_in_a_row = 0
        self.skipped = 0  # malformed objects and watch lines skipped
        # Counters for metrics; written only by this reflector's thread.
        self.relists = 0  # full lists started (the first one included)
        self.watch_restarts = 0  # watch streams reopened (opened, not tried) since a list
        self._watched_since_list = False

    # -- loop -------------------------------------------------------------------------
    def run(self) -> None:
        backoff = Backoff(self._settings.backoff_initial, self._settings.backoff_max, self._rng)
        expiries = Backoff(self._settings.backoff_initial, self._settings.backoff_max, self._rng)
        while not self._stopped.is_set():
            verb = "list"
            try:
                if not self.resource_version:
                    self._relist()
                    backoff.reset()
                verb = "watch"
                if self._watch(self.resource_version):
                    backoff.reset()
                else:
                    self._stopped.wait(backoff.next_delay())
                if not self.expired_in_a_row:
                    expiries.reset()
            except WatchExpired:
                self._expired(verb, expiries)
            except ApiException as error:
                if error.status == 410:
                    self._expired(verb, expiries)
                    continue
                self._api_failure(error, verb)
                self._stopped.wait(backoff.next_delay())
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
                if self._stopped.is_set():
                    break
                logger.warning(
                    "Kubernetes %s of %s on %s failed: %r",
                    verb,
                    self.resource.plural,
                    self.scope,
                    error,
                )
                self._sink.contact(False, f"{verb} {self.resource.qualified}: {error!r}")
                self._stopped.wait(backoff.next_delay())

    def recover(self) -> None:
        """Start over with a relist after `run` raised (what was delivered is kept, so the
        relist reports only what changed or vanished meanwhile)."""
        self.live = self.confirmed = False
        self.resource_version = ""
        self.applied_version = None

    def _expired(self, verb: str, expiries: Backoff) -> None:
        """History is gone: relist; waits grow when it keeps happening, and a loop of
        expiries is reported as a failure (the watermark is frozen meanwhile)."""
        self.resource_version = ""
        self.expired_in_a_row += 1
        if self.expired_in_a_row >= EXPIRY_LOOP:
            detail = (
                f"{self.resource.plural} {verb} on {self.scope} expired "
                f"{self.expired_in_a_row} times in a row (relisting in a loop)"
            )
            logger.warning("%s", detail)
            self._sink.contact(False, detail)
        else:
            logger.info(
                "%s %s on %s expired (410); relisting", self.resource.noun, verb, self.scope
            )
        if self.expired_in_a_row > 1:
            self._stopped.wait(expiries.next_delay())

    def _reached(self) -> None:
        """A request succeeded: reachable, unless the scope is stuck relisting."""
        if self.expired_in_a_row < EXPIRY_LOOP:
            self._sink.contact(True)

    def _api_failure(self, error: ApiException, verb: str) -> None:
        status = error.status or 0
        detail = _status_message(error)
        qualified = self.resource.qualified
        if status == 404 and self.resource.group != "batch":
            logger.error(
                "Kubernetes API does not serve %s (404): is its CRD installed? Deadlines wait "
                "until it is listed (or disable it in the config). Server said: %s",
                qualified,
                detail,
            )
            self._sink.contact(False, f"404 {verb} {qualified}: not served (CRD missing?)")
        elif status in (401, 403):
            needed = "a ClusterRole" if self.namespace is None else f"a Role in {self.namespace}"
            logger.error(
                "Kubernetes API denied %s on %s in %s (%s %s): the monitor's service "
                "account needs verbs list and watch on resource %s in API group %s (%s). "
                "Server said: %s",
                verb,
                qualified,
                self.scope,
                status,
                error.reason,
                self.resource.plural,
                self.resource.group,
                needed,
                detail,
            )
            self._sink.contact(False, f"{status} {verb} {qualified} in {self.scope}: {detail}")
        else:
            logger.warning(
                "Kubernetes %s of %s on %s failed: %s %s",
                verb,
                self.resource.plural,
                self.scope,
                status,
                detail,
            )
            self._sink.contact(False, f"{status} {verb} {qualified}: {detail}")

    def stop(self) -> None:
        """Unblock a read in progress (called from another thread).

        The stream may end on its own meanwhile; urllib3 then refuses the shutdown
        (ValueError), which is fine: nothing is blocked any more.
        """
        response = self._response
        if response is not None:
            shutdown = getattr(response, "shutdown", None)
            if shutdown is not None:
                with contextlib.suppress(ValueError, OSError):
                    shutdown()

    # -- list -------------------------------------------------------------------------
    def _call(self, **kwargs: Any) -> Any:
        if self.resource.label_selector is not None:
            kwargs["label_selector"] = self.resource.label_selector
        return self._list(**kwargs)

    def current_version(self, read_timeout: float = 5.0) -> int | None:
        """The collection's resourceVersion now (a one-item list: a consistent read), as an
        integer; None when the server's versions are not integers. Raises on failure.

        Every change committed before this call has a version at most the answer's.
        """
        response = self._call(
            limit=1,
            _preload_content=False,
            _request_timeout=(self._settings.connect_timeout, read_timeout),
        )
        try:
            body = response.data
        finally:
            response.release_conn()
        metadata = decode_page(body).metadata
        return _integer(metadata.resource_version if metadata else None)

    def _open_page(self, token: str | None) -> Any:
        """Request one list page; returns once the answer's headers are in."""
        kwargs: dict[str, Any] = {"limit": self._settings.page_size}
        if token:
            kwargs["_continue"] = token
        return self._call(
            _preload_content=False,
            _request_timeout=(self._settings.connect_timeout, self._settings.list_timeout),
            **kwargs,
        )

    def _relist(self) -> str:
        """Deliver a full paged list and diff it against what was delivered before.

        With `prefetch_pages`, the next page is requested in the background before this
        one is decoded, so the server prepares it while we work. Only the request is in
        the background: reading a body there would fight this thread for the GIL at
        every socket read (measured slower than no prefetch at all).
        """
        self.relists += 1
        self._watched_since_list = False
        listed: set[str] = set()
        relax = fewer_collections() if self._settings.relax_gc_while_listing else nullcontext()
        with relax:
            resource_version = self._deliver_pages(listed)
        if not resource_version:
            raise ValueError("the Job list carried no resourceVersion")
        with self._sink.lock:
            for uid in [uid for uid in self._known if uid not in listed]:
                self._sink.vanished(self._codec.bare(self._known.pop(uid)))
            self.applied_version = _integer(resource_version)
        self.synced = True
        self.resource_version = resource_version
        return resource_version

    def _deliver_pages(self, listed: set[str]) -> str:
        """Deliver every page's Jobs, adding their uids to `listed`; the list's version."""
        resource_version = ""
        upcoming: Future[Any] | None = None
        response = self._open_page(None)
        try:
            while True:
                try:
                    body = response.data
                finally:
                    response.release_conn()
                self._reached()
                metadata, seen_jobs = self._decode_page(body)
                if not resource_version and metadata.resource_version is not None:
                    resource_version = str(metadata.resource_version)
                token = str(metadata.continue_) if metadata.continue_ else None
                if token is not None and self._settings.prefetch_pages:
                    upcoming = in_background(self._open_page, token)
                with self._sink.lock:
                    for seen in seen_jobs:
                        listed.add(seen.uid)
                        self._deliver(seen)
                if token is None:
                    break
                if upcoming is not None:
                    response, upcoming = upcoming.result(), None
                else:
                    response = self._open_page(token)
        finally:
            if upcoming is not None:  # abandoned by an error: free its connection
                upcoming.add_done_callback(discard_response)
        return resource_version

    def _decode_page(self, body: bytes) -> tuple[ListMetadata, list[ItemT]]:
        """The page's metadata and its runs, reduced; malformed ones are logged and skipped.

        The whole page is decoded in one go; if any item does not fit the projection it
        is decoded again item by item, so only that item is lost.
        """
        try:
            page = self._codec.decode_page(body)
        except DecodeError:
            raw_page = decode_page(body)
            found = (self._reduce_raw(raw) for raw in raw_page.items or ())
            return raw_page.metadata or ListMetadata(), [s for s in found if s is not None]
        seen_jobs = []
        reduce = self._codec.reduce_document
        for document in page.items or ():
            try:
                seen_jobs.append(reduce(document))
            except MalformedRun as error:
                meta = document.metadata
                obj = {"metadata": msgspec.to_builtins(meta)} if meta is not None else None
                self._skip(obj, error)
        return page.metadata or ListMetadata(), seen_jobs

    # -- watch ------------------------------------------------------------------------
    def _watch(self, resource_version: str) -> bool:
        """Stream events until the watch ends; True if it delivered anything.

        A stream cut mid-way is a disconnect, not an unreachable server: the caller
        resumes from `self.resource_version` (after a backoff if nothing came through).
        """
        low, high = self._settings.watch_seconds
        response = self._call(
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=resource_version,
            timeout_seconds=self._rng.randint(low, high),
            _preload_content=False,
            _request_timeout=(self._settings.connect_timeout, self._settings.silence_timeout),
        )
        self._response = response
        if self._stopped.is_set():  # stop() ran before the response existed to be cut
            response.release_conn()
            return True
        if self._watched_since_list:
            self.watch_restarts += 1
        self._watched_since_list = True
        self._reached()
        self.waiting_since = time.monotonic()
        self.live = True
        delivered = False
        try:
            for lines in self._lines(response):
                with self._sink.lock:
                    for line in lines:
                        resource_version = self._event(line, resource_version)
                        delivered = True
                        if not self.confirmed:
                            self._confirm()
                    self.resource_version = resource_version
                    self.applied_version = _integer(resource_version)
                self.waiting_since = time.monotonic()
        except urllib3.exceptions.ReadTimeoutError:
            logger.warning(
                "%s watch on %s silent for %.0fs; reopening",
                self.resource.noun,
                self.scope,
                self._settings.silence_timeout,
            )
            return True
        except (urllib3.exceptions.HTTPError, OSError) as error:
            if not self._stopped.is_set():
                logger.info(
                    "%s watch on %s disconnected (%r); resuming",
                    self.resource.noun,
                    self.scope,
                    error,
                )
            return delivered
        finally:
            self.live = self.confirmed = False
            self.waiting_since = None
            self._response = None
            response.release_conn()
        return True

    def _lines(self, response: Any) -> Iterator[list[bytes]]:
        """Complete newline-terminated lines, grouped as they arrive from the stream.

        `waiting_since` is cleared the moment any bytes arrive, even part of a line: the
        caller sets it again once it has handled the lines and goes back to reading.
        """
        pending = b""
        for data in response.stream(amt=None, decode_content=False):
            self.waiting_since = None
            pending += data
            if b"\n" not in data:
                continue
            *complete, pending = pending.split(b"\n")
            yield [line for line in complete if line.strip()]

    def _confirm(self) -> None:
        """The open watch delivered a real line: it works, so an expiry loop is over."""
        self.confirmed = True
        if self.expired_in_a_row:
            looped = self.expired_in_a_row >= EXPIRY_LOOP
            self.expired_in_a_row = 0
            if looped:
                self._sink.contact(True)

    def _event(self, line: bytes, resource_version: str) -> str:
        """Apply one watch line; returns the resourceVersion to resume from after it."""
        try:
            event = self._codec.decode_event(line)
        except DecodeError:
            return self._unusual_event(line, resource_version)
        if event.type == "ERROR":
            return self._unusual_event(line, resource_version)
        meta = event.object.metadata
        new_version = _text_or_none(meta.resource_version if meta else None) or resource_version
        if event.type == "BOOKMARK":
            return new_version
        try:
            seen = self._codec.reduce_document(event.object)
        except MalformedRun:
            return self._unusual_event(line, resource_version)
        self._apply(event.type, seen)
        return new_version

    def _unusual_event(self, line: bytes, resource_version: str) -> str:
        """ERROR events and objects that do not fit the projection: parsed generically."""
        try:
            event = json.loads(line)
            kind, obj = event["type"], event["object"]
        except (ValueError, KeyError, TypeError, RecursionError):
            self.skipped += 1
            logger.warning(
                "skipping malformed %s watch line on %s: %.200r",
                self.resource.plural,
                self.scope,
                line,
            )
            return resource_version
        if kind == "ERROR":
            code = obj.get("code") if isinstance(obj, dict) else None
            if code == 410:
                raise WatchExpired
            raise ApiException(
                status=code or 500, reason=str(obj.get("message") if isinstance(obj, dict) else obj)
            )
        new_version = _resource_version(obj) or resource_version
        if kind == "BOOKMARK":
            return new_version
        seen = self._reduce(obj)
        if seen is not None:
            self._apply(kind, seen)
        return new_version

    def _apply(self, kind: str, seen: ItemT) -> None:
        if kind == "DELETED":
            last = self._deliver(seen, always=True)
            self._known.pop(seen.uid, None)
            self._sink.vanished(last)
        elif kind in ("ADDED", "MODIFIED"):
            self._deliver(seen)

    # -- delivery ---------------------------------------------------------------------
    def _reduce(self, obj: Any) -> ItemT | None:
        try:
            return self._codec.reduce_mapping(obj)
        except MalformedRun as error:
            self._skip(obj, error)
            return None

    def _reduce_raw(self, raw: Raw) -> ItemT | None:
        try:
            return self._codec.reduce_raw(raw)
        except MalformedRun as error:
            try:
                obj = json.loads(bytes(raw))
            except (ValueError, RecursionError):
                obj = None
            self._skip(obj, error)
            return None

    def _skip(self, obj: Any, error: MalformedRun) -> None:
        self.skipped += 1
        namespace, name, uid = job_key(obj)
        logger.warning(
            "skipping malformed %s %s/%s (uid %s): %s",
            self.resource.noun,
            namespace,
            name,
            uid,
            error,
        )

    def _deliver(self, seen: ItemT, always: bool = False) -> ItemT:
        """Emit `seen` (as the codec settles it) unless it repeats what was delivered;
        returns it as settled."""
        memo = self._known.get(seen.uid)
        seen, kept = self._codec.settle(memo.kept if memo is not None else None, seen)
        digest = fingerprint(seen)
        if memo is not None and digest == memo.fingerprint and not always:
            return seen
        self._sink.emit(seen)
        namespace = self._namespaces.setdefault(seen.namespace, seen.namespace)
        # Only once emitted: a failed emit is retried by a relist.
        self._known[seen.uid] = Memo(seen.uid, namespace, seen.name, digest, kept)
        return seen


def reader_threads(
    reflectors: Sequence[Reflector[ItemT]],
    stopped: threading.Event,
    on_crash: Callable[[Reflector[ItemT], BaseException], None],
    settings: ReflectorSettings,
    rng: random.Random,
) -> list[threading.Thread]:
    """One supervised daemon thread per reflector (not started): a reader that raises is
    logged, handed to `on_crash` after `recover()`, and restarted with backoff."""
    threads = []
    for reflector in reflectors:

        def crashed(error: BaseException, reflector: Reflector[ItemT] = reflector) -> None:
            reflector.recover()
            on_crash(reflector, error)

        body = supervised(
            reflector.run,
            f"{reflector.resource.noun} reader on {reflector.scope}",
            stopped,
            on_crash=crashed,
            backoff=Backoff(settings.backoff_initial, settings.backoff_max, rng),
        )
        name = f"kube-{reflector.resource.plural}-{reflector.namespace or 'all'}"
        threads.append(threading.Thread(target=body, name=name, daemon=True))
    return threads


def _resource_version(obj: Any) -> str | None:
    if isinstance(obj, dict):
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            return _text_or_none(meta.get("resourceVersion"))
    return None


def _integer(version: Any) -> int | None:
    """A resourceVersion as an integer (etcd's revision), None when it is not one."""
    if isinstance(version, str) and version.isdigit():
        return int(version)
    return None


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _status_message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or "")
        return str(body.get("message", error.reason))
    except (ValueError, AttributeError):
        return str(error.reason)
