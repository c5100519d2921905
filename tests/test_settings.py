"""One settings value reaches every kind of channel easnb opens.

A table: each row is a setting (TLS with a private certificate authority, a custom header,
keepalive values, a message limit, interceptors) with a real server that shows whether it
arrived; each column is a kind of channel (sync, easnb.aio, infer_frame's background loop,
a Dask worker's, the doctor's, the widget's, a service client sync and aio).
"""

from __future__ import annotations

import asyncio
import pickle
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import numpy as np
import pandas as pd
import pytest

import easnb
import easnb.aio
from easnb.demo.introspection import health_handler, reflection_handlers
from easnb.demo.models import all_models
from easnb.demo.server import OFFERED, V2Service, greeter_handler, v2_handler
from easnb.settings import Settings, make_settings

pytestmark = pytest.mark.core



GREETER = "helloworld.GreeterService"
SEEN: dict[str, list[str]] = {"sync": [], "aio": []}  # module-level, so a pickled interceptor counts here too


class SyncCounter(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor, grpc.StreamStreamClientInterceptor):
    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        SEEN["sync"].append(details.method)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        SEEN["sync"].append(details.method)
        return continuation(details, request)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        SEEN["sync"].append(details.method)
        return continuation(details, requests)


class AioCounter(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        SEEN["aio"].append(details.method.decode() if isinstance(details.method, bytes) else details.method)
        return await continuation(details, request)


def _private_ca(folder: Path) -> tuple[bytes, bytes, bytes]:
    """A private certificate authority and a 127.0.0.1 certificate it signed: (ca, key, cert) as PEM."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=easnb test CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
        "-extfile", "san.ext", "-out", "server.pem")
    return (folder / "ca.pem").read_bytes(), (folder / "server.key").read_bytes(), (folder / "server.pem").read_bytes()


LONG = "m" * 300  # a model whose name makes any request about it longer than the message limit row's
SLOW = ("ModelInfer", "ModelReady", "ServerReady", "SayHello")  # calls the keepalive row's server sleeps in
FRAME = pd.DataFrame({"a": np.arange(100, dtype=np.float64)})
TOKEN_ENV = "EASNB_SETTINGS_TEST_TOKEN"


class Recorder(grpc.ServerInterceptor):
    """Keeps each call's method and metadata; sleeps in the slow calls when asked (the keepalive row)."""

    def __init__(self, sleep: float = 0.0) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.sleep = sleep

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        self.calls.append((details.method, dict(details.invocation_metadata)))
        if self.sleep and details.method.rsplit("/", 1)[-1] in SLOW:
            time.sleep(self.sleep)
        return continuation(details)


@dataclass
class Row:
    """A setting, the server that shows it, and what must be seen."""

    name: str
    options: Callable[[bytes, bytes, bytes], dict[str, Any]]  # connect() options, given the private CA (ca, key, cert)
    check: Callable[[BaseException | None, list[tuple[str, dict[str, Any]]], dict[str, int], str], None]
    tls: bool = False
    client_certificate: bool = False  # the server asks for one, signed by the private CA
    sleep: float = 0.0
    server_options: list[tuple[str, Any]] = field(default_factory=list)


def _worked(error: BaseException | None, calls: Any, seen: Any, flavour: str) -> None:
    assert error is None, f"{type(error).__name__}: {error}"
    assert calls, "the server saw no call"


def _header_sent(error: BaseException | None, calls: Any, seen: Any, flavour: str) -> None:
    _worked(error, calls, seen, flavour)
    assert all(metadata.get("x-team") == "blue" for _, metadata in calls), [(m, md.get("x-team")) for m, md in calls]


def _pings_refused(error: BaseException | None, calls: Any, seen: Any, flavour: str) -> None:
    assert error is not None and "ping" in _text(error).lower(), f"{type(error).__name__}: {error}"


def _limit_hit(error: BaseException | None, calls: Any, seen: Any, flavour: str) -> None:
    assert error is not None and "larger than max" in _text(error), f"{type(error).__name__}: {error}"


def _intercepted(error: BaseException | None, calls: Any, seen: Any, flavour: str) -> None:
    _worked(error, calls, seen, flavour)
    assert seen[flavour] >= 1, (flavour, seen)


def _text(error: BaseException) -> str:
    failures = getattr(error, "failures", ())  # a BatchError: what each failed batch said
    return " ".join([str(error), *(f.error.message for f in failures)])


ROWS = [
    Row("tls_private_ca", lambda ca, *_: {"tls": True, "root_certificates": ca}, _worked, tls=True),
    Row("client_certificate", lambda ca, key, cert: {"tls": True, "root_certificates": ca, "certificate_chain": cert, "private_key": key},
        _worked, tls=True, client_certificate=True),
    Row("header", lambda *_: {"headers": {"x-team": "blue"}}, _header_sent),
    Row(
        "keepalive",
        lambda *_: {"keepalive": easnb.Keepalive(time_s=0.1, timeout_s=1, permit_without_calls=False), "retries": 0, "timeout": 20},
        _pings_refused,
        # a stock server (pings at most every 5 minutes) sends GOAWAY too_many_pings after its second strike;
        # gRPC sends keepalive pings at most once a second, so that takes about 3 s of a call that lasts 8
        sleep=8.0,
        server_options=[("grpc.http2.max_ping_strikes", 1)],
    ),
    Row("message_limit", lambda *_: {"max_message_bytes": 200, "retries": 0}, _limit_hit),
    Row("interceptors", lambda *_: {"interceptors": [SyncCounter(), AioCounter()]}, _intercepted),
]


# -- the kinds of channel: each makes calls through one, with connect()'s options ----------------


def _sync(endpoint: str, options: dict[str, Any]) -> str:
    with easnb.connect(endpoint, **options) as conn:
        assert conn.model_ready(LONG)
    return "sync"


def _aio(endpoint: str, options: dict[str, Any]) -> str:
    async def main() -> None:
        async with easnb.aio.connect(endpoint, **options) as conn:
            assert await conn.model_ready(LONG)

    asyncio.run(main())
    return "aio"


def _infer_frame(endpoint: str, options: dict[str, Any]) -> str:
    with easnb.connect(endpoint, **options) as conn:
        assert len(conn.infer_frame("echo", FRAME, progress=False, retries=0, concurrency=2, batch_size=50)) == 100
    return "sync"


def _dask(endpoint: str, options: dict[str, Any]) -> str:
    pytest.importorskip("dask.dataframe")  # the core matrix runs without the dask extra
    dask = pytest.importorskip("easnb.dask")
    import threading

    settings = pickle.loads(pickle.dumps(make_settings(endpoint, **options).replace(token=None)))  # as a task carries it
    try:
        assert len(dask.score_partition(FRAME, settings, "echo", TOKEN_ENV, options.get("timeout", 5.0), retries=0, batch_size=50)) == 100
    finally:
        for conn in threading.current_thread().__dict__.pop("_easnb_connections", {}).values():
            conn.close()
    return "sync"


def _doctor(endpoint: str, options: dict[str, Any]) -> str:
    diagnosis = easnb.doctor(make_settings(endpoint, **options), model=LONG)
    failed = [step for step in diagnosis.steps if step.ok is False]
    if failed:
        raise easnb.EasnbError(f"doctor step {failed[0].name}: {failed[0].detail}")
    assert [s.name for s in diagnosis.steps][-1] == "model"
    return "sync"


def _widget(endpoint: str, options: dict[str, Any]) -> str:
    pytest.importorskip("ipywidgets")  # the core matrix runs without the widgets extra
    widget = easnb.ConnectionWidget(endpoint, **options)
    widget.connect(wait=True)
    if widget.connection is None:
        raise easnb.EasnbError(f"widget: {widget.error.value}")
    with widget.connection as conn:
        assert conn.model_ready(LONG)
    return "sync"


def _service(endpoint: str, options: dict[str, Any]) -> str:
    with easnb.connect(endpoint, **options) as conn:
        assert conn.service(GREETER).SayHello(name=LONG).message == f"Hello, {LONG}!"
    return "sync"


def _service_aio(endpoint: str, options: dict[str, Any]) -> str:
    async def main() -> None:
        async with easnb.aio.connect(endpoint, **options) as conn:
            greeter = await conn.service(GREETER)
            assert (await greeter.SayHello(name=LONG)).message == f"Hello, {LONG}!"

    asyncio.run(main())
    return "aio"


KINDS: dict[str, Callable[[str, dict[str, Any]], str]] = {
    "sync": _sync, "aio": _aio, "infer_frame": _infer_frame, "dask": _dask,
    "doctor": _doctor, "widget": _widget, "service": _service, "service_aio": _service_aio,
}
#: Settings a kind refuses, with what it says: a task graph never carries a private key (nor the token).
REFUSED = {("client_certificate", "dask"): "A private key is never pickled"}
FLAVOUR = {"aio": "aio", "service_aio": "aio"}  # which interceptor a kind's calls pass: the asyncio one, else the sync one


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes, bytes]:
    return _private_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def servers(private_ca: tuple[bytes, bytes, bytes]) -> Iterator[dict[str, tuple[str, Recorder]]]:
    """One server per row, made on first use."""
    made: dict[str, tuple[str, Recorder]] = {}
    running: list[grpc.Server] = []

    class Lazy(dict):  # type: ignore[type-arg]
        def __missing__(self, name: str) -> tuple[str, Recorder]:
            row = next(r for r in ROWS if r.name == name)
            recorder = Recorder(row.sleep)
            models = {**all_models(), LONG: all_models()["echo"]}
            server = grpc.server(
                futures.ThreadPoolExecutor(max_workers=16),
                handlers=[v2_handler(V2Service(models)), greeter_handler(), health_handler(OFFERED),
                          *reflection_handlers([*OFFERED])],
                interceptors=[recorder],
                options=row.server_options,
            )
            if row.tls:
                _, key, cert = private_ca
                ca = private_ca[0] if row.client_certificate else None
                credentials = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)
                port = server.add_secure_port("127.0.0.1:0", credentials)
            else:
                port = server.add_insecure_port("127.0.0.1:0")
            server.start()
            running.append(server)
            self[name] = (f"127.0.0.1:{port}", recorder)
            return self[name]

    lazy = Lazy(made)
    yield lazy
    for server in running:
        server.stop(None)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_each_setting_reaches_each_kind_of_channel(
    row: Row, kind: str, servers: Any, private_ca: tuple[bytes, bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "worker-token")
    endpoint, recorder = servers[row.name]
    recorder.calls.clear()
    before = {k: len(v) for k, v in SEEN.items()}
    error: BaseException | None = None
    try:
        KINDS[kind](endpoint, row.options(*private_ca))
    except (easnb.EasnbError, AssertionError) as exc:
        error = exc
    if (row.name, kind) in REFUSED:
        assert isinstance(error, easnb.EasnbError) and REFUSED[row.name, kind] in str(error), error
        return
    seen = {k: len(v) - before[k] for k, v in SEEN.items()}
    row.check(error, list(recorder.calls), seen, FLAVOUR.get(kind, "sync"))


def test_without_the_private_ca_tls_fails(servers: Any) -> None:
    """The control for the TLS row: the same server, without root_certificates, is refused."""
    endpoint, _ = servers["tls_private_ca"]
    with easnb.connect(endpoint, tls=True, retries=0, timeout=3) as conn:
        with pytest.raises(easnb.UnavailableError):
            conn.live()


def test_settings_are_one_frozen_value_with_the_secrets_masked(tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nsecret-key-material\n-----END PRIVATE KEY-----\n")
    settings = make_settings("localhost:1", token="tok-visible-nowhere", headers={"x-team": "blue"},
                             certificate_chain=b"chain", private_key=key, interceptors=[SyncCounter()])
    with pytest.raises(AttributeError):
        settings.timeout = 3  # type: ignore[misc]
    text = repr(settings) + str(settings) + repr(settings.__dict__)
    assert "tok-visible-nowhere" not in text and "secret-key-material" not in text
    assert "token=***" in repr(settings) and "x-team" in repr(settings)
    with pytest.raises(easnb.EasnbError):
        pickle.dumps(settings)  # the token and key are never pickled
    assert settings.replace(timeout=9).timeout == 9 and settings.timeout == 5.0
    conn = easnb.connect(settings)
    assert conn.settings is settings and conn.headers == {"x-team": "blue"}
    conn.close()
    for make in (easnb.connect, easnb.Connection, easnb.aio.connect, easnb.aio.AsyncConnection):
        with pytest.raises(easnb.ArgumentError, match="colour"):
            make("localhost:1", colour="red")
    for bad in ({"retries": -1}, {"max_message_bytes": "big"}, {"interceptors": [object()]}, {"timeout": -1},
                {"keepalive": 5}, {"certificate_chain": b"chain"}, {"root_certificates": tmp_path / "missing.pem"}):
        with pytest.raises(easnb.EasnbError):
            make_settings("localhost:1", **bad)
