"""RFC 3339 timestamps as the Google and Kubernetes APIs write them.

Both APIs send nanosecond fractions (`2026-11-27T09:00:00.123456789Z`), which some
`datetime.fromisoformat` versions refuse; we keep microseconds and always return aware UTC
datetimes, and format back with a `Z` so filters and cursors compare as strings too.

Only times in [1970, 2200) are accepted: anything outside is a forged or corrupt value
(a container can print any "timestamp"), and date arithmetic on it would overflow later,
far from the edge where it can be skipped.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_FRACTION = re.compile(r"(\.\d{6})\d+")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)  # exclusive


def parse_rfc3339(text: str, *, bounded: bool = True) -> datetime:
    """Parse an RFC 3339 timestamp (any fraction length) to an aware UTC datetime.

    Raises ValueError for anything else, including a timestamp with no offset and one
    that is out of range once in UTC (a forged line must be skipped, never crash a poll),
    or (`bounded`, the default) outside [1970, 2200).
    """
    if not isinstance(text, str):
        raise ValueError(f"not a timestamp: {text!r}")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()))
    if value.tzinfo is None:
        raise ValueError(f"timestamp without offset: {text!r}")
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00: past datetime's range in UTC
        raise ValueError(f"timestamp out of range: {text!r}") from None
    if bounded and not EARLIEST <= value < LATEST:
        raise ValueError(f"timestamp outside 1970-2200: {text!r}")
    return value


def format_rfc3339(value: datetime) -> str:
    """Format an aware datetime as UTC with microseconds and a `Z` suffix."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
