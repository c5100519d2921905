"""An asyncio loop on a background thread, with its own grpc.aio channel: gRPC's fastest Python path,
used from synchronous code (and from inside a notebook, whose own loop is left alone).

>>> runner = BackgroundLoop(conn)              # doctest: +SKIP
>>> runner.run(some_coroutine(runner.channel)) # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .channel import open_channel

if TYPE_CHECKING:
    from .connection import Connection

T = TypeVar("T")


class BackgroundLoop:
    """A daemon thread running an event loop, and a grpc.aio channel to the connection's endpoint opened in it."""

    def __init__(self, conn: Connection) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="easnb-aio", daemon=True)
        self._thread.start()
        settings, certificates = conn.channel_settings
        self._stubs: dict[str, Any] = {}

        async def opened() -> Any:
            return open_channel(conn.endpoint, settings, certificates, aio=True)

        self.channel = asyncio.run_coroutine_threadsafe(opened(), self.loop).result()

    def stub(self, path: str) -> Any:
        """A bytes-in, bytes-out unary stub for ``path`` on this loop's channel (made once)."""
        stub = self._stubs.get(path)
        if stub is None:
            stub = self._stubs[path] = self.channel.unary_unary(path)
        return stub

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for it; Ctrl-C cancels it (and its calls) before re-raising."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            try:
                future.result(timeout=5)
            except (concurrent.futures.CancelledError, Exception):
                pass
            raise

    def close(self) -> None:
        if self.loop.is_closed():
            return

        async def closing() -> None:
            await self.channel.close()

        try:
            asyncio.run_coroutine_threadsafe(closing(), self.loop).result(timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()
