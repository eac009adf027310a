"""Leader election on a coordination.k8s.io Lease, with the client library's elector.

Only the Lease holder runs the pipeline; the others wait, ready but idle. Timings are
client-go's usual ones (lease 15 s, renew deadline 10 s, retry 2 s), so a crashed leader
is replaced within about 20 s, and a leader that stops cleanly hands the Lease back
(`release`) so a follower takes over within one retry period. A leader that cannot do
its work (its `on_started` raises, or it calls `step_down`) hands the Lease back too, and
competes again only after a pause, so a healthy replica can take over meanwhile.

The library's `LeaseLock` is used through a subclass that fixes three things for a
daemon: it talks through our API client (not a process-wide default), every request is
bounded in time and a connection error is a failed attempt rather than an exception
(so a leader rides out an API server restart shorter than the renew deadline, as in
client-go, instead of being deposed at once, and a hung request cannot keep a deposed
leader believing it leads), and once released it never writes the Lease again (the
library's renew thread would otherwise take back the Lease it just handed over).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, cast

from kubernetes.client import ApiClient, CoordinationV1Api
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock
from urllib3.exceptions import HTTPError

logger = logging.getLogger(__name__)

LEASE_NAME = "sla-monitor"
#: Seconds one Lease request may take; well inside the renew deadline.
REQUEST_TIMEOUT = 5.0
# The library logs every retry of a follower at INFO; keep its warnings only.
logging.getLogger("leaderelection").setLevel(logging.WARNING)


class _UnreachableError:
    """What `LeaseLock.get` returns for a transport failure: no body, so no 404, so a retry."""

    body = None

    def __init__(self, error: Exception) -> None:
        self.reason = str(error)


class BoundedLeaseLock(LeaseLock):
    """The library's LeaseLock on a given client, with timeouts, that goes quiet on release."""

    def __init__(
        self, api_client: ApiClient, namespace: str, identity: str, released: threading.Event
    ) -> None:
        super().__init__(LEASE_NAME, namespace, identity)
        # Duck-typed: the lock calls only these three methods.
        self.api_instance = cast(Any, _TimedLeases(CoordinationV1Api(api_client)))
        self._released = released

    def get(self, name: str, namespace: str) -> tuple[bool, Any]:
        try:
            result: tuple[bool, Any] = super().get(name, namespace)
        except (HTTPError, OSError) as error:
            logger.warning("cannot read the Lease %s/%s: %s", namespace, name, error)
            return False, _UnreachableError(error)
        return result

    def create(self, name: str, namespace: str, election_record: Any) -> bool:
        if self._released.is_set():
            return False
        try:
            return bool(super().create(name, namespace, election_record))
        except (HTTPError, OSError) as error:
            logger.warning("cannot create the Lease %s/%s: %s", namespace, name, error)
            return False

    def update(self, name: str, namespace: str, updated_record: Any) -> bool:
        if self._released.is_set():
            return False
        try:
            return bool(super().update(name, namespace, updated_record))
        except (HTTPError, OSError) as error:
            logger.warning("cannot renew the Lease %s/%s: %s", namespace, name, error)
            return False


class _TimedLeases:
    """The three Lease calls the library makes, each with a request timeout."""

    def __init__(self, api: CoordinationV1Api) -> None:
        self._api = api

    def read_namespaced_lease(self, name: str, namespace: str) -> Any:
        return self._api.read_namespaced_lease(name, namespace, _request_timeout=REQUEST_TIMEOUT)

    def create_namespaced_lease(self, namespace: str, body: Any) -> Any:
        return self._api.create_namespaced_lease(namespace, body, _request_timeout=REQUEST_TIMEOUT)

    def replace_namespaced_lease(self, name: str, namespace: str, body: Any) -> Any:
        return self._api.replace_namespaced_lease(
            name, namespace, body, _request_timeout=REQUEST_TIMEOUT
        )


class LeaderElector:
    """Calls `on_started` when this process becomes leader, `on_stopped` when it loses."""

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        identity: str,
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
        *,
        lease_duration: int = 15,
        renew_deadline: int = 10,
        retry_period: int = 2,
    ) -> None:
        self.namespace, self.identity = namespace, identity
        self._api_client = api_client
        self._api = CoordinationV1Api(api_client)
        self._on_started, self._on_stopped = on_started, on_stopped
        self._timing = (lease_duration, renew_deadline, retry_period)
        self._leading = threading.Event()
        self._stopping = threading.Event()
        self._quiet = threading.Event()  # this term's lock writes nothing more
        self._pause = 0.0  # > 0: stepping down, and how long to wait before competing
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        lease_duration, renew_deadline, retry_period = self._timing
        while not self._stopping.is_set():
            self._quiet.clear()
            lock = BoundedLeaseLock(self._api_client, self.namespace, self.identity, self._quiet)
            config = electionconfig.Config(
                lock,
                lease_duration=lease_duration,
                renew_deadline=renew_deadline,
                retry_period=retry_period,
                onstarted_leading=self._started,
                onstopped_leading=self._stopped,
            )
            try:
                leaderelection.LeaderElection(config).run()
            except Exception:
                logger.exception("leader election failed; retrying")
                self._stopped()
            pause, self._pause = self._pause, 0.0
            if pause and not self._stopping.is_set():
                logger.warning("competing for the Lease again in %.0f s", pause)
            self._stopping.wait(max(pause, retry_period))

    def _started(self) -> None:
        if self._stopping.is_set():
            return
        logger.info("%s is now the leader (Lease %s/%s)", self.identity, self.namespace, LEASE_NAME)
        self._leading.set()
        try:
            self._on_started()
        except Exception:  # logged by `on_started`; the library would log it again
            logger.error("%s cannot lead; handing the Lease back", self.identity)
            self.step_down()

    def step_down(self, pause: float | None = None) -> None:
        """Stop leading: write the Lease no more, hand it back now, and compete again only
        after `pause` seconds (default: one Lease duration, ample for a follower retrying
        every retry period to take it). The library's renew loop then fails within its
        renew deadline and reports the loss (`on_stopped`)."""
        self._pause = pause if pause is not None else float(self._timing[0])
        self._quiet.set()
        self._hand_back()

    def _stopped(self) -> None:
        if not self._leading.is_set():
            return
        self._leading.clear()
        logger.warning("%s lost the leadership; stopping the pipeline", self.identity)
        self._on_stopped()

    def release(self) -> None:
        """Stop competing and, if this process holds the Lease, hand it back at once."""
        self._stopping.set()
        self._quiet.set()
        self._leading.clear()
        self._hand_back()

    def _hand_back(self) -> None:
        """Clear the holder of the Lease if it is still this process."""
        try:
            lease = self._api.read_namespaced_lease(
                LEASE_NAME, self.namespace, _request_timeout=REQUEST_TIMEOUT
            )
            if lease.spec is not None and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                self._api.replace_namespaced_lease(
                    LEASE_NAME, self.namespace, lease, _request_timeout=REQUEST_TIMEOUT
                )
                logger.info("released the Lease %s/%s", self.namespace, LEASE_NAME)
        except ApiException as error:
            logger.warning("could not release the Lease: %s", error.reason)
        except (HTTPError, OSError) as error:
            logger.warning("could not release the Lease: %s", error)
