"""What the connection's watchdog (``easnb.stream_watchdog``) asks of a shared stream (``easnb.shared_stream``).

The caller holding a shared stream's turn waits inside gRPC, where only a reply or the call's end
wakes it. The watchdog ends the call once it has gone silent: nothing taken off it since the last
idle limit of the requests in flight passed, those being read and those submitted but not yet read
(replies waiting in a request's inbox count as its arrivals). So ending the call for the waiting
callers' limits never takes a request whose own limit has not passed.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from typing import Any


class IdleWatch:
    """The watchdog's view of a ``Dispatch``: its lock, its requests, who reads, and the call to cancel."""

    changed: threading.Condition
    waiting: dict[str, weakref.ref[Any]]
    in_flight: set[str]
    reading: Any
    readers: set[Any]
    closed: bool
    call: Any
    failure: Any
    silent_for: str
    last_read: float
    on_watch: bool
    next_look: float

    def idle_limits(self) -> tuple[float | None, float | None]:
        return None, None

    def idle_limit(self) -> tuple[float | None, str, float]:
        """While a caller waits inside gRPC, seconds until the last limit of the requests in flight passes."""
        now = time.perf_counter()
        with self.changed:
            latest, name = self._latest()
            if latest is None:  # nobody waits inside gRPC, or one without a limit: look again in a second, or when
                latest, name = min(self._soonest(now), now + 1.0), ""  # a request's limit passes, if sooner
            self.next_look = max(latest, now)
        return latest - now, name, now  # passes at ``latest``

    def _soonest(self, now: float) -> float:
        """(Under the lock.) The earliest idle limit of the requests in flight still to pass (inf: none): a caller
        that takes the turn before then is looked at when it could first be late, not up to a second on."""
        streams = [s for s in (ref() for ref in list(self.waiting.values())) if s is not None]
        return min((d for d, _ in map(_quiet_until, streams) if d is not None and d > now), default=math.inf)

    def _latest(self) -> tuple[float | None, str]:
        """(Under the lock.) When the last idle limit of the requests in flight passes; None while no caller
        holds the turn, or while one request has no limit."""
        if self.reading is None:
            return None, ""
        streams = {s for s in (ref() for ref in list(self.waiting.values())) if s is not None}
        streams.update(self.readers)
        streams.add(self.reading)
        deadlines = [_quiet_until(s) for s in streams]
        if any(d is None for d, _ in deadlines):
            return None, ""
        return max(deadlines, key=lambda d: d[0] or 0.0)

    def watched(self) -> bool:
        with self.changed:
            self.on_watch = self.failure is None and not self.closed and bool(self.in_flight)
            return self.on_watch

    def idle_expired(self, name: str, limit: float) -> None:
        with self.changed:
            reading = self.reading
            if reading is None or self.call is None:  # nobody waits inside gRPC: the callers time out by themselves
                return
            deadline, _ = reading.deadline()
            if deadline is None or self.last_read >= deadline:  # a reply came after it: its caller sees for itself
                return
            latest, _ = self._latest()
            if latest is None or latest > time.perf_counter():  # a request submitted since, or a reply queued
                return
            call, self.silent_for = self.call, name
        call.cancel()


def _quiet_until(stream: Any) -> tuple[float | None, str]:
    """When ``stream``'s idle limit passes, counting replies waiting in its inbox as arrivals."""
    last = stream.inbox[-1] if stream.inbox else None
    if type(last) is tuple:
        limit = stream.between_responses_timeout
        return (None if limit is None else last[1] + limit), "between_responses_timeout"
    deadline: tuple[float | None, str] = stream.deadline()
    return deadline
