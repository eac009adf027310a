"""The one JSON text form of saved state: compact, keys sorted, so equal state is equal text.

Shared by the engine (which keeps each batch's entry encoded, so a save re-encodes only the
batches that changed) and the state document (which assembles the sections).
"""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
