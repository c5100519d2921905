"""Connections across ``os.fork`` (a ``multiprocessing`` pool with the fork start method).

A forked child inherits the parent's gRPC state but none of its threads: a background
loop's thread, grpc.aio's poller. gRPC core has fork handlers of its own, but it runs them
only when no thread is inside gRPC at the fork; otherwise it prints "Other threads are
currently calling into gRPC, skipping fork() handlers" and the child works on gRPC state
copied mid-use, where it crashed now and then inside gRPC (an abseil mutex check, measured in
CI; grpc/grpc#37710). grpc.aio's poller thread is inside gRPC for as long as any grpc.aio
channel exists (closed is not enough: the last reference to it must go). What grpcio 1.85 does
besides (measured, see tests/test_fork.py): with ``GRPC_ENABLE_FORK_SUPPORT`` unset, the
Python-level fork support stays off, grpc.aio cannot start again in a child of a process where it
ran, and channels made before the fork share the parent's connections; setting it to 1 adds
nothing for this, and 0 turns the core's handlers off too, so that no call works in the child.
easnb therefore does its own part (``os.register_at_fork``, no cost on the hot path):

- before the fork, a connection's background loop (``infer_frame``, load tests), when no run is in
  progress, closes its grpc.aio channel and opens it again at its next call. Closed loops and
  ``easnb.aio`` connections hold their channel no more, and a fork after easnb closed one collects
  garbage once (a failed call's error and its frames hold each other, and the call its channel).
  With no grpc.aio channel left, the poller ends and gRPC's own fork handlers run;
- in the child, the background loop is dropped, and made anew on first use; in a process whose
  parent had grpc.aio running, it sends over the sync channel's futures, since grpc.aio is not
  started again there;
- a channel it opened is opened again on its first call (never inside the fork handler, where
  gRPC is not ready: opening one there crashed children now and then), with its own TCP connection
  (a channel argument naming the process keeps gRPC from sharing the parent's); on it, and on a
  channel the caller passed in, every call with one reply waits at most its deadline plus ``MARGIN``
  seconds, even if gRPC's inherited timers are dead (``GRPC_ENABLE_FORK_SUPPORT=0``): the
  ``DeadlineError`` then says why and what to do.

Objects inherited from the parent (old channels, loops) are kept, never closed nor
collected: their clean-up would call into the parent's gRPC state.

What easnb does not mend: any other thread inside gRPC at the fork. A gRPC *server* in the forking
process (the embedded demo started in the notebook itself), an open ``easnb.aio`` connection or
grpc.aio channel (or a kept error of an ``easnb.aio`` stream: its traceback's frames hold the call),
a call or load test running in another thread, a sync channel's connectivity watch (the connect
widget's and workbench's status line, easnb's INFO logging): with any of them gRPC skips its handlers
(``GRPC_VERBOSITY=INFO`` shows it saying so; measured: a child crashed in 2 of 12 runs of
tests/test_fork.py with the demo server in the forking process, and 6 of 55 children forked while
``infer_frame`` ran in another thread died of SIGSEGV, none of 61 forked between its runs). There,
use the ``spawn`` or ``forkserver`` start method, or run the demo with ``python -m easnb demo`` in a
terminal.

>>> isinstance(MARGIN, float)
True
"""

from __future__ import annotations

import gc
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import grpc


class Forkable(Protocol):
    """What ``watch`` needs of a connection: a way to rebuild its per-process state in a child."""

    def before_fork(self) -> None: ...

    def after_fork(self) -> tuple[Any, ...]: ...


#: Seconds a call may wait past its deadline before easnb gives up on gRPC's own timer.
MARGIN = 1.0


class _Process:
    """What this process knows about fork: process-wide by nature, so one instance per module."""

    def __init__(self) -> None:
        self.aio_started = False  # easnb opened a grpc.aio channel in this process
        self.aio_broken = False  # forked from a process where grpc.aio ran: it cannot start here
        self.connections: weakref.WeakSet[Forkable] = weakref.WeakSet()
        self.inherited: list[Any] = []  # the parent's channels and loops, kept alive and untouched
        self.let_go = False  # easnb closed a grpc.aio channel since the last fork

    def before_fork(self) -> None:
        for conn in list(self.connections):
            try:
                conn.before_fork()
            except Exception:  # noqa: BLE001 - a fork must not fail over one connection
                continue
        if self.let_go:  # grpc.aio's poller ends with the last reference to the last grpc.aio channel, but a failed
            self.let_go = False  # call's error and its traceback's frames hold each other (and the call its channel)
            gc.collect()  # until they are collected

    def after_fork_in_child(self) -> None:
        self.aio_broken = self.aio_broken or self.aio_started
        for conn in list(self.connections):
            try:
                self.inherited.append(rebuild(conn))
            except Exception:  # noqa: BLE001 - a fork must not fail over one connection; its next call says what is wrong
                continue


