"""Channel options reach gRPC as gRPC reads them: an integer option given as text or a float was
silently ignored by gRPC ({'grpc.enable_http_proxy': '0'} left the proxy on, and the hint then
blamed the server); a value gRPC cannot take is an ArgumentError, not gRPC's raw TypeError."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import easnb
import easnb.aio
from easnb.demo import DemoServer

from .test_unavailable import closed_proxy, run_with


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer(token="tok-options") as demo:
        yield demo


@pytest.mark.parametrize("off", ["0", " 0", 0.0, False, 0])
def test_the_proxy_fix_works_however_the_number_is_written(server: DemoServer, off: Any) -> None:
    got = run_with({"http_proxy": closed_proxy()}, endpoint=server.endpoint, token=server.token,
                   options={"grpc.enable_http_proxy": off})
    assert got == {"ok": True}


@pytest.mark.parametrize("value", [object(), 1.5, None, [1], {"a": 1}])
def test_a_value_grpc_cannot_take_names_the_option(server: DemoServer, value: Any) -> None:
    with pytest.raises(easnb.ArgumentError, match=r"options\['grpc.keepalive_time_ms'\] must be a whole number or text"):
        easnb.connect(server.endpoint, token=server.token, options={"grpc.keepalive_time_ms": value})

    async def aio() -> None:
        async with easnb.aio.connect(server.endpoint, token=server.token, options=[("grpc.keepalive_time_ms", value)]):
            pass

    with pytest.raises(easnb.ArgumentError, match="grpc.keepalive_time_ms"):
        asyncio.run(aio())


def test_numbers_and_text_options_go_as_grpc_reads_them(server: DemoServer) -> None:
    options = {"grpc.max_receive_message_length": np.int64(64), "grpc.primary_user_agent": "2024",
               "grpc.max_send_message_length": 1e6}
    with easnb.connect(server.endpoint, token=server.token, options=options) as conn:
        with pytest.raises(easnb.EasnbError, match="RESOURCE_EXHAUSTED|larger than max"):
            conn.model_metadata("iris")  # the 64-byte limit holds: it reached gRPC as an int


@pytest.mark.parametrize("no_proxy", ["*", ".local", "localhost", "example.com,"])
def test_a_no_proxy_that_does_not_match_is_named_and_the_fix_works(server: DemoServer, no_proxy: str) -> None:
    proxy = closed_proxy()
    got = run_with({"http_proxy": proxy, "no_proxy": no_proxy}, endpoint=server.endpoint, token=server.token)
    assert got["type"] == "UnavailableError"
    assert f"$no_proxy is {no_proxy!r}" in got["hint"] and "none of it matches 127.0.0.1" in got["hint"]
    fixed = f"{no_proxy.rstrip(',')},127.0.0.1"
    assert "add 127.0.0.1 to $no_proxy" in got["hint"] and repr(fixed) in got["hint"]
    assert run_with({"http_proxy": proxy, "no_proxy": fixed}, endpoint=server.endpoint, token=server.token) == {"ok": True}
    steps = {s[0]: s for s in run_with({"http_proxy": proxy, "no_proxy": no_proxy}, endpoint=server.endpoint, doctor=True)}
    assert steps["proxy"][1] is False and repr(fixed) in steps["proxy"][3]
