"""Small mechanisms the reflector runs on: background requests and GC relief.

Kept apart from the reflector's list/watch logic so that each reads on its own.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import urllib3

_gc_lock = threading.Lock()
_gc_listings = 0
_gc_saved: tuple[int, int, int] | None = None
LISTING_GEN0_THRESHOLD = 50_000


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the GC's generation-0 threshold while any list is being delivered.

    A list keeps ~100k new objects alive, so the default threshold (700) runs thousands
    of collections that find nothing to free: ~20% of the CPU of an initial sync
    (measured in bench/kube_source.py). The thresholds are restored when the last list
    in progress ends.
    """
    global _gc_listings, _gc_saved
    with _gc_lock:
        if _gc_listings == 0:
            _gc_saved = gc.get_threshold()
            gen0, gen1, gen2 = _gc_saved
            gc.set_threshold(max(gen0, LISTING_GEN0_THRESHOLD), gen1, gen2)
        _gc_listings += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_listings -= 1
            if _gc_listings == 0 and _gc_saved is not None:
                gc.set_threshold(*_gc_saved)
                _gc_saved = None


def discard_response(future: Future[Any]) -> None:
    """Read and return to the pool a response nobody will read (its request was abandoned)."""
    if future.exception() is None:
        response = future.result()
        with contextlib.suppress(urllib3.exceptions.HTTPError, OSError):
            response.drain_conn()
        response.release_conn()


def in_background(fetch: Callable[[str], Any], token: str) -> Future[Any]:
    """`fetch(token)` in a daemon thread; an abandoned fetch never holds up shutdown."""
    future: Future[Any] = Future()

    def run() -> None:
        try:
            future.set_result(fetch(token))
        except BaseException as error:  # handed to whoever waits on the result
            future.set_exception(error)

    threading.Thread(target=run, name="kube-jobs-prefetch", daemon=True).start()
    return future
