"""easnb's streams against MLServer's streaming runtime (predict_stream, parallel_workers: 0): one start per module."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import easnb
import easnb.aio

from .test_interop_mlserver import serving

pytestmark = [pytest.mark.mlserver, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("mlserver-stream")
    with serving(folder, "mlserver_stream_model", "gen") as endpoint:
        yield endpoint, folder / "gen" / "cancelled.log"

@pytest.fixture()
def conn(mlserver: tuple[str, Path]) -> Iterator[easnb.Connection]:
    with easnb.connect(mlserver[0], timeout=20) as connection:
        yield connection


def prompt(text: str, **sampling: object) -> dict[str, np.ndarray]:
    inputs = {"text_input": np.array([text.encode()], dtype=object)}
    if sampling:
        inputs["sampling_parameters"] = np.array([json.dumps(sampling).encode()], dtype=object)
    return inputs


def test_tokens_as_text_and_the_end_of_the_call(conn: easnb.Connection) -> None:
    stream = conn.stream("gen", prompt("hello mlserver"), request_id="m-1")
    texts = [r["text_output"].reshape(-1)[0] for r in stream]
    assert texts == [" You", " said:", " hello", " mlserver."]  # content_type: str decodes without bytes_as_str
    assert stream.finished and len(stream.arrivals) == 4 and conn.stream_flavour == "mlserver"
    assert all(r.id == "m-1" for r in stream.responses)


def test_generate_reads_the_metadata(conn: easnb.Connection) -> None:
    g = conn.generate("gen", "one two three", max_tokens=4).finish()
    assert g.text == " You said: one two" and g.finish_reason == "length" and g.tokens == 4


def test_error_mid_stream(conn: easnb.Connection) -> None:
    with pytest.raises(easnb.ServerError) as caught:
        conn.stream("gen", prompt("please fail"), request_id="bad-3").collect()
    assert caught.value.code.name == "INTERNAL" and "failed on purpose" in caught.value.details
    assert caught.value.request_id == "bad-3" and len(caught.value.received) == 2


def test_zero_responses(conn: easnb.Connection) -> None:
    # MLServer 1.7's handler reads the last response to set trailers, so a request that produced none
    # fails on its side (UnboundLocalError -> INTERNAL): easnb says so, with nothing received
    with pytest.raises(easnb.ServerError) as caught:
        conn.stream("gen", prompt("x", max_tokens=0), request_id="z").collect()
    assert caught.value.code.name == "INTERNAL" and caught.value.received == () and caught.value.request_id == "z"


def test_several_requests_behind_one_api(conn: easnb.Connection) -> None:
    texts = ["a b", "c", "fail now", "d e f"]
    with conn.open_stream("gen") as shared:
        streams = [shared.submit(prompt(t, delay_ms=20)) for t in texts]
        answers = []
        for stream in streams:
            try:
                answers.append("".join(r["text_output"].reshape(-1)[0] for r in stream))
            except easnb.ServerError as exc:
                answers.append(exc.request_id)
    assert answers == [" You said: a b.", " You said: c.", streams[2].request_id, " You said: d e f."]
    assert len({s.request_id for s in streams}) == 4
    assert all(r.id == s.request_id for s in streams for r in s.responses)


def test_cancel_is_seen_by_the_server(conn: easnb.Connection, mlserver: tuple[str, Path]) -> None:
    log = mlserver[1]
    stream = conn.stream("gen", prompt("a b c d e f g h", delay_ms=200), request_id="cancel-me")
    for _ in stream:
        break
    ends = time.monotonic() + 10
    while not (log.exists() and "cancel-me" in log.read_text()):
        assert time.monotonic() < ends, "MLServer's model never saw the cancellation"
        time.sleep(0.1)


def test_asyncio_against_mlserver(mlserver: tuple[str, Path]) -> None:
    async def main() -> list[str]:
        async with easnb.aio.connect(mlserver[0], timeout=20) as aconn:
            return [p async for p in aconn.generate("gen", "async too", max_tokens=8)]

    assert asyncio.run(main()) == [" You", " said:", " async", " too."]
