"""Readiness, headers, endpoints, honest hints and deadline-bounded retries, against real servers."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import warnings
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest

import easnb
from easnb import _proto
from easnb.demo import DemoServer
from easnb.demo.server import SERVER_OPTIONS, V2Service, greeter_handler, v2_handler

from .conftest import TOKEN, eventually, free_port
from .netparts import serve, unary_handler
from .test_tls import tls_server  # noqa: F401 - a fixture

pytestmark = pytest.mark.core

# -- wait until ready -----------------------------------------------------------------------


class SlowToReady(V2Service):
    """Says "not ready" until ``ready_at``."""

    def __init__(self, ready_at: float) -> None:
        super().__init__()
        self.ready_at = ready_at

    def server_ready(self, request: Any) -> Any:
        return _proto.ServerReadyResponse(ready=time.monotonic() >= self.ready_at)

    def model_ready(self, request: Any) -> Any:
        self.model(request.name, request.version)
        return _proto.ModelReadyResponse(ready=time.monotonic() >= self.ready_at)


def test_wait_for_a_server_that_starts_late() -> None:
    port = free_port()
    late: list[DemoServer] = []
    timer = threading.Timer(1.0, lambda: late.append(DemoServer(token=TOKEN, port=port).start()))
    timer.start()
    try:
        with easnb.connect(f"127.0.0.1:{port}", token=TOKEN, timeout=1) as conn:
            started = time.monotonic()
            assert conn.wait_until_ready(timeout=20, progress=False) == "server ready"
            assert 0.9 <= time.monotonic() - started < 8
    finally:
        timer.join()
        for server in late:
            server.stop()


def test_wait_for_a_model_that_becomes_ready() -> None:
    server, port = serve([v2_handler(SlowToReady(time.monotonic() + 1.0))])
    try:
        with easnb.connect(f"127.0.0.1:{port}") as conn:
            assert not conn.model_ready("iris")
            assert conn.wait_until_ready("iris", timeout=20, progress=True) == "model iris ready"
    finally:
        server.stop(None)


def test_wait_gives_up_with_the_last_state() -> None:
    server, port = serve([v2_handler(SlowToReady(time.monotonic() + 3600))])
    try:
        with easnb.connect(f"127.0.0.1:{port}") as conn:
            started = time.monotonic()
            with pytest.raises(easnb.DeadlineError, match="last state: server not ready"):
                conn.wait_until_ready(timeout=1.5, progress=False)
            assert time.monotonic() - started < 2.5
    finally:
        server.stop(None)


def test_wait_does_not_wait_on_a_wrong_token(demo: DemoServer) -> None:
    with easnb.connect(demo.endpoint, token="wrong") as conn:
        with pytest.raises(easnb.AuthenticationError):
            conn.wait_until_ready(timeout=30, progress=False)


def test_wait_for_a_non_v2_service_uses_health_or_any_answer() -> None:
    serving = {"status": 2}

    def check(request: bytes, context: grpc.ServicerContext) -> bytes:
        return _proto.HealthCheckResponse(status=serving["status"]).SerializeToString()

    health = unary_handler("grpc.health.v1.Health", {"Check": check})
    server, port = serve([greeter_handler(), health])
    bare, bare_port = serve([greeter_handler()])
    try:
        with easnb.connect(f"127.0.0.1:{port}") as conn:
            with pytest.raises(easnb.DeadlineError, match="NOT_SERVING"):
                conn.wait_until_ready(timeout=1, progress=False)
            serving["status"] = 1
            assert conn.wait_until_ready(timeout=5, progress=False) == "health SERVING"
        with easnb.connect(f"127.0.0.1:{bare_port}") as conn:
            assert "answers" in conn.wait_until_ready(timeout=5, progress=False)
    finally:
        server.stop(None)
        bare.stop(None)


def test_cli_wait(demo: DemoServer) -> None:
    env = {"EASNB_TOKEN": demo.token, "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-m", "easnb", "wait", demo.endpoint, "--model", "iris", "--wait", "10"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert out.returncode == 0 and "model iris ready" in out.stdout, out.stderr


# -- headers ---------------------------------------------------------------------------------


def test_headers_reach_the_server_on_every_kind_of_call(recording_server) -> None:  # type: ignore[no-untyped-def]
    endpoint, recorder = recording_server
    with easnb.connect(endpoint, token="t0k", headers={"X-Request-Id": "conn"}) as conn:
        conn.live()
        conn.infer("echo", {"x": np.ones(16, np.float32)}, headers={"mm-vmodel-id": "m1"})
        conn.model_metadata("iris", headers={"x-request-id": "call"})
        greeter = conn.service("protos/helloworld.proto", "helloworld.GreeterService")
        greeter.SayHello(name="x", headers={"x-trace": "svc"})
    by_method = {m.rsplit("/", 1)[-1]: md for m, md in recorder.calls}
    assert by_method["ServerLive"]["x-request-id"] == "conn"
    assert by_method["ModelInfer"]["mm-vmodel-id"] == "m1" and by_method["ModelInfer"]["authorization"] == "Bearer t0k"
    assert by_method["ModelMetadata"]["x-request-id"] == "call"  # the call's header wins over the connection's
    assert [k for k, _ in recorder.calls[2][1].items()].count("x-request-id") == 1
    assert by_method["SayHello"]["x-trace"] == "svc" and by_method["SayHello"]["x-request-id"] == "conn"


def test_headers_on_async_calls(recording_server) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    import easnb.aio

    endpoint, recorder = recording_server

    async def run() -> None:
        async with easnb.aio.connect(endpoint, headers={"x-request-id": "aio"}) as conn:
            await conn.live(headers={"x-extra": "1"})

    asyncio.run(run())
    method, metadata = recorder.calls[-1]
    assert metadata["x-request-id"] == "aio" and metadata["x-extra"] == "1"


def test_cli_header_option(recording_server) -> None:  # type: ignore[no-untyped-def]
    endpoint, recorder = recording_server
    out = subprocess.run(
        [sys.executable, "-m", "easnb", "ping", endpoint, "--header", "x-request-id: cli-1", "--keepalive", "120"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert any(md.get("x-request-id") == "cli-1" for _, md in recorder.calls)


@pytest.mark.parametrize("headers", [{"authorization": "Bearer x"}, {"Authorization": "x"}])
def test_authorization_header_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(easnb.EasnbError, match="token"):
        easnb.connect("127.0.0.1:1", headers=headers)
    with easnb.connect("127.0.0.1:1") as conn, pytest.raises(easnb.EasnbError, match="authorization"):
        conn.live(headers=headers)


@pytest.mark.parametrize("headers", [{"bad key": "v"}, {"grpc-timeout": "1"}, {"x": "caf\u00e9"}, {"x-bin": "text"}])
def test_unsendable_headers_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(easnb.EasnbError):
        easnb.connect("127.0.0.1:1", headers=headers)


# -- endpoints --------------------------------------------------------------------------------


def test_http_gateway_url_with_a_path_is_explained() -> None:
    with pytest.raises(easnb.EndpointError) as info:
        easnb.parse_endpoint("http://123456.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/grpc_test")
    assert "port 80" in info.value.hint and "<service>.<uid>.<region>.pai-eas.aliyuncs.com:80" in info.value.hint
    assert easnb.parse_endpoint("http://a.b.cn-hangzhou.pai-eas.aliyuncs.com/").port == 80


def test_eas_host_on_an_odd_port_warns() -> None:
    with pytest.warns(UserWarning, match="port 80"):
        easnb.parse_endpoint("svc.1.cn-hangzhou.pai-eas.aliyuncs.com:8080")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        easnb.parse_endpoint("svc.1.cn-hangzhou.pai-eas.aliyuncs.com:80")
        easnb.parse_endpoint("localhost:8080")


@pytest.mark.parametrize("text", ["[zz]:80", "[1.2.3.4]:80", "[]:80", "http://[example.com]/"])
def test_bracketed_hosts_must_be_ipv6(text: str) -> None:
    with pytest.raises(easnb.EndpointError):
        easnb.parse_endpoint(text)


def test_call_info_follows_the_console_naming() -> None:
    from easnb import eas

    info = eas.call_info("grpc_test", "123456", "cn-hangzhou")
    assert info.grpc_public == "grpc-test.123456.cn-hangzhou.pai-eas.aliyuncs.com:80"
    assert info.grpc_vpc == "grpc-test.123456.vpc.cn-hangzhou.pai-eas.aliyuncs.com:80"


# -- hints that name the real cause ------------------------------------------------------------


def test_tls_mismatches_get_the_tls_hint(tls_server, demo: DemoServer) -> None:  # type: ignore[no-untyped-def]
    port, cert = tls_server
    cases = [
        (f"https://localhost:{port}/", {}, "root_certificates"),  # untrusted certificate
        (f"localhost:{port}", {}, "https://"),  # plaintext against TLS
        (f"https://{demo.endpoint}/", {"root_certificates": cert}, "http://"),  # TLS against plaintext
    ]
    for endpoint, options, words in cases:
        with easnb.connect(endpoint, timeout=3, retries=0, **options) as conn:
            with pytest.raises(easnb.UnavailableError) as info:
                conn.live()
        assert words in info.value.hint and "VPC" not in info.value.hint, (endpoint, info.value.hint)


def test_client_message_limit_is_named_as_the_clients(demo: DemoServer) -> None:
    with easnb.connect(demo.endpoint, token=demo.token, max_message_bytes=1024) as conn:
        with pytest.raises(easnb.MessageTooLargeError) as info:
            conn.infer("echo", {"x": np.zeros(4096, np.float32)})
    assert "client's own max_message_bytes=1024" in info.value.hint


def test_oversized_headers_and_concurrency_limits_are_told_apart() -> None:
    gate, inside = threading.Event(), threading.Event()

    def slow(request: bytes, context: grpc.ServicerContext) -> bytes:
        inside.set()
        gate.wait(5)
        return b""

    server, port = serve([unary_handler("t.S", {"Slow": slow}), v2_handler(V2Service())], maximum_concurrent_rpcs=1)
    try:
        with easnb.connect(f"127.0.0.1:{port}", retries=0) as conn:
            with pytest.raises(easnb.ResourceExhaustedError) as info:
                conn.live(headers={"x-big": "a" * 20000})
            assert type(info.value) is easnb.ResourceExhaustedError and "headers" in info.value.hint
            stub = conn.channel.unary_unary("/t.S/Slow")
            first = stub.future(b"", timeout=5)
            eventually(inside.is_set)  # the one call the server allows is in flight
            with pytest.raises(easnb.ResourceExhaustedError) as info:
                conn.live()
            assert "in flight" in info.value.hint
            gate.set()
            first.result()
    finally:
        gate.set()
        server.stop(None)


def test_unimplemented_says_not_v2(demo: DemoServer) -> None:
    server, port = serve([greeter_handler()])
    try:
        with easnb.connect(f"127.0.0.1:{port}") as conn:
            with pytest.raises(easnb.UnimplementedError) as info:
                conn.server_metadata()
        assert "not a V2" in info.value.hint and "server's side" not in info.value.hint
    finally:
        server.stop(None)


def test_rich_status_details_are_kept() -> None:
    detail = _proto.HelloRequest(name="why")  # any message stands in for google.rpc.BadRequest
    status = _proto.message_class("easnb.rpc.Status")(code=3, message="bad", details=[
        {"type_url": "type.googleapis.com/helloworld.HelloRequest", "value": detail.SerializeToString()}
    ])

    def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort_with_status(_Status(grpc.StatusCode.INVALID_ARGUMENT, "bad", status.SerializeToString()))
        return b""

    server, port = serve([unary_handler("inference.GRPCInferenceService", {"ServerLive": fail})])
    try:
        with easnb.connect(f"127.0.0.1:{port}") as conn:
            with pytest.raises(easnb.InvalidArgumentError) as info:
                conn.live()
        (any_detail,) = info.value.status_details
        assert any_detail.type_url.endswith("helloworld.HelloRequest")
        assert _proto.HelloRequest.FromString(any_detail.value).name == "why"
        assert "HelloRequest" in str(info.value)
    finally:
        server.stop(None)


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, packed: bytes) -> None:
        self.code, self.details = code, details
        self.trailing_metadata = (("grpc-status-details-bin", packed),)


def test_one_letter_token_does_not_mangle_messages() -> None:
    with easnb.connect("127.0.0.1:1", token="t", retries=0, timeout=2) as conn:
        with pytest.raises(easnb.UnavailableError) as info:
            conn.live()
    assert "failed to connect" in info.value.message and "***" not in info.value.message


# -- retries stay within the deadline ------------------------------------------------------


def test_retries_never_outlast_the_timeout() -> None:
    def unavailable(request: bytes, context: grpc.ServicerContext) -> bytes:
        time.sleep(1.0)
        context.abort(grpc.StatusCode.UNAVAILABLE, "busy")
        return b""

    server, port = serve([unary_handler("inference.GRPCInferenceService", {"ServerLive": unavailable})], SERVER_OPTIONS)
    try:
        with easnb.connect(f"127.0.0.1:{port}", retries=5) as conn:
            started = time.monotonic()
            with pytest.raises(easnb.UnavailableError):
                conn.live(timeout=1.5)
            assert time.monotonic() - started <= 1.6

        async def async_live() -> None:
            import easnb.aio

            async with easnb.aio.connect(f"127.0.0.1:{port}", retries=5) as aconn:
                await aconn.live(timeout=1.5)

        import asyncio

        started = time.monotonic()
        with pytest.raises(easnb.UnavailableError):
            asyncio.run(async_live())
        assert time.monotonic() - started <= 1.7
    finally:
        server.stop(None)


def test_a_calls_headers_reach_the_model_lookup_a_dataframe_needs_sync_and_aio(recording_server) -> None:  # type: ignore[no-untyped-def]
    """infer(DataFrame, headers=...) asks for the model's inputs with the call's headers (a gateway routes by them)."""
    import asyncio

    import easnb.aio

    endpoint, recorder = recording_server
    frame = pd.DataFrame(np.ones((2, 4), np.float32), columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    with easnb.connect(endpoint) as conn:
        conn.infer("iris", frame, headers={"mm-vmodel-id": "sync"})

    async def run() -> None:
        async with easnb.aio.connect(endpoint) as aconn:
            await aconn.infer("iris", frame, headers={"mm-vmodel-id": "aio"})

    asyncio.run(run())
    lookups = [md.get("mm-vmodel-id") for m, md in recorder.calls if m.endswith("/ModelMetadata")]
    assert lookups == ["sync", "aio"], lookups


def test_cached_model_metadata_asks_once_for_a_version_given_as_a_number_sync_and_aio(recording_server) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    import easnb.aio

    endpoint, recorder = recording_server
    with easnb.connect(endpoint) as conn:
        assert conn.cached_model_metadata("iris", 1) == conn.cached_model_metadata("iris", "1")

    async def run() -> None:
        async with easnb.aio.connect(endpoint) as aconn:
            assert await aconn.cached_model_metadata("iris", 1) == await aconn.cached_model_metadata("iris", 1)
            with pytest.raises(easnb.ArgumentError):
                await aconn.cached_model_metadata(None)  # type: ignore[arg-type]

    asyncio.run(run())
    assert [m.rsplit("/", 1)[-1] for m, _ in recorder.calls] == ["ModelMetadata", "ModelMetadata"]
