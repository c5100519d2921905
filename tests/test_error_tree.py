"""One error tree: every exception easnb raises is an ``EasnbError`` subclass defined in ``easnb.errors``
and exported from ``easnb``; each public surface, driven into failure, raises the class that says why."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest

import easnb
import easnb.aio
import easnb.errors
from easnb.demo import DemoServer

from .conftest import TOKEN, free_port

pytestmark = pytest.mark.core

#: Exceptions easnb defines that never reach a user, each with the reason.
INTERNAL = {
    "easnb.fork.Unanswered": "a grpc.RpcError stand-in for a call gRPC never ended; from_rpc_error turns it into DeadlineError",
    "easnb.eas.signature.Refused": "the EAS stand-in server's own refusal, answered over HTTP, never raised to a client",
}


def _modules() -> list[Any]:
    found = []
    for info in pkgutil.walk_packages(easnb.__path__, "easnb."):
        if ".demo" in info.name or info.name.endswith("__main__") or "._proto" in info.name:
            continue  # the demo is a server (its exceptions become gRPC statuses), __main__ runs the CLI
        try:
            found.append(importlib.import_module(info.name))
        except ImportError:  # an optional extra that is not installed
            continue
    return found


def test_every_exception_class_is_in_the_tree_defined_in_errors_and_exported() -> None:
    seen = []
    for module in _modules():
        for name, cls in vars(module).items():
            if not (inspect.isclass(cls) and issubclass(cls, BaseException) and not issubclass(cls, Warning)):
                continue
            if cls.__module__ != module.__name__ or name.startswith("_"):
                continue
            where = f"{cls.__module__}.{name}"
            seen.append(where)
            if where in INTERNAL:
                continue
            assert issubclass(cls, easnb.EasnbError), where
            assert cls.__module__ == "easnb.errors", f"{where} belongs in easnb/errors.py"
            assert name in easnb.__all__ and getattr(easnb, name) is cls, f"{name} is not exported"
    assert "easnb.errors.BatchError" in seen and "easnb.errors.RequestError" in seen
    documented = easnb.errors.__doc__ or ""
    for name in seen:
        if name.startswith("easnb.errors."):
            assert name.rsplit(".", 1)[1] in documented, f"{name} is missing from the tree in errors.py's docstring"


def _sleepy_frame() -> pd.DataFrame:
    return pd.DataFrame({"x": np.zeros(4, np.float32), "seconds": np.full(4, 2.0)})


SYNC: dict[str, tuple[Callable[[DemoServer], Any], type[easnb.EasnbError]]] = {
    "connect: endpoint": (lambda d: easnb.connect("http://bad host/"), easnb.EndpointError),
    "connect: token": (lambda d: easnb.connect(d.endpoint, token="two words"), easnb.TokenError),
    "connect: argument": (lambda d: easnb.connect(d.endpoint, retries="many"), easnb.ArgumentError),
    "connect: interceptor": (lambda d: easnb.connect(d.endpoint, interceptors=[object()]), easnb.EasnbError),
    "live: refused port": (lambda d: easnb.connect(f"127.0.0.1:{free_port()}", retries=0, timeout=2).live(), easnb.UnavailableError),
    "live: wrong token": (lambda d: easnb.connect(d.endpoint, token="wrong").live(), easnb.AuthenticationError),
    "model_metadata: unknown": (lambda d: easnb.connect(d.endpoint, token=TOKEN).model_metadata("nope"), easnb.NotFoundError),
    "infer: deadline": (lambda d: easnb.connect(d.endpoint, token=TOKEN).infer("sleepy", {"x": np.zeros(1, np.float32)}, timeout=0.2),
                        easnb.DeadlineError),
    "infer: tensor": (lambda d: easnb.connect(d.endpoint, token=TOKEN).infer("iris", {"features": np.array([object()])}), easnb.TensorError),
    "infer_frame: batches": (lambda d: easnb.connect(d.endpoint, token=TOKEN).infer_frame("sleepy", _sleepy_frame(), batch_size=2,
                                                                                          timeout=0.2, progress=False), easnb.BatchError),
    "service: unknown": (lambda d: easnb.connect(d.endpoint, token=TOKEN).service("no.Such"), easnb.NotFoundError),
    "service: bad field": (lambda d: easnb.connect(d.endpoint, token=TOKEN).service("helloworld.GreeterService").SayHello(nope=1),
                           easnb.RequestError),
    "closed": (lambda d: _closed(d).live(), easnb.ClosedError),
    "load_test: levels": (lambda d: easnb.connect(d.endpoint, token=TOKEN).load_test("iris", {"features": np.ones((1, 4), np.float32)},
                                                                                     concurrency=[1], rate=[1.0]), easnb.LoadTestError),
    "stream: unknown option": (lambda d: easnb.connect(d.endpoint, token=TOKEN).stream("iris", {"features": np.ones((1, 4), np.float32)},
                                                                                         first_timeout=1), easnb.ArgumentError),
    "stream: flavour": (lambda d: list(easnb.connect(d.endpoint, token=TOKEN).generate("textgen", "hi", flavour="vllm")),
                        easnb.ArgumentError),
    "history: code flavour": (lambda d: __import__("easnb.history", fromlist=["History"]).History().code(0, flavour="curl"),
                              easnb.ArgumentError),
    "connect: channel of the asyncio kind": (lambda d: easnb.connect(d.endpoint, channel=_aio_channel(d.endpoint)),
                                             easnb.ArgumentError),
    "connect: channel as text": (lambda d: easnb.connect(d.endpoint, channel=d.endpoint), easnb.ArgumentError),
    "aio connect: a sync channel": (lambda d: easnb.aio.connect(d.endpoint, channel=grpc.insecure_channel(d.endpoint)), easnb.ArgumentError),
    "eas config": (lambda d: __import__("easnb.eas", fromlist=["ServiceConfig"]).ServiceConfig.from_json("{"), easnb.ConfigError),
}


def _aio_channel(endpoint: str) -> Any:
    """A grpc.aio channel (made in an event loop: outside one, grpc.aio refuses on some versions)."""

    async def make() -> Any:
        return grpc.aio.insecure_channel(endpoint)

    return asyncio.run(make())


def _closed(demo: DemoServer) -> easnb.Connection:
    conn = easnb.connect(demo.endpoint, token=TOKEN)
    conn.close()
    return conn


@pytest.mark.parametrize("surface", list(SYNC))
def test_each_sync_surface_fails_with_its_class(surface: str, demo: DemoServer) -> None:
    fail, expected = SYNC[surface]
    with pytest.raises(easnb.EasnbError) as info:
        fail(demo)
    assert type(info.value) is expected, (surface, type(info.value), info.value)
    assert info.value.__context__ is None or not isinstance(info.value.__context__, __import__("grpc").RpcError)


ASYNC: dict[str, tuple[Callable[[Any], Any], type[easnb.EasnbError]]] = {
    "live: refused port": (lambda c: c.live(), easnb.UnavailableError),
    "model_metadata: unknown": (lambda c: c.model_metadata("nope"), easnb.NotFoundError),
    "infer: deadline": (lambda c: c.infer("sleepy", {"x": np.zeros(1, np.float32)}, timeout=0.2), easnb.DeadlineError),
    "infer: argument": (lambda c: c.infer("iris", {"features": np.ones((1, 4), np.float32)}, timeout="soon"), easnb.ArgumentError),
    "stream: unknown option": (lambda c: c.stream("iris", {"features": np.ones((1, 4), np.float32)}, first_timeout=1), easnb.ArgumentError),
}


@pytest.mark.parametrize("surface", list(ASYNC))
def test_each_async_surface_fails_with_its_class(surface: str, demo: DemoServer) -> None:
    fail, expected = ASYNC[surface]
    endpoint = f"127.0.0.1:{free_port()}" if "refused" in surface else demo.endpoint

    async def main() -> BaseException:
        async with easnb.aio.connect(endpoint, token=TOKEN, retries=0, timeout=2) as conn:
            try:
                await fail(conn)
            except easnb.EasnbError as exc:
                return exc
        raise AssertionError("no error")

    error = asyncio.run(main())
    assert type(error) is expected, (surface, type(error), error)


# -- a server whose every reply is bytes no message can be parsed from --------------------------------------

UNREADABLE = bytes([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 1, 2])  # a field whose length runs past the end
KITCHEN = str(Path(__file__).parent / "protos" / "kitchen.proto")


class _Unreadable(grpc.GenericRpcHandler):
    def service(self, details: grpc.HandlerCallDetails) -> Any:
        if details.method.endswith("/Count"):
            return grpc.unary_stream_rpc_method_handler(lambda request, context: iter([UNREADABLE]))
        return grpc.unary_unary_rpc_method_handler(lambda request, context: UNREADABLE)


@pytest.fixture(scope="module")
def unreadable() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[_Unreadable()])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


async def _count(conn: Any) -> list[Any]:
    kitchen = await conn.service(KITCHEN, "kitchen.Kitchen")
    return [reply async for reply in await kitchen.Count(label="x")]


UNREADABLE_ASYNC: dict[str, Callable[[Any], Any]] = {
    "live": lambda c: c.live(),
    "model_metadata": lambda c: c.model_metadata("m"),
    "models": lambda c: c.models(),
    "discover": lambda c: c.discover(),
    "infer_frame": lambda c: c.infer_frame("m", pd.DataFrame({"a": [1.0]}), progress=False),
    "service unary": lambda c: _then(c.service(KITCHEN, "kitchen.Kitchen"), lambda k: k.Echo()),
    "service stream": _count,
}


async def _then(awaitable: Any, use: Callable[[Any], Any]) -> Any:
    return await use(await awaitable)


@pytest.mark.parametrize("surface", list(UNREADABLE_ASYNC))
def test_an_unreadable_reply_is_a_server_error_in_asyncio_too(surface: str, unreadable: str, caplog: pytest.LogCaptureFixture) -> None:
    """grpc.aio hands back None for a reply it cannot parse (sync gRPC raises INTERNAL): never a None, nor an AttributeError,
    and no traceback logged by gRPC (a notebook shows it in red under the cell)."""

    async def main() -> BaseException:
        async with easnb.aio.connect(unreadable, retries=0, timeout=3) as conn:
            try:
                got = await UNREADABLE_ASYNC[surface](conn)
            except easnb.EasnbError as exc:
                return exc
        raise AssertionError(f"no error: {got!r}")

    error = asyncio.run(main())
    assert type(error) is easnb.ServerError, (surface, type(error), error)
    with easnb.connect(unreadable, retries=0, timeout=3) as conn:  # as the sync connection says
        with pytest.raises(easnb.ServerError):
            conn.live()
    assert not [r for r in caplog.records if r.name.startswith("grpc") and r.exc_info], "gRPC logged a traceback"
