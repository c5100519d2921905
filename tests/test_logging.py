"""easnb's log: silent by default; DEBUG per call, INFO for retries, lost and regained connections,
and infer_frame deciding the server is gone."""

from __future__ import annotations

import asyncio
import logging
import threading

import numpy as np
import pandas as pd
import pytest

import easnb
import easnb.aio
from easnb.demo import DemoServer
from easnb.demo.server import SERVER_OPTIONS, V2Service, v2_handler

from .conftest import TOKEN, DemoProcess, eventually, free_port
from .kitchen import PROTO, Kitchen
from .netparts import SilentDropProxy, serve

pytestmark = pytest.mark.core


def _records(caplog: pytest.LogCaptureFixture, level: int = logging.DEBUG) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "easnb" and r.levelno == level]


def test_silent_by_default() -> None:
    logger = logging.getLogger("easnb")
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)
    assert logger.level == logging.NOTSET  # the application decides; easnb sets no level of its own


def test_each_call_is_one_debug_record_sync_aio_batches_and_services(demo: DemoServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="easnb")
    with easnb.connect(demo.endpoint, token=TOKEN) as conn:
        conn.live()
        with pytest.raises(easnb.NotFoundError):
            conn.model_metadata("no-such-model")
        conn.infer_frame("iris", pd.DataFrame(np.ones((30, 4), np.float32)), batch_size=10, progress=False)
        conn.service("protos/helloworld.proto", "helloworld.GreeterService").SayHello(name="x")

    async def main() -> None:
        async with easnb.aio.connect(demo.endpoint, token=TOKEN) as aconn:
            await aconn.ready()

    asyncio.run(main())
    calls = [(r.method, r.status, r.attempt) for r in _records(caplog) if hasattr(r, "latency_ms")]
    assert ("ServerLive", "OK", 1) in calls and ("ModelMetadata", "NOT_FOUND", 1) in calls
    assert calls.count(("ModelInfer", "OK", 1)) == 3  # one per batch
    assert ("/helloworld.GreeterService/SayHello", "OK", 1) in calls and ("ServerReady", "OK", 1) in calls
    record = next(r for r in _records(caplog) if getattr(r, "method", "") == "ServerLive")
    assert record.target == demo.endpoint and record.latency_ms > 0
    assert f"ServerLive on {demo.endpoint}: OK in" in record.getMessage()


def test_each_stream_is_one_debug_record_sync_shared_and_aio(demo: DemoServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="easnb")
    x = {"a": np.arange(3.0)}
    with easnb.connect(demo.endpoint, token=TOKEN) as conn:
        assert list(conn.generate("textgen", "hi", max_tokens=3))
        conn.stream("echo", x).collect()
        with pytest.raises(easnb.StreamError):
            conn.stream("textgen", x).collect()  # refused inside the stream
        with conn.open_stream("echo") as shared:
            shared.submit(x).collect()

    async def main() -> None:
        async with easnb.aio.connect(demo.endpoint, token=TOKEN) as aconn:
            assert [piece async for piece in aconn.generate("textgen", "hi", max_tokens=3)]

    asyncio.run(main())
    streams = [(r.status, r.target) for r in _records(caplog) if getattr(r, "method", "") == "ModelStreamInfer"]
    assert streams.count(("OK", demo.endpoint)) == 4, streams
    assert len(streams) == 5 and streams[2][0] != "OK", streams


def test_each_service_call_is_one_debug_record_sync_and_aio_whatever_streams(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="easnb")
    kitchen = Kitchen()  # a unary, a server-, a client- and a bidirectional-streaming method

    def said() -> list[tuple[str, str, int]]:
        return [(r.method, r.status, r.attempt) for r in _records(caplog) if getattr(r, "method", "").startswith("/kitchen.")]

    try:
        with easnb.connect(kitchen.endpoint, token=TOKEN) as conn:
            service = conn.service(PROTO, "kitchen.Kitchen")
            service.Echo(number=1)
            assert [r.label for r in service.Count(label="a", values=[1, 2])] == ["a-0", "a-1"]
            service.Sum([{"values": [1]}, {"values": [2]}])
            assert [list(r.values) for r in service.Chat([{"values": [1]}])] == [[2]]
        sync = said()

        async def main() -> None:
            async with easnb.aio.connect(kitchen.endpoint, token=TOKEN) as aconn:
                aservice = await aconn.service(PROTO, "kitchen.Kitchen")
                await aservice.Echo(number=1)
                assert [r.label async for r in await aservice.Count(label="a", values=[1, 2])] == ["a-0", "a-1"]
                await aservice.Sum([{"values": [1]}, {"values": [2]}])
                assert [list(r.values) async for r in await aservice.Chat([{"values": [1]}])] == [[2]]

        asyncio.run(main())
    finally:
        kitchen.stop()
    expected = [(f"/kitchen.Kitchen/{name}", "OK", 1) for name in ("Echo", "Count", "Sum", "Chat")]
    assert sync == expected and said()[len(sync):] == expected, said()
    streamed = [r for r in _records(caplog) if getattr(r, "method", "") == "/kitchen.Kitchen/Count"]
    assert all(r.target == kitchen.endpoint and r.latency_ms > 0 for r in streamed)
    assert streamed[-1].getMessage().startswith(f"/kitchen.Kitchen/Count on {kitchen.endpoint}: OK in ")
    assert not [r for r in caplog.records if TOKEN in r.getMessage() or TOKEN in repr(vars(r))]


def test_retries_are_info_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="easnb")
    port = free_port()
    with easnb.connect(f"127.0.0.1:{port}", timeout=3, retries=2) as conn:
        with pytest.raises(easnb.UnavailableError):
            conn.live()
    retries = [r for r in _records(caplog, logging.INFO) if "trying again" in r.getMessage()]
    assert [r.attempt for r in retries] == [2, 3] and all(r.status == "UNAVAILABLE" for r in retries)
    assert not _records(caplog, logging.DEBUG)  # DEBUG was off: no per-call records


def test_a_dropped_connection_noticed_by_keepalive_and_made_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="easnb")  # before connect(): the connection's state is watched from the start
    server, port = serve([v2_handler(V2Service())], SERVER_OPTIONS)
    proxy = SilentDropProxy(port)
    try:
        with easnb.connect(proxy.endpoint, keepalive=easnb.Keepalive(time_s=1, timeout_s=1), retries=0) as conn:
            assert conn.live()
            proxy.drop()
            eventually(lambda: any("connection lost" in r.getMessage() for r in _records(caplog, logging.INFO)), 15)
            eventually(lambda: conn.live(timeout=1))
            eventually(lambda: any("connected again" in r.getMessage() for r in _records(caplog, logging.INFO)))
    finally:
        proxy.close()
        server.stop(None)


def test_infer_frame_says_when_it_decides_the_server_is_gone(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="easnb")
    process = DemoProcess(free_port()).start()
    frame = pd.DataFrame({"a": np.arange(4000, dtype=np.float64)})
    try:
        with easnb.connect(process.endpoint, token=DemoProcess.TOKEN, timeout=3) as conn:
            conn.model_metadata("echo")
            threading.Timer(0.3, process.kill).start()
            with pytest.raises(easnb.BatchError):
                conn.infer_frame("echo", frame, batch_size=1, concurrency=4, progress=False, retries=0)
    finally:
        process.kill()
    gone = [r for r in _records(caplog, logging.INFO) if "found the server gone" in r.getMessage()]
    assert len(gone) == 1 and gone[0].model == "echo"
