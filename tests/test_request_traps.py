"""Request dicts that protobuf's message constructor takes silently wrong are refused by field,
sync and aio, and nothing reaches the server (issue 23.3's kind: a request is checked before the call)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import easnb
import easnb.aio

from .kitchen import Kitchen

pytest.importorskip("grpc_reflection", reason="the proto extra (grpcio-reflection) is not installed")

TRAPS = [
    ({"tags": "abc"}, "tags", "repeated, so it takes a list"),  # was sent as ['a', 'b', 'c']
    ({"inner": {"label": "x", "values": [1]}, "tags": b"ab"}, "tags", "repeated"),
    ({"text": "a", "number": 1}, "number", r"one oneof \('choice'\)"),  # was sent as number=1 only
    ({"f_float": 1e40}, "f_float", "largest value is about 3.4e38"),  # was sent as Infinity
    ({"f_float": -1e39}, "f_float", "is a float"),
]


@pytest.fixture(scope="module")
def kitchen() -> Iterator[Kitchen]:
    server = Kitchen()
    yield server
    server.server.stop(None)


@pytest.mark.parametrize(("request_", "field", "words"), TRAPS)
def test_what_the_constructor_would_bend_is_refused_by_field(kitchen: Kitchen, request_: dict[str, Any], field: str, words: str) -> None:
    before = len(kitchen.received)
    with easnb.connect(kitchen.endpoint) as conn:
        echo = conn.service("kitchen.Kitchen").Echo
        with pytest.raises(easnb.RequestError, match=words) as caught:
            echo(request_)
        assert caught.value.field == field
        assert "server" not in str(caught.value).lower()
        # the right values still go as they are
        assert echo({"tags": ("a", "b"), "number": 1, "f_float": 3e38, "text": None}).tags == ["a", "b"]
        assert echo({"f_float": float("inf")}).f_float == float("inf")
    assert len(kitchen.received) == before + 2


def test_aio_refuses_the_same(kitchen: Kitchen) -> None:
    async def run() -> list[Any]:
        found = []
        async with easnb.aio.connect(kitchen.endpoint) as conn:
            echo = (await conn.service("kitchen.Kitchen")).Echo
            for request_, _, _ in TRAPS:
                try:
                    await echo(request_)
                except Exception as exc:  # noqa: BLE001 - the type is what is checked
                    found.append(exc)
        return found

    errors = asyncio.run(run())
    assert [type(e) for e in errors] == [easnb.RequestError] * len(TRAPS)
    assert [e.field for e in errors] == [field for _, field, _ in TRAPS]


def test_a_message_of_the_same_type_from_another_pool_is_taken(kitchen: Kitchen) -> None:
    with easnb.connect(kitchen.endpoint) as conn:
        echo = conn.service("kitchen.Kitchen").Echo
        assert echo(kitchen.Everything(f_int32=3, tags=["x"])).f_int32 == 3  # was a raw TypeError ('partial')
    assert kitchen.received[-1] == {"f_int32": 3, "tags": ["x"]}


@pytest.mark.parametrize(("argument", "bad"), [("timeout", "5"), ("timeout", -1), ("timeout", float("nan")),
                                               ("timeout", True), ("headers", [("a", "b")]), ("headers", "a=b")])
def test_a_method_call_checks_its_own_arguments(kitchen: Kitchen, argument: str, bad: Any) -> None:
    before = len(kitchen.received)
    with easnb.connect(kitchen.endpoint) as conn:
        service = conn.service("kitchen.Kitchen")
        for call in (lambda: service.Echo({"f_int32": 1}, **{argument: bad}),  # was grpc's raw TypeError
                     lambda: list(service.Count({"values": [1]}, **{argument: bad})),
                     lambda: service.Sum([{"values": [1]}], **{argument: bad})):
            with pytest.raises(easnb.ArgumentError) as caught:
                call()
            assert caught.value.argument == argument

    async def aio() -> None:
        async with easnb.aio.connect(kitchen.endpoint) as aconn:
            await (await aconn.service("kitchen.Kitchen")).Echo({"f_int32": 1}, **{argument: bad})

    with pytest.raises(easnb.ArgumentError):
        asyncio.run(aio())
    assert len(kitchen.received) == before


@pytest.mark.parametrize("bad", [1.5, True, 2**40, -(2**31) - 1, [1]])
def test_an_enum_takes_a_name_or_a_whole_int32(kitchen: Kitchen, bad: Any) -> None:
    with easnb.connect(kitchen.endpoint) as conn:
        echo = conn.service("kitchen.Kitchen").Echo
        with pytest.raises(easnb.RequestError, match="is the enum kitchen.Colour, which takes a name or a whole number") as caught:
            echo({"colour": bad})  # 1.5 and True were sent as RED, 2**40 as nothing
        assert caught.value.field == "colour" and "RED" in caught.value.hint
        assert [echo({"colour": ok}).colour for ok in ("GREEN", 2, 1.0, -1)] == [2, 2, 1, -1]


def test_none_in_a_client_stream_is_refused_not_sent_empty(kitchen: Kitchen) -> None:
    before = len(kitchen.received)

    def gen() -> Iterator[Any]:
        yield {"values": [1]}
        yield None

    with easnb.connect(kitchen.endpoint) as conn:
        service = conn.service("kitchen.Kitchen")
        with pytest.raises(easnb.RequestError, match="Request 2 of 2 to /kitchen.Kitchen/Sum is None"):
            service.Sum([{"values": [1]}, None])  # was sent as an empty second request
        with pytest.raises(easnb.RequestError, match="Request 2 to /kitchen.Kitchen/Chat is None"):
            list(service.Chat(gen()))
        assert service.Sum([{"values": [1]}, {}]).values == [1]
    assert all(r != {} for r in kitchen.received[before:-1])
