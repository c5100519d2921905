"""easnb.aio streams' idle limits: watched by the connection's thread (no timer on the loop), firing only when a limit
has really passed."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import easnb
import easnb.aio
from easnb.demo import DemoServer

from .conftest import TOKEN

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
                with pytest.raises(easnb.DeadlineError, match="between_responses_timeout=0.3") as caught:
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
