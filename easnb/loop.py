"""An asyncio loop on a background thread, for ``infer_frame``: many calls in flight from synchronous
code (and from inside a notebook, whose own loop is left alone).

The calls go on a ``grpc.aio`` channel opened in the loop from the connection's settings (gRPC's
fastest Python path), or on the connection's sync channel, its futures awaited in the loop, when
that channel must see them (one the user handed in, or sync interceptors) or when grpc.aio cannot
start again (a process forked from one where it ran: see ``easnb.fork``).

>>> runner = BackgroundLoop(conn.settings, conn.channel)   # doctest: +SKIP
>>> runner.run(some_coroutine(runner.stub(path)))          # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from .errors import ClosedError, EasnbError
from .fork import MARGIN, Unanswered, aio_usable, note_aio, note_let_go

if TYPE_CHECKING:
    from .settings import Settings

T = TypeVar("T")
#: How often a wait on the loop checks that its thread is still there.
POLL_S = 0.5
#: How long a fork waits at most for an idle loop to close its grpc.aio channel (``release_for_fork``).
RELEASE_S = 1.0
#: What a wait says when the connection was closed (from another thread) while its calls ran.
CLOSED_UNDER = "The connection was closed while its calls ran."


class BackgroundLoop:
    """A daemon thread running an event loop; its calls on a grpc.aio channel made from ``settings``,
    or on ``channel`` (the connection's sync one) when ``use_sync`` or when grpc.aio cannot run here."""

    def __init__(self, settings: Settings, channel: grpc.Channel, use_sync: bool = False) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="easnb-aio", daemon=True)
        self._thread.start()
        self._stubs: dict[str, Any] = {}
        self._running = 0  # run() calls in progress, from any thread
        self._counting = threading.Lock()
        self.aio = not use_sync and aio_usable()
        if not self.aio:
            self.channel: Any = channel
            return
        self._settings = settings

        async def opened() -> Any:
            return settings.open_aio_channel()

        note_aio()
        try:
            self.channel = asyncio.run_coroutine_threadsafe(opened(), self.loop).result(timeout=5 + MARGIN)
        except concurrent.futures.TimeoutError:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise EasnbError("The background event loop did not start.", hint="Connect again: easnb.connect(...).") from None

    def stub(self, path: str) -> Any:
        """A bytes-in, bytes-out unary stub for ``path`` on this loop's channel; calling it (in the loop) gives an awaitable."""
        if self.aio:  # looked up at each call: the channel may have been let go before a fork and opened again
            made, multicallable = self._stubs, self.multicallable  # a closure: cheaper to call than an object

            def call(request: bytes, timeout: float | None = None, metadata: Any = None) -> Any:
                return (made.get(path) or multicallable(path))(request, timeout=timeout, metadata=metadata)

            return call
        stub = self._stubs.get(path)
        if stub is None:
            stub = self._stubs[path] = _FutureStub(self.channel.unary_unary(path), self.loop)
        return stub

    def multicallable(self, path: str) -> Any:
        """In the loop: the grpc.aio stub for ``path``, the channel opened again if it was let go before a fork."""
        made = self._stubs.get(path)
        if made is None:
            if self.channel is None:
                self.channel = self._settings.open_aio_channel()
            made = self._stubs[path] = self.channel.unary_unary(path)
        return made

    def release_for_fork(self) -> None:
        """Before a fork, when no ``run`` is in progress: close the grpc.aio channel (the next call opens it
        again). With no grpc.aio channel left in the process, gRPC's poller thread ends, so the fork takes
        gRPC's supported path: its own fork handlers run instead of being skipped (see ``easnb.fork``). Waits at
        most ``RELEASE_S`` seconds (for calls a Ctrl-C left ending, too)."""
        if not self.aio or self.channel is None or self.closing or not self._thread.is_alive():
            return  # nothing to let go (already let go: no trip to the loop, so a fork costs nothing per connection)
        if threading.current_thread() is self._thread:
            return

        async def release() -> None:
            if self._running or self.channel is None:
                return
            await self._let_go()
            left = asyncio.all_tasks() - {asyncio.current_task()}  # what a run left behind (Ctrl-C returns before
            if left:  # its tasks end): its calls are cancelled with the channel, and it ends
                await asyncio.wait(left, timeout=RELEASE_S / 2)

        try:
            asyncio.run_coroutine_threadsafe(release(), self.loop).result(timeout=RELEASE_S)
        except Exception:  # noqa: BLE001 - a fork must go on; it is then only as safe as before
            pass

    async def _let_go(self) -> None:
        """In the loop: close the grpc.aio channel and hold it no more (a closed loop may be kept: by an error's frames)."""
        channel, self.channel = self.channel, None
        self._stubs.clear()
        note_let_go()
        await channel.close()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for it; Ctrl-C cancels it (and its calls) before re-raising.

        Raises ``EasnbError`` if the loop's thread is gone (it never hangs on a loop that cannot run).
        """
        with self._counting:
            self._running += 1
        try:
            return self._wait(asyncio.run_coroutine_threadsafe(coroutine, self.loop))
        finally:
            with self._counting:
                self._running -= 1

    def _wait(self, future: concurrent.futures.Future[T]) -> T:
        try:
            while True:
                try:
                    return future.result(timeout=POLL_S)
                except concurrent.futures.TimeoutError:
                    if not self._thread.is_alive():
                        if self.closing:
                            raise ClosedError(CLOSED_UNDER) from None
                        raise EasnbError(
                            "The background event loop of this connection is gone.",
                            hint="Connect again: easnb.connect(...).",
                        ) from None
        except concurrent.futures.CancelledError:
            if self.closing:  # the connection closed under it (from another thread): say so, not a bare CancelledError
                raise ClosedError(CLOSED_UNDER) from None
            raise
        except BaseException:
            if not self.loop.is_closed():  # a closed loop (the connection closed) has nothing left to cancel
                future.cancel()
                try:
                    future.result(timeout=5)
                except (concurrent.futures.CancelledError, Exception):
                    pass
            del future  # the error's traceback (kept by a notebook) must not keep the run's tasks and their calls
            raise

    closing = False

    def close(self) -> None:
        self.closing = True
        if self.loop.is_closed():
            return

        async def closing() -> None:
            for task in asyncio.all_tasks() - {asyncio.current_task()}:  # what still runs (a load sweep) ends here,
                task.cancel()  # not as "Task was destroyed but it is pending" when the loop is collected
            if self.aio and self.channel is not None:
                await self._let_go()

        try:
            asyncio.run_coroutine_threadsafe(closing(), self.loop).result(timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()


class _FutureStub:
    """A sync unary stub whose calls are awaitable on ``loop`` (gRPC's future, bridged), each ended by
    ``timeout + MARGIN`` seconds at the latest even if gRPC's own deadline never fires."""

    def __init__(self, stub: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._stub = stub
        self._loop = loop

    def __call__(self, request: bytes, timeout: float | None = None, metadata: Any = None) -> asyncio.Future[Any]:
        loop = self._loop
        waiter: asyncio.Future[Any] = loop.create_future()
        call = self._stub.future(request, timeout=timeout, metadata=metadata)

        def settle(done: Any) -> None:
            if waiter.done():
                return
            try:
                waiter.set_result(done.result())
            except (grpc.FutureCancelledError, concurrent.futures.CancelledError):
                waiter.set_exception(Unanswered(MARGIN))
            except Exception as exc:  # the grpc.RpcError, as an aio call raises it
                waiter.set_exception(exc)

        call.add_done_callback(lambda done: loop.call_soon_threadsafe(settle, done))
        if timeout is not None:
            watchdog = loop.call_later(timeout + MARGIN, _give_up, waiter, call)
            waiter.add_done_callback(lambda _: watchdog.cancel())
        waiter.add_done_callback(lambda w: w.cancelled() and call.cancel())
        return waiter


def _give_up(waiter: asyncio.Future[Any], call: Any) -> None:
    if waiter.done():
        return
    waiter.set_exception(Unanswered(MARGIN))
    call.cancel()
