"""A hostile server's token replies that match a learned layout and then change or lie: conn.stream, easnb.aio and
a Generation over the stream give exactly what decoding every reply afresh gives (the same results, pieces, counts,
or the same typed error), with no crash and no stall."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

import easnb
import easnb.aio
from easnb import _proto
from easnb.generate import Generation
from easnb.parameters import set_parameters
from easnb.stream_plans import inner_reply
from easnb.stream_wire import encode_stream_response
from easnb.streaming import Reader

from .test_streaming_hostile import INPUTS, stream_server


def text(value: bytes) -> bytes:
    return struct.pack("<I", len(value)) + value


def frame(*outputs: tuple[str, str, list[int], bytes], final: bool = False) -> bytes:
    """A ModelStreamInferResponse holding one reply whose outputs are (name, datatype, shape, raw bytes)."""
    r = _proto.ModelInferResponse(model_name="m", model_version="1", id="req")
    set_parameters(r.parameters, {"triton_final_response": final})
    for name, datatype, shape, raw in outputs:
        r.outputs.add(name=name, datatype=datatype, shape=shape)
        r.raw_output_contents.append(raw)
    return encode_stream_response(r.SerializeToString())


def tok(piece: bytes, finish: bytes = b"", final: bool = False) -> bytes:
    return frame(("text_output", "BYTES", [1], text(piece)), ("finish_reason", "BYTES", [1], text(finish)), final=final)


def inner(data: bytes) -> bytes:
    """The ModelInferResponse inside a frame (changed and wrapped again, it reaches the learned layout's check)."""
    found = inner_reply(data)
    assert found is not None
    return found


PLAIN = [tok(b" one"), tok(b" two")]
END = frame(final=True)
SEQUENCES = {
    "text as it comes": [*PLAIN, tok(b"\xff bad"), tok(b"\xc3"), tok(b"\xa9"), tok(b""), tok(b" end", b"stop"), END],
    "shape changes": [*PLAIN, frame(("text_output", "BYTES", [1, 1], text(b" 2d")), ("finish_reason", "BYTES", [1], text(b""))),
                      tok(b" back"), END],
    "finish_reason a number": [*PLAIN, frame(("text_output", "BYTES", [1], text(b" n")),
                                             ("finish_reason", "INT32", [1], struct.pack("<i", 1))), tok(b" x"), END],
    "text a number": [*PLAIN, frame(("text_output", "FP32", [1], struct.pack("<f", 1.0)),
                                    ("finish_reason", "BYTES", [1], text(b""))), END],
    "an extra output, one missing": [*PLAIN, frame(("text_output", "BYTES", [1], text(b" e")), ("x", "FP32", [2], bytes(8))),
                                     frame(("text_output", "BYTES", [1], text(b" m"))), tok(b" back"), END],
    "num_output_tokens late": [*PLAIN, frame(("text_output", "BYTES", [1], text(b" c")), ("finish_reason", "BYTES", [1], text(b"")),
                                             ("num_output_tokens", "INT32", [1], struct.pack("<i", 5))), tok(b" after"), END],
    "num_output_tokens text": [*PLAIN, frame(("text_output", "BYTES", [1], text(b" c")),
                                             ("num_output_tokens", "BYTES", [1], text(b"5"))), END],
    "several text elements": [*PLAIN, frame(("text_output", "BYTES", [3], text(b"a") + text(b"\xff") + text(b"c")),
                                            ("finish_reason", "BYTES", [2], text(b"st") + text(b"op"))), tok(b" z"), END],
    "a token cut short": [*PLAIN, encode_stream_response(inner(tok(b" three"))[:-1]), END],
    "a prefix that lies": [*PLAIN, frame(("text_output", "BYTES", [1], struct.pack("<I", 9) + b" lie"),
                                         ("finish_reason", "BYTES", [1], text(b""))), END],
    "a prefix short of its text": [*PLAIN, frame(("text_output", "BYTES", [1], struct.pack("<I", 2) + b" lie"),
                                                 ("finish_reason", "BYTES", [1], text(b""))), END],
    "the head alone": [*PLAIN, encode_stream_response(inner(tok(b""))[:-12]), END],
    "the head and a tag": [*PLAIN, encode_stream_response(inner(tok(b""))[:-11]), END],
    "a raw field too many": [*PLAIN, encode_stream_response(inner(tok(b" x")) + b"\x32\x00"), END],
    "an unknown field after": [*PLAIN, encode_stream_response(inner(tok(b" x")) + b"\x78\x01"), END],
    "a long length varint": [*PLAIN, encode_stream_response(inner(tok(b" x")).replace(b"\x32\x06\x02\x00\x00\x00 x",
                                                                                       b"\x32\x86\x00\x02\x00\x00\x00 x")), END],
    "a huge token": [*PLAIN, tok(b"y" * 3_000_000), tok(b" small"), END],
    "the final token holds text": [*PLAIN, tok(b" last", b"length", final=True)],
    "a final token, then more": [*PLAIN, tok(b" last", final=True), tok(b" ignored"), END],
}


def eager(frames: list[bytes], as_str: bool) -> tuple[list[Any], Any]:
    """What the stream should give: each reply decoded by a reader that has learned nothing."""
    results: list[Any] = []
    for data in frames:
        try:
            result, final, error = Reader("triton", "m", False, as_str).read(data)
        except easnb.EasnbError as exc:
            return results, type(exc)
        if error:
            return results, easnb.StreamError
        if result is not None:
            results.append(result)
        if final:
            break
    return results, None


def seen(results: list[Any]) -> list[Any]:
    return [r.to_dict(bytes_as="base64") | {"datatypes": dict(r.datatypes)} for r in results]


def generated(source: Any) -> Any:
    g = Generation(source)
    try:
        pieces = list(g)
    except easnb.EasnbError as exc:
        return type(exc), g.pieces
    return pieces, g.text, g.finish_reason, g.tokens


def replay(results: list[Any], error: Any) -> Iterator[Any]:
    """The fresh decode's results, then its error (as the stream raises it)."""
    yield from results
    if error is not None:
        raise error("the stream's error")


def serve(frames: list[bytes]) -> tuple[grpc.Server, str]:
    def handle(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in requests:
            yield from frames
            return

    return stream_server(handle)


@pytest.mark.parametrize("name", SEQUENCES)
def test_a_changing_or_lying_layout_reads_as_a_fresh_decode_of_each_reply(name: str) -> None:
    frames = SEQUENCES[name]
    server, endpoint = serve(frames)
    try:
        with easnb.connect(endpoint) as conn:
            for as_str in (False, True):
                expected, error = eager(frames, as_str)
                stream = conn.stream("m", INPUTS, flavour="triton", bytes_as_str=as_str, between_responses_timeout=10)
                got: list[Any] = []
                caught = None
                try:
                    for result in stream:
                        got.append(result)
                except easnb.EasnbError as exc:
                    caught = type(exc)
                    assert seen(list(exc.received)) == seen(got)  # type: ignore[attr-defined]
                assert (seen(got), caught) == (seen(expected), error)
                assert type(got[1].outputs).__name__ == "StreamOutputs"  # the learned layout was used
                assert seen(stream.responses) == seen(expected)
            with conn.open_stream("m", flavour="triton", bytes_as_str=True) as shared:  # the shared stream's reader too
                mine = shared.submit(INPUTS, request_id="req", between_responses_timeout=10)
                try:
                    outcome: Any = seen(mine.collect()), None
                except easnb.EasnbError as exc:
                    outcome = seen(list(exc.received)), type(exc)  # type: ignore[attr-defined]
                assert outcome == (seen(expected), error)
            live = generated(conn.stream("m", INPUTS, flavour="triton", bytes_as_str=True, between_responses_timeout=10))
            assert live == generated(replay(*eager(frames, True)))

        async def through_aio() -> Any:
            async with easnb.aio.connect(endpoint) as aconn:
                got: list[Any] = []
                try:
                    async for result in await aconn.stream("m", INPUTS, flavour="triton", bytes_as_str=True,
                                                           between_responses_timeout=10):
                        got.append(result)
                except easnb.EasnbError as exc:
                    return seen(got), type(exc)
                return seen(got), None

        expected, error = eager(frames, True)
        assert asyncio.run(through_aio()) == (seen(expected), error)
    finally:
        server.stop(None)
