"""easnb.aio streams' idle limits: one timer that moves itself, firing only when a limit has really passed."""

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
                assert len(caught.value.received) == 1 and stream.cancelled and stream._timer is None
                assert "cancelled" in repr(stream)

    asyncio.run(main())


def test_a_finished_stream_leaves_no_timer(demo: DemoServer) -> None:
    async def main() -> None:
        async with easnb.aio.connect(demo.endpoint, token=TOKEN) as aconn:
            stream = await aconn.stream("textgen", WORDS, first_response_timeout=30, between_responses_timeout=30)
            assert len(await stream.collect()) == 8 and stream.finished and stream._timer is None
            stream = await aconn.stream("textgen", WORDS, parameters={"delay_ms": 50}, between_responses_timeout=30)
            async for _ in stream:
                stream.cancel()  # the loop then ends quietly, its timer gone
            assert stream.cancelled and len(stream.responses) == 1 and stream._timer is None

    asyncio.run(main())
