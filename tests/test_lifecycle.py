"""A closed connection stays closed: every use and a second ``with`` refuse clearly, ``close()`` can be
called again, and nothing it made (threads, event loops, sockets) outlives it."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest

import easnb
import easnb.aio
from easnb.demo import DemoServer

from .conftest import TOKEN, eventually

pytestmark = pytest.mark.core

FRAME = pd.DataFrame(np.ones((20, 4), np.float32))
PROTO = "protos/helloworld.proto"


def _use_everything(conn: easnb.Connection) -> None:
    conn.live()
    conn.infer_frame("iris", FRAME, batch_size=5, progress=False)
    conn.service("helloworld.GreeterService").SayHello(name="x")
    conn.discover()


def test_a_closed_connection_refuses_every_use_and_a_second_with(demo: DemoServer) -> None:
    with easnb.connect(demo.endpoint, token=TOKEN) as conn:
        _use_everything(conn)
    uses = {
        "live": conn.live,
        "infer": lambda: conn.infer("iris", {"features": np.ones((1, 4), np.float32)}),
        "infer_frame": lambda: conn.infer_frame("iris", FRAME, progress=False),
        "service": lambda: conn.service("helloworld.GreeterService").SayHello(name="x"),
        "models": conn.models,
        "reflection": conn.reflection,  # asked before the close: the answer is kept, but the connection is closed
        "services": conn.services,
        "service again": lambda: conn.service("helloworld.GreeterService"),
        "with": lambda: conn.__enter__(),
    }
    for name, use in uses.items():
        with pytest.raises(easnb.ClosedError, match="closed") as info:
            use()
        assert "easnb.connect" in info.value.hint, name
    conn.close()
    conn.close()  # again: nothing happens
    assert conn.closed and "closed" in repr(conn)


def test_a_closed_async_connection_refuses_every_use_and_a_second_async_with(demo: DemoServer) -> None:
    async def main() -> None:
        async with easnb.aio.connect(demo.endpoint, token=TOKEN) as conn:
            assert await conn.live()
            greeter = await conn.service(PROTO, "helloworld.GreeterService")
        for use in (conn.live, lambda: conn.infer("iris", {"features": np.ones((1, 4), np.float32)}),
                    lambda: greeter.SayHello(name="x"), conn.__aenter__):
            with pytest.raises(easnb.ClosedError, match="closed"):
                await use()
        await conn.close()
        await conn.close()

    asyncio.run(main())


def _threads() -> set[threading.Thread]:
    """This process's threads but the in-process demo server's workers (its pool grows as calls come)."""
    return {t for t in threading.enumerate() if not t.name.startswith("easnb-demo")}


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_nothing_outlives_close(demo: DemoServer) -> None:
    with easnb.connect(demo.endpoint, token=TOKEN) as warm:  # gRPC's process-wide threads start once
        _use_everything(warm)
    threads, fds = _threads(), _fds()

    conn = easnb.connect(demo.endpoint, token=TOKEN)
    _use_everything(conn)
    loop = conn.background().loop
    assert any(t.name == "easnb-aio" for t in threading.enumerate())
    assert len(_fds()) > len(fds)  # the connection holds sockets now
    conn.close()
    assert loop.is_closed()
    eventually(lambda: _threads() <= threads)
    # measured: grpcio 1.85 releases every descriptor at close; grpcio 1.63 (the lowest bound .ci/matrix
    # tests) keeps one after close, inside gRPC, with no thread or loop left; checked where gRPC allows it
    if tuple(int(part) for part in grpc.__version__.split(".")[:2]) >= (1, 85):
        eventually(lambda: len(_fds() - fds) == 0)

    # a stream opened and never read: the watchdog of its idle limits ends with the connection, not a timeout later
    conn = easnb.connect(demo.endpoint, token=TOKEN, timeout=60)
    conn.stream("iris", {"features": np.ones((1, 4), np.float32)})
    assert any(t.name == "easnb-stream-watchdog" for t in threading.enumerate())
    conn.close()
    eventually(lambda: _threads() <= threads, seconds=5)

    async def main() -> None:
        async with easnb.aio.connect(demo.endpoint, token=TOKEN) as aconn:
            await aconn.live()

    asyncio.run(main())
    eventually(lambda: _threads() <= threads)
    # measured: grpcio 1.85 releases every descriptor at close; grpcio 1.63 (the lowest bound .ci/matrix
    # tests) keeps one after close, inside gRPC, with no thread or loop left; checked where gRPC allows it
    if tuple(int(part) for part in grpc.__version__.split(".")[:2]) >= (1, 85):
        eventually(lambda: len(_fds() - fds) == 0)


def test_a_close_while_infer_frame_or_load_test_runs_ends_them_with_closed_error(demo: DemoServer) -> None:
    """Another thread closes the connection while its calls run: a ClosedError, not a bare CancelledError."""
    sleepy = pd.DataFrame({"x": np.zeros(8, np.float32), "seconds": np.full(8, 1.0)})
    uses: dict[str, Any] = {
        "infer_frame": lambda conn: conn.infer_frame("sleepy", sleepy, batch_size=1, concurrency=2, timeout=30, progress=False),
        "load_test": lambda conn: conn.load_test("sleepy", {"x": np.zeros(1, np.float32), "seconds": np.full(1, 0.2)},
                                                 concurrency=[2], seconds=30, progress=False),  # a thread per caller
        "load_test on the loop": lambda conn: conn.load_test("sleepy", {"x": np.zeros(1, np.float32), "seconds": np.full(1, 0.2)},
                                                             concurrency=[12], seconds=30, progress=False),
    }
    for name, use in uses.items():
        conn = easnb.connect(demo.endpoint, token=TOKEN, timeout=30)
        found: list[BaseException] = []

        def run() -> None:
            try:
                use(conn)
            except BaseException as exc:  # what the user would see
                found.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        eventually(lambda: found or any(t.name in ("easnb-aio", "easnb-load") for t in threading.enumerate()))
        assert not found, (name, found)
        time.sleep(0.3)  # calls in flight: the loop is busy, not starting
        conn.close()
        worker.join(15)
        assert not worker.is_alive(), name
        # infer_frame fails; load_test returns the levels it measured (as after Stop), or says the connection closed
        assert all(isinstance(e, easnb.ClosedError) for e in found) and (found or name != "infer_frame"), (name, found)


def test_an_async_connection_closed_under_its_calls_ends_them_with_closed_error(demo: DemoServer) -> None:
    """A task closes the connection while others await its calls: ClosedError, not a CancelledError nobody asked for."""
    sleepy = pd.DataFrame({"x": np.zeros(4, np.float32), "seconds": np.full(4, 1.0)})

    async def main() -> list[BaseException]:
        conn = easnb.aio.connect(demo.endpoint, token=TOKEN, timeout=30)
        await conn.live()
        calls = [
            asyncio.ensure_future(conn.infer("sleepy", {"x": np.zeros(1, np.float32), "seconds": np.full(1, 1.0)})),
            asyncio.ensure_future(conn.infer_frame("sleepy", sleepy, batch_size=1, progress=False)),
        ]
        await asyncio.sleep(0.3)  # both in flight
        await conn.close()
        return list(await asyncio.gather(*calls, return_exceptions=True))

    found = asyncio.run(main())
    assert all(isinstance(e, easnb.ClosedError) for e in found), found
