"""Ctrl-C: one process-wide stop flag that every fetch loop and thread pool checks.

A worker thread cannot be interrupted by a signal (only the main thread sees SIGINT), so the main thread sets STOP
and the workers look at it before each request and while they wait between retries; pools cancel what has not
started. `originscan` then exits 130 within a second (scanner/cli.py), whatever is still blocked in a socket read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import Executor, Future
from typing import Any

STOP = threading.Event()


class Interrupted(KeyboardInterrupt):
    """Raised in a worker once STOP is set: the run is being abandoned."""


def check() -> None:
    """Raise Interrupted when the run is being stopped (call before each request)."""
    if STOP.is_set():
        raise Interrupted()


def sleep(seconds: float) -> None:
    """time.sleep that ends early, with Interrupted, when the run is stopped."""
    if STOP.wait(max(0.0, seconds)):
        raise Interrupted()


def abandon(pool: Executor, futures: Iterable[Future[Any]] = ()) -> None:
    """Stop a pool without waiting: cancel every future not yet started (running ones see STOP, set by the SIGINT
    handler, at their next request)."""
    for f in futures:
        f.cancel()
    pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["STOP", "Interrupted", "abandon", "check", "sleep"]
