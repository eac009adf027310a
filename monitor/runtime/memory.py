"""After a list of the whole cluster: freed heap back to the system, survivors out of the GC.

A relist of 100,000 Jobs decodes pages of hundreds of objects on several threads; once
they are reduced, most of that memory is free but stays mapped by the C allocator, so the
process keeps its start-up peak as its steady size. glibc's `malloc_trim` returns the free
pages (those in the middle of the heap too, by `madvise`). Elsewhere (musl, macOS) there is
no such call and nothing is done.

What survives the first list (config, engine, libraries: millions of objects) lives as long
as the process, yet every full collection of the cyclic GC would walk it again: hundreds of
milliseconds on the engine's thread, in the middle of an alert. `gc.freeze()` moves them to
the permanent generation once, so later collections only walk what is new. (Objects frozen
are still freed by reference counting; only a cycle among them is never collected.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


def _glibc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _glibc_trim()
#: Whether `release_free_memory` can do anything here (glibc only).
CAN_RELEASE = _TRIM is not None


def release_free_memory() -> None:
    """Return the C heap's free pages to the system, on a short-lived thread (it takes
    tens of milliseconds on a large heap, which must not delay the caller)."""
    if _TRIM is not None:
        threading.Thread(target=_TRIM, args=(0,), name="malloc-trim", daemon=True).start()


def freeze_survivors() -> None:
    """Leave every object alive now out of later GC passes (see the module docstring)."""
    gc.collect()
    gc.freeze()
