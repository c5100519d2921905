"""Well-known types given Python values: BytesValue takes bytes as they are (they were base64-decoded
into garbage), Struct/Value/ListValue take numpy numbers and arrays, and a reply holding NaN in a
Value prints as JSON instead of raising; sync and aio, through a .proto and an echo server on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import message_factory, struct_pb2

import easnb
import easnb.aio
from easnb._proto import load_pool
from easnb.protoc import compile_descriptor_set
from easnb.services import to_json

PROTO = Path(__file__).parent / "protos" / "wellknown.proto"
RAW = b"alpha beta\x00\xff"


class Echo:
    """``wellknown.Boxes/Echo`` answering each request's bytes unchanged; keeps them, parsed."""

    def __init__(self) -> None:
        pool = load_pool(compile_descriptor_set(PROTO))
        self.Box = message_factory.GetMessageClass(pool.FindMessageTypeByName("wellknown.Box"))
        self.received: list[Any] = []
        handler = grpc.method_handlers_generic_handler(
            "wellknown.Boxes", {"Echo": grpc.unary_unary_rpc_method_handler(self._echo)})
        self.server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[handler])
        self.endpoint = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def _echo(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        self.received.append(self.Box.FromString(raw))
        return raw


@pytest.fixture(scope="module")
def echo() -> Iterator[Echo]:
    server = Echo()
    yield server
    server.server.stop(None)


def test_bytes_reach_bytes_value_as_they_are(echo: Echo) -> None:
    with easnb.connect(echo.endpoint) as conn:
        call = conn.service(str(PROTO), "wellknown.Boxes").Echo
        call({"bv": RAW, "bvs": [RAW, bytearray(b"x")], "named": {"k": RAW}})
        call({"any": {"@type": "type.googleapis.com/google.protobuf.BytesValue", "value": RAW}})
    first, second = echo.received[-2:]
    assert first.bv.value == RAW and [b.value for b in first.bvs] == [RAW, b"x"] and first.named["k"].value == RAW
    from google.protobuf import wrappers_pb2

    inner = wrappers_pb2.BytesValue()
    second.any.Unpack(inner)
    assert inner.value == RAW


def test_struct_values_take_numpy(echo: Echo) -> None:
    with easnb.connect(echo.endpoint) as conn:
        call = conn.service(str(PROTO), "wellknown.Boxes").Echo
        reply = call({"s": {"n": np.int64(3), "x": np.float32(1.5), "a": np.array([1, 2]), "t": (True, None)},
                      "v": np.float64(2.5), "l": np.arange(3)})
    assert to_json(reply) == {"s": {"n": 3.0, "x": 1.5, "a": [1.0, 2.0], "t": [True, None]}, "v": 2.5,
                              "l": [0.0, 1.0, 2.0], "bvs": [], "named": {}}


def test_a_reply_with_nan_in_a_value_prints_as_json(echo: Echo) -> None:
    box = echo.Box()
    box.s.update({"nan": float("nan"), "inf": float("inf"), "deep": {"x": [float("-inf"), 1.0]}})
    box.v.number_value = float("nan")
    with easnb.connect(echo.endpoint) as conn:
        reply = conn.service(str(PROTO), "wellknown.Boxes").Echo(box)  # was json_format's SerializeToJsonError
        assert reply.s.fields["nan"].number_value != reply.s.fields["nan"].number_value  # the reply keeps NaN
        got = to_json(reply)
    assert got["s"] == {"nan": "NaN", "inf": "Infinity", "deep": {"x": ["-Infinity", 1.0]}} and got["v"] == "NaN"
    json.dumps(got, allow_nan=False)
    struct = struct_pb2.Struct()
    struct.update({"a": float("nan")})
    assert to_json(struct) == {"a": "NaN"}


def test_aio_takes_the_same(echo: Echo) -> None:
    async def run() -> Any:
        async with easnb.aio.connect(echo.endpoint) as conn:
            call = (await conn.service(str(PROTO), "wellknown.Boxes")).Echo
            return await call({"bv": RAW, "s": {"n": np.int64(3), "bad": float("nan")}})

    reply = asyncio.run(run())
    assert echo.received[-1].bv.value == RAW
    assert to_json(reply)["s"] == {"n": 3.0, "bad": "NaN"}
