"""One thread per connection that cancels streams left idle past their limits.

A stream's ``first_response_timeout`` and ``between_responses_timeout`` cannot be gRPC deadlines
(those only bound the whole call), so something must look at the clock while the caller waits in
gRPC. A thread per stream did, and its start cost about a millisecond of time to first token on two
busy cores. The connection's ``Watchdog`` keeps every watched stream in a heap by the moment its
current limit would pass; an arrival does not touch the heap (that would cost every response):
when the moment comes, the stream's newest arrival says whether it passed or when to look again.
The thread holds streams weakly, ends ``LINGER`` seconds after the last one, and at once on ``close()``.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
import weakref
from typing import Protocol

from .log import LOGGER

#: Seconds the thread waits for another stream before it ends (a loop of requests keeps one thread).
LINGER = 2.0
#: Seconds before a stream whose limit passed, but which is still watched, is looked at again.
MINIMUM = 0.01


class Watched(Protocol):
    """What the watchdog needs of a stream."""

    def idle_limits(self) -> tuple[float | None, float | None]:
        """``(first_response_timeout, between_responses_timeout)``, seconds or None."""

    def idle_limit(self) -> tuple[float | None, str, float]:
        """``(seconds or None, the limit's name, perf_counter() since when)`` for the current wait."""

    def watched(self) -> bool:
        """Whether the stream still needs watching (its call not over)."""

    def idle_expired(self, name: str, limit: float) -> None:
        """The limit passed: cancel the call, noting why (in the watchdog's thread, or in ``watch``'s caller's
        when the limit had passed already)."""


class Watchdog:
    """Cancels each watched stream whose current idle limit has passed (see the module's text)."""

    def __init__(self) -> None:
        # reentrant: the garbage collector may end an abandoned stream's loop (which unwatches it) in a thread holding it
        self._lock = threading.Condition(threading.RLock())
        self._due: list[tuple[float, int, weakref.ref[Watched]]] = []  # (when to look, tie-break, stream)
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf  # when the thread wakes by itself
        self._closed = False

    def watch(self, stream: Watched) -> None:
        """Watch ``stream`` until its call is over; a stream with no limits is not watched. A limit already
        passed (one of 0) ends the call now: by the thread's first look a response may have moved it on."""
        now = time.perf_counter()
        limit, name, since = stream.idle_limit()
        if limit is not None and now >= since + limit and not self._closed:
            stream.idle_expired(name, limit)
            if not stream.watched():
                return
        when = _next_look(stream, now)
        if when is None:
            return
        with self._lock:
            if self._closed:
                return
            heapq.heappush(self._due, (when, next(self._order), weakref.ref(stream)))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="easnb-stream-watchdog", daemon=True)
                self._thread.start()
            elif when < self._wake_at:
                self._lock.notify()

    def unwatch(self, stream: Watched) -> None:
        """``stream`` needs no watching any more (its call ended, or it was read to its end)."""
        with self._lock:
            kept = [entry for entry in self._due if entry[2]() not in (stream, None)]
            if len(kept) != len(self._due):
                heapq.heapify(kept)
                self._due = kept
                if not kept:
                    self._lock.notify()  # the thread starts lingering now, not at the removed one's moment

    def close(self) -> None:
        """Stop watching (the connection is closing: its calls end with it) and end the thread now."""
        with self._lock:
            self._closed = True
            self._due.clear()
            self._lock.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                due = self._wait()
                if due is None:
                    self._thread, self._wake_at = None, math.inf
                    return
            for ref in due:  # outside the lock: a cancel runs gRPC's callbacks
                stream = ref()
                try:
                    if stream is not None and stream.watched():
                        self._look(stream, ref)
                except Exception as exc:  # noqa: BLE001 - one stream's fault must not end every other's watch
                    LOGGER.warning("easnb stopped watching a stream's idle limits: %s", type(exc).__name__)

    def _wait(self) -> list[weakref.ref[Watched]] | None:
        """(Under the lock.) The streams due now; None once closed, or after ``LINGER`` seconds with none."""
        idle_since: float | None = None
        while not self._closed:
            now = time.perf_counter()
            if self._due:
                idle_since = None
                if self._due[0][0] <= now:
                    due = []
                    while self._due and self._due[0][0] <= now:
                        due.append(heapq.heappop(self._due)[2])
                    return due
                self._wake_at = self._due[0][0]
            else:
                idle_since = now if idle_since is None else idle_since
                if now - idle_since >= LINGER:
                    return None
                self._wake_at = idle_since + LINGER
            self._lock.wait(self._wake_at - now)
        return None

    def _look(self, stream: Watched, ref: weakref.ref[Watched]) -> None:
        now = time.perf_counter()
        limit, name, since = stream.idle_limit()
        if limit is not None and now >= since + limit:
            stream.idle_expired(name, limit)
            if not stream.watched():
                return
        when = _next_look(stream, now, (limit, name, since))
        if when is not None:
            with self._lock:  # a stream watched again (a shared stream's sooner limit) may have a look planned already
                if not any(due <= when and other() is stream for due, _, other in self._due):
                    heapq.heappush(self._due, (when, next(self._order), ref))


def _next_look(stream: Watched, now: float, current: tuple[float | None, str, float] | None = None) -> float | None:
    """When the current limit (``stream.idle_limit()`` unless given) passes, or ``MINIMUM`` from now if it has; while
    waiting for the first response, also when the limit between responses could first pass. None: nothing to watch."""
    limit, name, since = stream.idle_limit() if current is None else current
    looks = [] if limit is None else [since + limit if since + limit > now else now + MINIMUM]
    between = stream.idle_limits()[1]
    if name == "first_response_timeout" and between is not None:
        looks.append(now + max(between, MINIMUM))
    return min(looks) if looks else None