PROCESS = _Process()
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(before=PROCESS.before_fork, after_in_child=PROCESS.after_fork_in_child)


def watch(conn: Forkable) -> None:
    """Have ``conn`` rebuild its per-process state in every child forked from here."""
    PROCESS.connections.add(conn)


def note_aio() -> None:
    """Record that a grpc.aio channel was opened in this process (children cannot use grpc.aio then)."""
    PROCESS.aio_started = True


def note_let_go() -> None:
    """Record that a grpc.aio channel was closed here: the next fork collects what may still hold it."""
    PROCESS.let_go = True


def aio_usable() -> bool:
    """Whether grpc.aio can run in this process (not after a fork from a process where it ran)."""
    return not PROCESS.aio_broken


def rebuild(conn: Forkable) -> tuple[Any, ...]:
    """In a forked child: ``conn.after_fork()`` (a fresh lock, no background loop, a channel of this
    process's own). Returns what was inherited (to be kept alive, never used)."""
    return conn.after_fork()


class Unanswered(grpc.RpcError):  # type: ignore[misc]  # grpcio ships no type hints
    """A call that gRPC did not end by its deadline (its timers did not survive the fork)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self._seconds = seconds

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.DEADLINE_EXCEEDED

    def details(self) -> str:
        return (
            f"no answer {self._seconds:g} s after the deadline in a forked process: gRPC's state "
            "inherited from the parent process does not work here"
        )

    def trailing_metadata(self) -> tuple[()]:
        return ()


class BoundedUnary:
    """A sync stub with one reply (unary-unary or stream-unary) whose calls wait at most ``timeout + MARGIN`` s."""

    def __init__(self, stub: Any) -> None:
        self._stub = stub

    def __call__(self, request: Any, timeout: float | None = None, metadata: Any = None, **kwargs: Any) -> Any:
        future = self._stub.future(request, timeout=timeout, metadata=metadata, **kwargs)
        try:
            return future.result(timeout=None if timeout is None else timeout + MARGIN)
        except grpc.FutureTimeoutError:
            future.cancel()
            raise Unanswered(MARGIN) from None

    def future(self, request: Any, timeout: float | None = None, metadata: Any = None, **kwargs: Any) -> Any:
        return self._stub.future(request, timeout=timeout, metadata=metadata, **kwargs)

    def with_call(self, *args: Any, **kwargs: Any) -> Any:
        return self._stub.with_call(*args, **kwargs)


class _Deferred:
    """A multi-callable made on first use, so nothing calls into gRPC inside the fork handler."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make, self._made = make, None

    def _get(self) -> Any:
        if self._made is None:
            self._made = self._make()
        return self._made

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._get()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


class BoundedChannel(grpc.Channel):  # type: ignore[misc]  # grpcio ships no type hints
    """A forked child's sync channel: opened on its first call, not inside the fork handler (gRPC's
    state is not ready there: opening channels in ``after_in_child`` crashed the child now and then),
    and its calls with one reply are ``BoundedUnary``."""

    def __init__(self, open_channel: Callable[[], grpc.Channel]) -> None:
        self._open, self._channel = open_channel, None
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        """In a child forked again: a fresh lock (the inherited one may have been held at fork time)."""
        self._lock = threading.Lock()

    def real(self) -> grpc.Channel:
        """The channel itself, opened now if it was not yet."""
        with self._lock:
            if self._channel is None:
                self._channel = self._open()
            return self._channel

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return BoundedUnary(_Deferred(lambda: self.real().unary_unary(method, *args, **kwargs)))

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Deferred(lambda: self.real().unary_stream(method, *args, **kwargs))

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return BoundedUnary(_Deferred(lambda: self.real().stream_unary(method, *args, **kwargs)))

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Deferred(lambda: self.real().stream_stream(method, *args, **kwargs))

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self.real().subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        if self._channel is not None:
            self._channel.unsubscribe(callback)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()

    def __enter__(self) -> BoundedChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
