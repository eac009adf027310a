"""Leader election on a coordination.k8s.io Lease, with the client library's elector.

Only the Lease holder runs the pipeline; the others wait, ready but idle. Timings are
client-go's usual ones (lease 15 s, renew deadline 10 s, retry 2 s), so a crashed leader
is replaced within about 20 s, and a leader that stops cleanly hands the Lease back
(`release`) so a follower takes over within one retry period.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kubernetes.client import ApiClient, CoordinationV1Api
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

logger = logging.getLogger(__name__)

LEASE_NAME = "sla-monitor"
# The library logs every retry of a follower at INFO; keep its warnings only.
logging.getLogger("leaderelection").setLevel(logging.WARNING)


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
        self._api = CoordinationV1Api(api_client)
        self._on_started, self._on_stopped = on_started, on_stopped
        self._timing = (lease_duration, renew_deadline, retry_period)
        self._leading = threading.Event()
        self._stopping = threading.Event()
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
            config = electionconfig.Config(
                LeaseLock(LEASE_NAME, self.namespace, self.identity),
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
            self._stopping.wait(retry_period)

    def _started(self) -> None:
        if self._stopping.is_set():
            return
        logger.info("%s is now the leader (Lease %s/%s)", self.identity, self.namespace, LEASE_NAME)
        self._leading.set()
        self._on_started()

    def _stopped(self) -> None:
        if not self._leading.is_set():
            return
        self._leading.clear()
        logger.warning("%s lost the leadership; stopping the pipeline", self.identity)
        self._on_stopped()

    def release(self) -> None:
        """Stop competing and, if this process holds the Lease, hand it back at once."""
        self._stopping.set()
        self._leading.clear()
        try:
            lease = self._api.read_namespaced_lease(LEASE_NAME, self.namespace)
            if lease.spec is not None and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                self._api.replace_namespaced_lease(LEASE_NAME, self.namespace, lease)
                logger.info("released the Lease %s/%s", self.namespace, LEASE_NAME)
        except ApiException as error:
            logger.warning("could not release the Lease: %s", error.reason)
