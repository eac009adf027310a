"""Per-batch judgement: deadline and freshness tracks, functions of the runs they know."""

from monitor.core.tracks.deadline import DeadlineTrack
from monitor.core.tracks.freshness import FreshnessTrack

#: The judgement of one batch: by deadline or by freshness.
Track = DeadlineTrack | FreshnessTrack

__all__ = ["DeadlineTrack", "FreshnessTrack", "Track"]
