"""easnb's streams against NVIDIA Triton itself: PyTriton's tritonserver with a decoupled generator model.

The server (bench/stream_server.py) runs from the nvidia-pytriton venv .ci/run makes; one start per module.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import easnb
import easnb.aio

from .test_bench import pytriton_ready

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.timeout(300), pytest.mark.serial("triton")]  # PyTriton cleans /tmp/folder* it did not have


@pytest.fixture(scope="module")
def triton() -> Iterator[tuple[str, Path]]:
    pytriton_ready()
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from stream_server import stream_server
    finally:
        sys.path.remove(str(ROOT / "bench"))
    with stream_server(verbose=1) as (endpoint, log):  # its log shows the cancellations
        yield endpoint, log


@pytest.fixture()
def conn(triton: tuple[str, Path]) -> Iterator[easnb.Connection]:
    with easnb.connect(triton[0], timeout=20) as connection:
        yield connection


def prompt(text: str, **sampling: object) -> dict[str, np.ndarray]:
    import json

    inputs = {"text_input": np.array([text.encode()], dtype=object)}
    if sampling:
        inputs["sampling_parameters"] = np.array([json.dumps(sampling).encode()], dtype=object)
    return inputs


def test_tokens_and_the_final_flag(conn: easnb.Connection) -> None:
    assert conn.server_metadata().name == "triton"
    stream = conn.stream("gen", prompt("hello real triton"), request_id="t-1")
    texts = [r["text_output"][0] for r in stream]
    assert texts == [b" You", b" said:", b" hello", b" real", b" triton."]
    assert all(r.id == "t-1" and r.parameters["triton_final_response"] is False for r in stream.responses)
    assert stream.finished and len(stream.arrivals) == 6  # PyTriton's flags-only final response ended it


def test_generate_and_zero_responses(conn: easnb.Connection) -> None:
    g = conn.generate("gen", "a b c", max_tokens=3).finish()
    assert g.text == " You said: a" and g.finish_reason == "length" and g.tokens == 3 and g.time_to_first_token > 0
    empty = conn.stream("gen", prompt("nothing", max_tokens=0))
    assert empty.collect() == [] and empty.finished and len(empty.arrivals) == 1


def test_unary_infer_is_unimplemented(conn: easnb.Connection) -> None:
    with pytest.raises(easnb.UnimplementedError, match="decoupled") as caught:
        conn.infer("gen", prompt("x"))
    assert "conn.stream" in caught.value.hint


def test_error_mid_stream_keeps_its_id(conn: easnb.Connection) -> None:
    with pytest.raises(easnb.StreamError) as caught:
        conn.stream("gen", prompt("please fail"), request_id="bad-7").collect()
    assert caught.value.request_id == "bad-7" and caught.value.final is True
    assert [r["text_output"][0] for r in caught.value.received] == [b" You", b" said:"]
    assert "failed on purpose" in caught.value.details


def test_the_grpc_error_header(conn: easnb.Connection) -> None:
    with pytest.raises(easnb.ServerError) as caught:
        conn.stream("gen", prompt("fail again"), headers={"triton_grpc_error": "true"}, request_id="h").collect()
    assert not isinstance(caught.value, easnb.StreamError) and caught.value.code.name == "INTERNAL"
    assert len(caught.value.received) == 2 and caught.value.request_id == "h"


def test_interleaved_requests_on_one_stream(conn: easnb.Connection) -> None:
    texts = {"one two three": None, "four": None, "fail here": None, "five six": None}
    with conn.open_stream("gen") as shared:
        streams = {t: shared.submit(prompt(t, delay_ms=50)) for t in texts}
        for text, stream in streams.items():
            try:
                texts[text] = "".join(r["text_output"][0].decode() for r in stream)
            except easnb.StreamError as exc:
                texts[text] = exc
        zero = shared.submit(prompt("z", max_tokens=0))
        assert zero.collect() == [] and zero.finished
    assert texts["one two three"] == " You said: one two three." and texts["five six"] == " You said: five six."
    assert isinstance(texts["fail here"], easnb.StreamError)
    assert texts["fail here"].request_id == streams["fail here"].request_id
    # the two model instances ran the first two requests at once: their responses interleaved on the one stream
    # (overlapping in time; a loaded machine may start the second instance a few tokens late)
    first, second = streams["one two three"].arrivals, streams["four"].arrivals
    assert min(second) < max(first) and min(first) < max(second)


def test_cancel_is_seen_by_the_server(conn: easnb.Connection, triton: tuple[str, Path]) -> None:
    log = triton[1]
    before = log.read_text().count("Cancellation notification received for ModelStreamInferHandler")
    stream = conn.stream("gen", prompt("a b c d e f g h i j", delay_ms=200))
    for _ in stream:
        break
    assert stream.cancelled
    ends = time.monotonic() + 10
    while log.read_text().count("Cancellation notification received for ModelStreamInferHandler") <= before:
        assert time.monotonic() < ends, "tritonserver never logged the cancellation"
        time.sleep(0.1)


def test_a_lone_request_left_on_a_shared_stream_is_cancelled_on_triton(conn: easnb.Connection,
                                                                       triton: tuple[str, Path]) -> None:
    log = triton[1]
    before = log.read_text().count("Cancellation notification received for ModelStreamInferHandler")
    with conn.open_stream("gen") as shared:
        for _ in shared.submit(prompt("a b c d e f g h i j", delay_ms=200)):
            break  # nothing else in flight: the call ends, Triton stops generating
        ends = time.monotonic() + 10
        while log.read_text().count("Cancellation notification received for ModelStreamInferHandler") <= before:
            assert time.monotonic() < ends, "tritonserver never logged the cancellation"
            time.sleep(0.1)
        after = shared.submit(prompt("k l"))  # on a call of its own
        assert "".join(r["text_output"][0].decode() for r in after) == " You said: k l." and after.finished


def test_timeouts_against_triton(conn: easnb.Connection) -> None:
    with pytest.raises(easnb.DeadlineError, match="between_responses_timeout"):
        conn.stream("gen", prompt("a b c d", delay_ms=600), between_responses_timeout=0.2, first_response_timeout=5).collect()
    cancel_later = conn.stream("gen", prompt("a b c d e f", delay_ms=150))
    threading.Timer(0.4, cancel_later.cancel).start()
    assert len(cancel_later.collect()) < 8 and cancel_later.cancelled


def test_asyncio_against_triton(triton: tuple[str, Path]) -> None:
    async def main() -> tuple:
        async with easnb.aio.connect(triton[0], timeout=20) as aconn:
            g = aconn.generate("gen", "async works", max_tokens=8)
            pieces = [p async for p in g]
            with pytest.raises(easnb.StreamError) as caught:
                await (await aconn.stream("gen", prompt("fail"), request_id="af")).collect()
            return pieces, g, caught.value

    pieces, g, error = asyncio.run(main())
    assert pieces == [" You", " said:", " async", " works."] and g.finished and g.finish_reason == "stop"
    assert error.request_id == "af" and len(error.received) == 2
