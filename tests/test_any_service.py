"""Any gRPC service: discovered, built from reflection or a .proto, called in code, async and from the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import easnb
import easnb.aio
from easnb.demo import DemoServer
from easnb.services import to_json

from .kitchen import EVERYTHING, PROTO, Kitchen

pytestmark = pytest.mark.core

pytest.importorskip("grpc_reflection", reason="the proto extra (grpcio-reflection) is not installed")


@pytest.fixture(scope="module")
def kitchen() -> Iterator[Kitchen]:
    server = Kitchen()
    yield server
    server.stop()


def same_json(reply: dict[str, Any], sent: dict[str, Any]) -> None:
    assert {k: reply[k] for k in sent} == sent


@pytest.mark.parametrize("source", ["reflection", "proto"])
def test_every_field_kind_and_streaming_kind(kitchen: Kitchen, source: str) -> None:
    with easnb.connect(kitchen.endpoint) as conn:
        client = conn.service("kitchen.Kitchen") if source == "reflection" else conn.service(PROTO, "kitchen.Kitchen")
        kitchen.received.clear()
        reply = client.Echo(EVERYTHING)
        assert kitchen.received == [EVERYTHING]  # the server parsed exactly what was sent
        same_json(to_json(reply), EVERYTHING)  # and it comes back exact: int64/uint64 extremes included
        assert [to_json(r) for r in client.Count(label="c", values=[5, 6, 7])] == [
            {"label": "c-0", "values": [5]}, {"label": "c-1", "values": [6]}, {"label": "c-2", "values": [7]}
        ]
        assert client.Sum([{"values": [1, 2]}, {"values": [3]}, {"label": "x"}]).values == [6]
        chat = [to_json(r) for r in client.Chat(iter([{"label": "a", "values": [1]}, {"label": "b", "values": [2, 3]}]))]
        assert chat == [{"label": "a", "values": [2]}, {"label": "b", "values": [4, 6]}]
        assert [m.kind for m in client.methods.values()] == ["unary_unary", "unary_stream", "stream_unary", "stream_stream"]


def test_a_server_stream_can_be_cancelled(kitchen: Kitchen) -> None:
    with easnb.connect(kitchen.endpoint) as conn:
        replies = conn.service("kitchen.Kitchen").Count(label="slow", values=list(range(20)))
        got = []
        for reply in replies:
            got.append(reply.label)
            replies.cancel()
        assert got == ["slow-0"]


def test_discovery_and_services(kitchen: Kitchen, demo: DemoServer) -> None:
    with easnb.connect(kitchen.endpoint) as conn:
        found = conn.discover()
        assert not found.v2 and found.health == "SERVING" and found.reflection in ("v1", "v1alpha")
        assert found.other_services == ("kitchen.Kitchen",) and "kitchen.Kitchen" in found.summary()
        assert conn.services() == ["grpc.health.v1.Health", "kitchen.Kitchen"]
        with pytest.raises(easnb.UnimplementedError) as info:
            conn.model_metadata("m")  # the hint now names what the server does offer
        assert "kitchen.Kitchen" in info.value.hint
        with pytest.raises(LookupError, match="It offers: grpc.health.v1.Health, kitchen.Kitchen"):
            conn.service("kitchen.Pantry")
    with easnb.connect(demo.endpoint, token=demo.token) as conn:
        found = conn.discover()
        assert found.v2 and found.ready and found.server.name == "easnb-demo" and found.health == "SERVING"
        assert "helloworld.GreeterService" in found.other_services
        assert conn.service("helloworld.GreeterService").SayHello(name="R").message == "Hello, R!"


def test_without_reflection_the_error_says_to_pass_the_proto() -> None:
    plain = Kitchen(reflection=False, health=False)
    try:
        with easnb.connect(plain.endpoint) as conn:
            found = conn.discover()
            assert found.services is None and found.health is None and "file.proto" in found.summary()
            with pytest.raises(easnb.UnimplementedError) as info:
                conn.service("kitchen.Kitchen")
            assert "offers no server reflection" in info.value.message and ".proto" in info.value.hint
            assert conn.service(PROTO, "kitchen.Kitchen").Echo(f_int32=3).f_int32 == 3
    finally:
        plain.stop()


def test_async_service(kitchen: Kitchen) -> None:
    async def run() -> tuple[Any, list[str]]:
        async with easnb.aio.connect(kitchen.endpoint) as conn:
            client = await conn.service("kitchen.Kitchen")
            echoed = await client.Echo(EVERYTHING)
            labels = [r.label async for r in await client.Count(label="a", values=[1, 2])]
            total = await client.Sum([{"values": [4]}, {"values": [5]}])
            assert total.values == [9]
            return echoed, labels

    echoed, labels = asyncio.run(run())
    same_json(to_json(echoed), EVERYTHING)
    assert labels == ["a-0", "a-1"]


def cli(*args: str, data: str | None = None, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EASNB_TOKEN"}
    if token:
        env["EASNB_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "easnb", *args], input=data, capture_output=True, text=True, env=env, timeout=60
    )


def documents(text: str) -> list[Any]:
    decoder, out, i = json.JSONDecoder(), [], 0
    while i < len(text.strip()):
        value, i = decoder.raw_decode(text, i)
        out.append(value)
        while i < len(text) and text[i].isspace():
            i += 1
    return out


def test_cli_with_grpcurls_habits(kitchen: Kitchen, tmp_path: Any) -> None:
    endpoint = kitchen.endpoint
    listed = cli("list", endpoint)
    with easnb.connect(endpoint) as conn:  # the command line and the code list the same services
        assert listed.returncode == 0 and listed.stdout.split() == conn.services() == ["grpc.health.v1.Health", "kitchen.Kitchen"]
    assert cli("list", endpoint, "kitchen.Kitchen").stdout.split() == [
        "kitchen.Kitchen.Echo", "kitchen.Kitchen.Count", "kitchen.Kitchen.Sum", "kitchen.Kitchen.Chat"
    ]
    described = cli("describe", endpoint, "kitchen.Everything").stdout
    assert "map<string, int64> counts = 19;" in described and "int32 number = 21;  // oneof choice" in described
    assert "rpc Chat ( stream .kitchen.Inner ) returns ( stream .kitchen.Inner );" in cli("describe", endpoint, "kitchen.Kitchen").stdout
    kitchen.received.clear()
    echo = cli("call", endpoint, "kitchen.Kitchen/Echo", "--data", json.dumps(EVERYTHING))
    assert echo.returncode == 0, echo.stderr
    same_json(documents(echo.stdout)[0], EVERYTHING)
    assert kitchen.received == [EVERYTHING]
    (tmp_path / "req.json").write_text('{"label": "f", "values": [1, 2]}')
    streamed = cli("call", endpoint, "kitchen.Kitchen.Count", "--data", "@" + str(tmp_path / "req.json"), "--proto", str(PROTO))
    assert [d["label"] for d in documents(streamed.stdout)] == ["f-0", "f-1"]
    summed = cli("call", endpoint, "kitchen.Kitchen/Sum", data='{"values": [1]} {"values": [2, 3]}')
    assert documents(summed.stdout) == [{"label": "sum", "values": [6]}]
    assert cli("call", endpoint, "kitchen.Kitchen/Echo", "--data", "{not json").returncode == 2
    assert cli("call", endpoint, "kitchen.Kitchen/Echo", "--data", '{"no_such_field": 1}').returncode == 2
    nope = cli("call", endpoint, "kitchen.Kitchen/Nope", "--data", "{}")
    assert nope.returncode == 1 and "Methods: Echo, Count, Sum, Chat" in nope.stderr and "Traceback" not in nope.stderr
    assert cli("call", "127.0.0.1:1", "kitchen.Kitchen/Echo", "--proto", str(PROTO), "--data", "{}").returncode == 1


def test_cli_token_from_environment_and_wrong_token(demo: DemoServer) -> None:
    ok = cli("call", demo.endpoint, "helloworld.GreeterService/SayHello", "-d", '{"name": "env"}', token=demo.token)
    assert ok.returncode == 0 and documents(ok.stdout) == [{"message": "Hello, env!"}]
    wrong = cli("call", demo.endpoint, "helloworld.GreeterService/SayHello", "-d", "{}", token="wrong")
    assert wrong.returncode == 1 and "AuthenticationError" not in wrong.stderr and "token" in wrong.stderr


def test_many_threads_share_one_reflected_client(kitchen: Kitchen) -> None:
    with easnb.connect(kitchen.endpoint) as conn:
        client = conn.service("kitchen.Kitchen")
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for i in range(20):
                    assert client.Echo(f_int64=i).f_int64 == i
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors


def test_gateway_passes_reflection_and_health_through_behind_its_token_check(demo: DemoServer) -> None:
    from easnb.demo import Gateway

    with Gateway(demo.endpoint, token="front", backend_token=demo.token) as gw:
        with easnb.connect(gw.endpoint, token="front") as conn:
            found = conn.discover()
            assert found.v2 and found.health == "SERVING" and "helloworld.GreeterService" in found.services
            assert conn.service("helloworld.GreeterService").SayHello(name="gw").message == "Hello, gw!"
        with easnb.connect(gw.endpoint, token="wrong") as conn:
            with pytest.raises(easnb.AuthenticationError):
                conn.services()
