"""Sync and asyncio connections offer the same calls with the same signatures and answers; the few
sync-only ones are listed here with the reason. Interceptors and an injected channel see every call,
infer_frame's batches included, in both."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import grpc
import grpc.aio
import numpy as np
import pandas as pd
import pytest

import easnb
import easnb.aio
from easnb.demo import DemoServer

from .conftest import TOKEN

pytestmark = pytest.mark.core

SYNC_ONLY = {
    "after_fork": "rebuilds the channel in a forked child (easnb.fork calls it); grpc.aio cannot run there",
    "before_fork": "lets the background loop's grpc.aio channel go before a fork (easnb.fork calls it); an AsyncConnection has no background loop",
    "background": "the event loop a sync connection keeps for infer_frame; an AsyncConnection runs in the caller's loop",
    "call": "the sync executor's primitive (invoke a callable with retries); AsyncConnection's are call_stub and unary",
    "encode_infer": "a helper for tools that build a request without sending it (codegen, load tests); it does no I/O",
    "load_test": "a sweep that runs its own background loop and progress display; from asyncio, run it in a thread",
    "model_statistics": "one Triton statistics call for load_test's report; asyncio code can call unary() with its path",
    "on_close": "the widget follows its sync connection's close",
    "open_stream": "a shared stream its callers' threads read in turn; asyncio code uses stream() and generate()",
    "open_stubs": "rebuilds the stubs in a forked child; grpc.aio cannot run there, so an AsyncConnection refuses instead",
}
ASYNC_ONLY = {
    "call_stub": "the asyncio executor's primitive for one unary-reply call of any method (service clients)",
    "open_stub": "the asyncio executor's primitive for a streaming-reply call (service clients)",
    "ensure_open": "opens the grpc.aio channel in the running loop (a sync connection opens its channel when made)",
}
NOT_COROUTINES = {  # no I/O, so plain methods in both; generate is an async iterator
    "check_open", "deadline", "metadata_for", "generate",
}


def _public(cls: type) -> dict[str, Any]:
    return {name: getattr(cls, name) for name in dir(cls) if not name.startswith("_") and callable(getattr(cls, name))}


def _parameters(function: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_every_sync_method_has_its_coroutine_twin_with_the_same_signature() -> None:
    sync, aio = _public(easnb.Connection), _public(easnb.aio.AsyncConnection)
    assert set(sync) - set(aio) == set(SYNC_ONLY), "a sync method without a twin must be listed, with its reason"
    assert set(aio) - set(sync) == set(ASYNC_ONLY)
    for name in sorted(set(sync) & set(aio)):
        if isinstance(inspect.getattr_static(easnb.Connection, name), property):
            continue
        assert _parameters(sync[name]) == _parameters(aio[name]), name
        assert inspect.iscoroutinefunction(aio[name]) or name in NOT_COROUTINES, f"{name} should be a coroutine"
    for name in ("endpoint", "timeout", "retries", "headers", "settings", "closed", "has_token", "metadata", "keepalive"):
        assert hasattr(easnb.aio.connect("localhost:1"), name), name


def test_the_same_calls_give_the_same_answers(demo: DemoServer) -> None:
    frame = pd.DataFrame(np.random.default_rng(0).random((50, 4)).astype(np.float32))
    with easnb.connect(demo.endpoint, token=TOKEN) as conn:
        want = {
            "models": conn.models(),
            "known": conn.known_models(),
            "discover": conn.discover().summary(),
            "services": conn.services(),
            "ready": conn.wait_until_ready("iris", timeout=5, progress=False),
            "frame": conn.infer_frame("iris", frame, batch_size=16, progress=False),
            "hello": conn.service("helloworld.GreeterService").SayHello(name="x").message,
        }

    async def main() -> dict[str, Any]:
        async with easnb.aio.connect(demo.endpoint, token=TOKEN) as aconn:
            found = await aconn.discover()
            greeter = await aconn.service("helloworld.GreeterService")
            return {
                "models": await aconn.models(),
                "known": await aconn.known_models(),
                "discover": found.summary(),
                "services": await aconn.services(),
                "ready": await aconn.wait_until_ready("iris", timeout=5, progress=False),
                "frame": await aconn.infer_frame("iris", frame, batch_size=16, progress=False),
                "hello": (await greeter.SayHello(name="x")).message,
            }

    got = asyncio.run(main())
    pd.testing.assert_frame_equal(got.pop("frame"), want.pop("frame"))
    assert got == want


class Counting(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self) -> None:
        self.methods: list[str] = []

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method = details.method
        self.methods.append(method.decode() if isinstance(method, bytes) else method)
        return await continuation(details, request)


class SyncCounting(grpc.UnaryUnaryClientInterceptor):
    def __init__(self) -> None:
        self.methods: list[str] = []

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.methods.append(details.method)
        return continuation(details, request)


def test_an_injected_channel_sees_every_call_infer_frame_batches_included(demo: DemoServer) -> None:
    frame = pd.DataFrame(np.ones((40, 4), np.float32))
    sync = SyncCounting()
    channel = grpc.intercept_channel(grpc.insecure_channel(demo.endpoint), sync)
    with easnb.connect(demo.endpoint, token=TOKEN, channel=channel) as conn:
        conn.infer_frame("iris", frame, batch_size=8, progress=False)
        conn.live()
    assert sync.methods.count("/inference.GRPCInferenceService/ModelInfer") == 5
    channel.close()

    seen = Counting()

    async def main() -> None:
        given = grpc.aio.insecure_channel(demo.endpoint, interceptors=[seen])
        async with easnb.aio.connect(demo.endpoint, token=TOKEN, channel=given) as aconn:
            await aconn.infer_frame("iris", frame, batch_size=8, progress=False)
            await aconn.models()
        await given.close()

    asyncio.run(main())
    assert seen.methods.count("/inference.GRPCInferenceService/ModelInfer") == 5
    assert "/inference.GRPCInferenceService/RepositoryIndex" in seen.methods
