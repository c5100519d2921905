"""The EAS-like gateway: the seed's own server and client, streaming, metadata, load."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest

import easnb
from easnb.demo import DemoServer, Gateway
from easnb.demo.auth import check_authorization

from .seedparts import seed_behind_gateway, seed_client  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[1]


def test_seed_client_through_gateway(seed_behind_gateway) -> None:  # type: ignore[no-untyped-def]
    endpoint, token, work = seed_behind_gateway
    assert seed_client(work, endpoint, token).splitlines() == ["Initiating gRPC call...", "Hello, World!"]
    out = seed_client(work, endpoint, "not-the-token")
    assert "Call failed: StatusCode.UNAUTHENTICATED" in out


def test_easnb_through_gateway(seed_behind_gateway) -> None:  # type: ignore[no-untyped-def]
    endpoint, token, _ = seed_behind_gateway
    with easnb.connect(endpoint, token=token) as conn:
        greeter = conn.service(ROOT / "protos" / "helloworld.proto", "helloworld.GreeterService")
        assert greeter.SayHello(name="easnb").message == "Hello, easnb!"
    with easnb.connect(endpoint, token="nope") as conn:
        with pytest.raises(easnb.AuthenticationError):
            conn.service(ROOT / "protos" / "helloworld.proto", "helloworld.GreeterService").SayHello(name="x")


@pytest.mark.parametrize(
    ("metadata", "ok", "why"),
    [
        ([("authorization", "Bearer T0k")], True, None),
        ([], False, "missing"),
        ([("authorization", "T0k")], False, "malformed"),
        ([("authorization", "bearer T0k")], False, "malformed"),
        ([("authorization", "Bearer  T0k")], False, "malformed"),
        ([("authorization", "Bearer T0k ")], False, "malformed"),
        ([("authorization", "Bearer t0k")], False, "not valid"),
        ([("authorization", "Bearer T0")], False, "not valid"),
        ([("authorization", "Bearer T0k"), ("authorization", "Bearer T0k")], False, "more than one"),
    ],
)
def test_token_check_rules(metadata: list[tuple[str, str]], ok: bool, why: str | None) -> None:
    problem = check_authorization(metadata, "T0k")
    assert (problem is None) == ok
    if why:
        assert why in problem and "T0k" not in problem  # type: ignore[operator]


class Backend:
    """A plain gRPC server with unary, server-, client- and bidi-streaming methods (bytes)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

        def remember(context: grpc.ServicerContext) -> None:
            self.seen.append(dict(context.invocation_metadata()))

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            remember(context)
            if request == b"fail":
                context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
            context.set_trailing_metadata((("x-backend", "yes"),))
            return request[::-1]

        def fan_out(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            remember(context)
            for i in range(int(request)):
                yield str(i).encode()

        def collect(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
            remember(context)
            return b",".join(requests)

        def chat(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            remember(context)
            for r in requests:
                yield r.upper()

        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "FanOut": grpc.unary_stream_rpc_method_handler(fan_out),
            "Collect": grpc.stream_unary_rpc_method_handler(collect),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
        }
        self.server = grpc.server(futures.ThreadPoolExecutor(8), handlers=[grpc.method_handlers_generic_handler("test.Raw", handlers)])
        self.endpoint = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()


def test_generic_proxy_forwards_every_kind_of_call() -> None:
    backend = Backend()
    with Gateway(backend.endpoint, token="gt") as gateway, grpc.insecure_channel(gateway.endpoint) as channel:
        md = (("authorization", "Bearer gt"), ("x-trace", "abc"))
        response, call = channel.unary_unary("/test.Raw/Unary").with_call(b"hello", metadata=md, timeout=5)
        assert response == b"olleh" and ("x-backend", "yes") in call.trailing_metadata()
        assert backend.seen[-1]["x-trace"] == "abc" and "authorization" not in backend.seen[-1]
        assert list(channel.unary_stream("/test.Raw/FanOut")(b"4", metadata=md, timeout=5)) == [b"0", b"1", b"2", b"3"]
        assert channel.stream_unary("/test.Raw/Collect")(iter([b"a", b"b"]), metadata=md, timeout=5) == b"a,b"
        assert list(channel.stream_stream("/test.Raw/Chat")(iter([b"x", b"y"]), metadata=md, timeout=5)) == [b"X", b"Y"]
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary("/test.Raw/Unary")(b"fail", metadata=md, timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND and info.value.details() == "no such thing"
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary("/test.Raw/Unary")(b"x", metadata=(("authorization", "Bearer no"),), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    backend.server.stop(None)


def test_gateway_under_concurrent_load_loses_and_mixes_nothing() -> None:
    """5k calls, 64 in flight, through the gateway: every answer is its own request's."""
    gateway_load(5_000)


@pytest.mark.slow
def test_gateway_under_long_concurrent_load_loses_and_mixes_nothing() -> None:
    """The same with 20k calls (``--slow``)."""
    gateway_load(20_000)


def gateway_load(total: int) -> None:
    with DemoServer(token="") as backend, Gateway(backend.endpoint, token="load") as gateway, \
            easnb.connect(gateway.endpoint, token="load") as conn:
        stub = conn.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        md = (("authorization", "Bearer load"),)
        depth = 64
        from easnb.inference import decode_response, encode_request

        def request(i: int) -> bytes:
            return encode_request("echo", {"i": np.array([i], np.int64)}, request_id=str(i))

        seen = np.zeros(total, dtype=np.int64)
        inflight: dict[int, grpc.Future] = {}
        next_i = 0
        while next_i < total or inflight:
            while next_i < total and len(inflight) < depth:
                inflight[next_i] = stub.future(request(next_i), metadata=md, timeout=60)
                next_i += 1
            done = [i for i, f in inflight.items() if f.done()] or [next(iter(inflight))]
            for i in done:
                result = decode_response(inflight.pop(i).result())
                assert result.id == str(i) and int(result["i"][0]) == i
                seen[i] += 1
        assert (seen == 1).all()


def test_gateway_passes_the_demo_token_check() -> None:
    with DemoServer(token="") as open_demo, Gateway(open_demo.endpoint, token="gw") as gateway:
        with easnb.connect(gateway.endpoint, token="gw") as conn:
            assert conn.model_metadata("iris").name == "iris"
