"""Faults survived: a server killed mid-call, restarted, silent, slow under pings, resetting connections."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

import easnb
from easnb.demo import Gateway

from .conftest import DemoProcess, free_port

TOKEN = DemoProcess.TOKEN
pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def server() -> Iterator[DemoProcess]:
    demo = DemoProcess(free_port()).start()
    yield demo
    demo.kill()


def test_server_killed_mid_call(server: DemoProcess) -> None:
    with easnb.connect(server.endpoint, token=TOKEN, timeout=10) as conn:
        assert conn.live()
        threading.Timer(0.5, server.kill).start()
        started = time.monotonic()
        with pytest.raises(easnb.UnavailableError) as info:
            conn.infer("echo", {"x": np.zeros(1)}, parameters={"delay_ms": 5000})
        assert time.monotonic() - started < 3  # told at once, not after the 10 s deadline
        assert "endpoint" in info.value.hint


def test_same_connection_and_widget_work_after_restart(server: DemoProcess) -> None:
    from easnb.inspectors import ServerInspector

    widget = easnb.ConnectionWidget(endpoint=server.endpoint, token=TOKEN, timeout=2)
    widget.connect(wait=True)
    conn = widget.connection
    assert conn is not None and conn.live()
    inspector = ServerInspector(conn)
    inspector.wait(10)
    server.kill()
    with pytest.raises(easnb.UnavailableError):
        conn.live()
    server.start()
    back = time.monotonic()
    while True:  # the same Connection, no new one
        try:
            assert conn.live()
            break
        except easnb.UnavailableError:
            assert time.monotonic() - back < 3, "not reconnected within 3 s of the server's return"
            time.sleep(0.05)
    assert time.monotonic() - back < 2.5
    inspector.run(wait=True)
    assert "easnb-demo" in inspector.output.value
    widget.connect(wait=True)  # the same widget, pressed again
    assert "easnb-demo" in widget.status.value and widget.error.value == ""


@pytest.mark.parametrize("timeout", [0.5, 1.5])
def test_server_that_never_answers(timeout: float) -> None:
    """A TCP listener that accepts and says nothing: the deadline holds to within 10%."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        with easnb.connect(f"127.0.0.1:{listener.getsockname()[1]}", timeout=timeout, retries=0) as conn:
            started = time.monotonic()
            with pytest.raises((easnb.DeadlineError, easnb.UnavailableError)):
                conn.live()
            elapsed = time.monotonic() - started
        assert elapsed <= timeout * 1.1 + 0.05
    finally:
        stop.set()
        thread.join()
        for s in accepted:
            s.close()
        listener.close()


def test_slow_answer_is_a_deadline_error_within_10_percent(server: DemoProcess) -> None:
    with easnb.connect(server.endpoint, token=TOKEN) as conn:
        started = time.monotonic()
        with pytest.raises(easnb.DeadlineError):
            conn.infer("echo", {"x": np.zeros(1)}, parameters={"delay_ms": 5000}, timeout=1.0)
        assert 0.95 <= time.monotonic() - started <= 1.1


PINGS = """
import sys, time, numpy as np, easnb
conn = easnb.connect(sys.argv[1], token=sys.argv[2], keepalive=easnb.Keepalive(time_s=1, timeout_s=5, permit_without_calls={idle}))
assert conn.live()
time.sleep({idle_s})                               # idle, pinging every second if allowed
out = conn.infer("echo", {{"x": np.arange(3)}}, parameters={{"delay_ms": 4000}}, timeout=30)  # slow, under pings
print("ok", out["x"].tolist())
"""


@pytest.mark.parametrize("idle", [False, True])
def test_short_keepalive_survives_slow_calls_and_idle(server: DemoProcess, idle: bool) -> None:
    """Pings every second, idle and during a 4 s call: no GOAWAY too_many_pings from the demo."""
    code = PINGS.format(idle=idle, idle_s=4)
    env = {**os.environ, "GRPC_VERBOSITY": "info"}
    run = subprocess.run([sys.executable, "-c", code, server.endpoint, TOKEN], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "ok [0, 1, 2]"
    assert "too_many_pings" not in run.stderr


def test_connection_reset_by_peer() -> None:
    """A listener that resets every connection at once: UNAVAILABLE with the hint, quickly."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def reset() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()  # linger 0: a TCP reset

    thread = threading.Thread(target=reset, daemon=True)
    thread.start()
    try:
        with easnb.connect(f"127.0.0.1:{listener.getsockname()[1]}", timeout=3, retries=1) as conn:
            started = time.monotonic()
            with pytest.raises(easnb.UnavailableError) as info:
                conn.live()
            assert time.monotonic() - started < 2.5 and info.value.hint
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_gateway_whose_backend_dies(server: DemoProcess) -> None:
    with Gateway(server.endpoint, token="gw") as gateway, easnb.connect(gateway.endpoint, token="gw", timeout=3) as conn:
        with pytest.raises(easnb.AuthenticationError):  # the demo behind wants its own token: the gateway strips ours
            conn.live()
        server.kill()
        with pytest.raises(easnb.UnavailableError):
            conn.live()


def test_infer_retries_only_when_asked(server: DemoProcess) -> None:
    with easnb.connect(server.endpoint, token=TOKEN, timeout=5) as conn:
        assert conn.live()
        server.kill()
        with pytest.raises(easnb.UnavailableError):
            conn.infer("echo", {"x": np.zeros(1)})  # not retried: fails at once
        threading.Timer(0.3, server.start).start()
        started = time.monotonic()
        out = conn.infer("echo", {"x": np.arange(3)}, retries=6)  # retried with backoff until it is back
        assert out["x"].tolist() == [0, 1, 2] and time.monotonic() - started < 5
