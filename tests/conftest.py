"""Shared fixtures: the demo server on loopback, and servers that record or misbehave."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import pytest

import easnb
from easnb.demo import DemoServer
from easnb.demo.models import Model, all_models
from easnb.demo.server import SERVER_OPTIONS, V2Service, greeter_handler, v2_handler
from easnb.results import ModelMetadata, TensorMetadata

# The Alibaba Cloud SDK's credential chain must never probe the instance metadata service from a test.
os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"

TOKEN = "tok-EASNB-SECRET-7f3a9c"  # recognisable, so leak checks can search for it


def eventually(check: Any, seconds: float = 10.0, every: float = 0.02) -> Any:
    """Poll ``check()`` until it returns without an AssertionError (and not False/None); return its value.

    Replaces "sleep, then assert": the wait is as short as the machine allows and as long as
    ``seconds`` on a slow one; the last AssertionError is raised when time runs out.
    """
    ends = time.monotonic() + seconds
    while True:
        try:
            value = check()
            if value is not False and value is not None:
                return value
            problem: AssertionError = AssertionError(f"{getattr(check, '__name__', 'check')} stayed {value!r}")
        except AssertionError as exc:
            problem = exc
        if time.monotonic() >= ends:
            raise problem
        time.sleep(every)


def sleepy_model(seconds: float = 2.0) -> Model:
    """A model that waits before echoing, for deadline tests."""

    def run(x: Any, types: Any) -> dict[str, tuple[str, np.ndarray]]:
        time.sleep(float(x["seconds"].reshape(-1)[0]) if "seconds" in x else seconds)
        return {n: (types[n], a) for n, a in x.items()}

    meta = ModelMetadata("sleepy", ("1",), "test", (), (), {})
    return Model(meta, run, any_inputs=True)


@pytest.fixture(scope="session")
def demo() -> Iterator[DemoServer]:
    models = {**all_models(), "sleepy": sleepy_model()}
    with DemoServer(token=TOKEN, models=models) as server:
        yield server


@pytest.fixture()
def conn(demo: DemoServer) -> Iterator[easnb.Connection]:
    with easnb.connect(demo.endpoint, token=demo.token) as connection:
        yield connection


class Recorder(grpc.ServerInterceptor):
    """Keeps the metadata of every call a server receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        self.calls.append((details.method, dict(details.invocation_metadata)))
        return continuation(details)


@pytest.fixture()
def recording_server() -> Iterator[tuple[str, Recorder]]:
    """A V2 server with no token check that records the metadata it receives."""
    recorder = Recorder()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        handlers=[v2_handler(V2Service()), greeter_handler()],
        interceptors=[recorder],
        options=SERVER_OPTIONS,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", recorder
    server.stop(None).wait()


def python_with_tritonclient() -> str:
    """A Python that has tritonclient: .ci/run's own venv (the current release, with the protobuf it
    allows), else this one if it has it; otherwise the test is skipped (failed on CI)."""
    import importlib.util
    from pathlib import Path

    venv = Path(os.environ.get("EASNB_TRITON_VENV", Path(__file__).resolve().parents[1] / ".cache" / "triton-venv"))
    if (venv / "bin" / "python").exists():
        return str(venv / "bin" / "python")
    if importlib.util.find_spec("tritonclient") is not None:
        return sys.executable
    if os.environ.get("CI"):
        pytest.fail("the tritonclient venv is missing: .ci/run makes it")
    pytest.skip("tritonclient is not installed here (.ci/run makes .cache/triton-venv)")
    raise AssertionError("unreachable")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DemoProcess:
    """``python -m easnb demo`` on a fixed loopback port, as its own process."""

    TOKEN = "fault-token-123"

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[str] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> DemoProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "easnb", "demo", "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env={**os.environ, "EASNB_TOKEN": self.TOKEN},
        )
        assert "listening" in self.proc.stdout.readline()  # type: ignore[union-attr]
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


__all__ = ["TOKEN", "DemoProcess", "TensorMetadata", "eventually", "free_port", "sleepy_model"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="run the long fuzz and soak runs")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    heavy_first(config, items)  # under pytest-xdist only
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="long run: use --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


from .alone import heavy_first, pytest_runtest_protocol  # noqa: E402,F401 - a hook: `alone` and `serial` tests under pytest-xdist
