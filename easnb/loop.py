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
from .fork import MARGIN, Unanswered, aio_usable, note_aio

if TYPE_CHECKING:
    from .settings import Settings

T = TypeVar("T")
#: How often a wait on the loop checks that its thread is still there.
POLL_S = 0.5
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
        self.aio = not use_sync and aio_usable()
        if not self.aio:
            self.channel: Any = channel
            return

        async def opened() -> Any:
            return settings.open_aio_channel()

        note_aio()
        try:
            self.channel = asyncio.run_coroutine_threadsafe(opened(), self.loop).result(timeout=5 + MARGIN)
        except concurrent.futures.TimeoutError:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise EasnbError("The background event loop did not start.", hint="Connect again: easnb.connect(...).") from None

    def stub(self, path: str) -> Any:
        """A bytes-in, bytes-out unary stub for ``path`` on this loop's channel (made once); calling it gives an awaitable."""
        stub = self._stubs.get(path)
        if stub is None:
            made = self.channel.unary_unary(path)
            stub = self._stubs[path] = made if self.aio else _FutureStub(made, self.loop)
        return stub

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for it; Ctrl-C cancels it (and its calls) before re-raising.

        Raises ``EasnbError`` if the loop's thread is gone (it never hangs on a loop that cannot run).
        """
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
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
            raise

    closing = False

    def close(self) -> None:
        self.closing = True
        if self.loop.is_closed():
            return

        async def closing() -> None:
            for task in asyncio.all_tasks() - {asyncio.current_task()}:  # what still runs (a load sweep) ends here,
                task.cancel()  # not as "Task was destroyed but it is pending" when the loop is collected
            if self.aio:
                await self.channel.close()

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
