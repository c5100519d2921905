"""easnb.aio streams' idle limits: watched by the connection's thread (no timer on the loop), firing only when a limit
has really passed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import easnb
import easnb.aio
from easnb.demo import DemoServer

from .conftest import TOKEN, eventually

WORDS = {"text_input": np.array([b"a b c d e f"], dtype=object), "stream": np.array([True])}


def test_between_responses_timeout_fires_after_a_response_and_not_before(demo: DemoServer) -> None:
    async def main() -> None:
        async with easnb.aio.connect(demo.endpoint, token=TOKEN) as aconn:
            # 100 ms between tokens, ~0.8 s in all: a 0.4 s limit between responses holds the whole way
            fine = await (await aconn.stream("textgen", WORDS, parameters={"delay_ms": 100}, between_responses_timeout=0.4,
                                             first_response_timeout=None)).collect()
            assert len(fine) == 8
            for first in (5, None):  # with and without a limit on the first response
                stream = await aconn.stream("textgen", WORDS, parameters={"delay_ms": 700}, between_responses_timeout=0.3,
                                            first_response_timeout=first)
                with pytest.raises(easnb.DeadlineError, match=r"between_responses_timeout=0.3 s \(request id '', 1 responses before\)") as caught:
                    await stream.collect()
                assert len(caught.value.received) == 1 and stream.cancelled and not stream.watched()
                assert "cancelled" in repr(stream)

    asyncio.run(main())


def test_a_stream_is_watched_while_it_is_read_and_sets_no_timer_on_the_loop(demo: DemoServer) -> None:
    async def main() -> None:
        async with easnb.aio.connect(demo.endpoint, token=TOKEN) as aconn:
            loop = asyncio.get_running_loop()
            stream = await aconn.stream("textgen", WORDS, first_response_timeout=30, between_responses_timeout=30)
            async for _ in stream:
                assert stream.watched() and aconn.stream_watchdog._due  # the connection's thread has it
                assert not loop._scheduled  # type: ignore[attr-defined]  # a timer there costs every response
            assert len(stream.responses) == 8 and stream.finished and not stream.watched() and not aconn.stream_watchdog._due
            stream = await aconn.stream("textgen", WORDS, parameters={"delay_ms": 50}, between_responses_timeout=30)
            async for _ in stream:
                stream.cancel()  # the loop then ends quietly, no longer watched
            assert stream.cancelled and len(stream.responses) == 1 and not stream.watched()
            unwatched = await aconn.stream("textgen", WORDS, first_response_timeout=None, between_responses_timeout=None)
            async for _ in unwatched:
                assert not unwatched.watched()
        assert aconn.stream_watchdog._closed  # closed with the connection: its thread ends now

    asyncio.run(main())


def test_a_limit_of_zero_always_passes_in_sync_and_easnb_aio_streams(demo: DemoServer) -> None:
    """``first_response_timeout=0``: no response can come in time, however fast the server (the demo's first token
    comes in ~5 ms, sooner than the watchdog's next look): a DeadlineError naming the limit and the request id."""
    says = r"first_response_timeout=0 s \(request id 'zero-"
    with easnb.connect(demo.endpoint, token=TOKEN) as conn:
        for i in range(3):
            with pytest.raises(easnb.DeadlineError, match=says):
                conn.stream("textgen", WORDS, first_response_timeout=0, request_id=f"zero-{i}").collect()

    async def main() -> None:
        async with easnb.aio.connect(demo.endpoint, token=TOKEN) as aconn:
            for i in range(3):
                stream = await aconn.stream("textgen", WORDS, first_response_timeout=0, request_id=f"zero-{i}")
                with pytest.raises(easnb.DeadlineError, match=says):
                    await stream.collect()
                assert stream.cancelled and not stream.watched()

    asyncio.run(main())


def test_a_limit_passing_after_the_loop_stopped_or_closed_prints_nothing(demo: DemoServer) -> None:
    """A stream left mid-way in a loop that stopped: its limit passing is noted, and the cancel runs when the loop
    runs again (the next read says which limit); in a loop closed since, the watchdog's call finds nothing to do and
    prints nothing (a child process: a connection left open in a closed loop cannot be closed)."""
    loop = asyncio.new_event_loop()
    try:
        aconn, stream, reading = loop.run_until_complete(_left_mid_way(demo.endpoint))
        eventually(lambda: not stream.watched())  # the limit passed while the loop stood still
        loop.run_until_complete(asyncio.sleep(0))
        assert stream.cancelled
        with pytest.raises(easnb.DeadlineError, match=r"between_responses_timeout=0.3 s \(request id 'left', 1 responses before\)"):
            loop.run_until_complete(reading.__anext__())
        loop.run_until_complete(aconn.close())
    finally:
        loop.close()
    child = subprocess.run([sys.executable, "-c", CLOSED_LOOP, demo.endpoint], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert child.returncode == 0 and child.stdout.split() == ["watched", "expired", "not-cancelled"], child
    assert "Traceback" not in child.stderr and "Exception" not in child.stderr, child.stderr


async def _left_mid_way(endpoint: str) -> tuple[Any, Any, Any]:
    """A connection, and a stream of it read to its first response and left there (0.3 s between responses)."""
    aconn = easnb.aio.connect(endpoint, token=TOKEN)
    stream = await aconn.stream("textgen", WORDS, parameters={"delay_ms": 400}, between_responses_timeout=0.3,
                                request_id="left")
    reading = stream.__aiter__()
    await reading.__anext__()
    return aconn, stream, reading


CLOSED_LOOP = """
import asyncio, sys, time
from tests.test_stream_idle_aio import _left_mid_way
loop = asyncio.new_event_loop()
aconn, stream, reading = loop.run_until_complete(_left_mid_way(sys.argv[1]))
loop.close()
print("watched" if stream.watched() else "unwatched")
time.sleep(0.8)
print("unwatched" if stream.watched() else "expired", "cancelled" if stream.cancelled else "not-cancelled")
"""
