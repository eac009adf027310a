"""Which batches a Job (or a pod's traceback) belongs to, without a nested loop.

Batches are indexed once per config by their most selective exact field — owner
CronJob, else namespace — so a lookup only checks the few candidates sharing that
value plus the batches that match on a regex or labels alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from monitor.config import Batch


@dataclass(frozen=True)
class JobIdentity:
    """What matching may look at: the same for a Job and for a pod of that Job."""

    namespace: str
    name: str
    cronjob: str | None
    labels: Mapping[str, str] = field(default_factory=dict)


def batch_matches(batch: Batch, job: JobIdentity) -> bool:
    """True when every field of the batch's `match` holds for the Job."""
    match = batch.match
    if match.namespace is not None and match.namespace != job.namespace:
        return False
    if match.cronjob is not None and match.cronjob != job.cronjob:
        return False
    pattern = match.job_name_pattern
    if pattern is not None and pattern.search(job.name) is None:
        return False
    return not match.labels or all(
        job.labels.get(key) == value for key, value in match.labels.items()
    )


class BatchIndex:
    """Batches indexed for fast matching; keeps config order in results."""

    def __init__(self, batches: Sequence[Batch]) -> None:
        self._order = {batch.name: position for position, batch in enumerate(batches)}
        self._by_cronjob: dict[str, list[Batch]] = defaultdict(list)
        self._by_namespace: dict[str, list[Batch]] = defaultdict(list)
        self._scan: list[Batch] = []
        for batch in batches:
            if batch.match.cronjob is not None:
                self._by_cronjob[batch.match.cronjob].append(batch)
            elif batch.match.namespace is not None:
                self._by_namespace[batch.match.namespace].append(batch)
            else:
                self._scan.append(batch)

    def batches_for(self, job: JobIdentity) -> list[Batch]:
        """Every batch the Job matches, in config order."""
        candidates: list[Batch] = []
        if job.cronjob is not None:
            candidates += self._by_cronjob.get(job.cronjob, ())
        candidates += self._by_namespace.get(job.namespace, ())
        candidates += self._scan
        found = [batch for batch in candidates if batch_matches(batch, job)]
        found.sort(key=lambda batch: self._order[batch.name])
        return found
