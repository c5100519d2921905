"""Keepalive as the EAS guide asks: a silently dropped idle connection is noticed and replaced,
and pings never make a stock gRPC server fail a call."""

from __future__ import annotations

import time

import numpy as np
import pytest

import easnb
from easnb.demo.server import SERVER_OPTIONS, V2Service, v2_handler

from .conftest import sleepy_model
from .netparts import SilentDropProxy, serve

pytestmark = [pytest.mark.core, pytest.mark.alone]  # timed waits for pings and drops


def test_defaults_ping_idle_connections_at_an_interval_stock_servers_accept() -> None:
    options = dict(easnb.Keepalive().options())
    assert options["grpc.keepalive_permit_without_calls"] == 1
    assert options["grpc.keepalive_time_ms"] == 300_000  # gRPC servers' min_ping_interval_without_data
    assert options["grpc.http2.ping_timeout_ms"] == options["grpc.keepalive_timeout_ms"] == 20_000
    with pytest.raises(easnb.EasnbError):
        easnb.Keepalive(time_s=0).options()


def test_silently_dropped_idle_connection_recovers_within_keepalive_plus_timeout() -> None:
    server, port = serve([v2_handler(V2Service())], SERVER_OPTIONS)
    proxy = SilentDropProxy(port)
    keepalive = easnb.Keepalive(time_s=1, timeout_s=1)
    try:
        with easnb.connect(proxy.endpoint, keepalive=keepalive, retries=0) as conn:
            assert conn.live()
            proxy.drop()  # the middlebox forgets the idle connection; the client is not told
            dropped = time.monotonic()
            while True:
                try:
                    if conn.live(timeout=0.5):
                        break
                except (easnb.DeadlineError, easnb.UnavailableError):
                    pass
                assert time.monotonic() - dropped < 10, "never recovered"
            took = time.monotonic() - dropped
            assert took <= keepalive.time_s + keepalive.timeout_s + 2, took
            assert proxy.connections == 2  # a new connection, made by itself
    finally:
        proxy.close()
        server.stop(None)


def test_without_keepalive_a_silent_drop_is_not_noticed() -> None:
    """The control: with pings 60 s apart, calls keep failing into the dead connection."""
    server, port = serve([v2_handler(V2Service())], SERVER_OPTIONS)
    proxy = SilentDropProxy(port)
    try:
        with easnb.connect(proxy.endpoint, keepalive=easnb.Keepalive(time_s=60), retries=0) as conn:
            assert conn.live()
            proxy.drop()
            with pytest.raises(easnb.DeadlineError):
                conn.live(timeout=2.5)
    finally:
        proxy.close()
        server.stop(None)


def test_stock_server_never_fails_a_call_because_of_pings() -> None:
    """Scaled down: the server's 5-minute minimum ping interval becomes 2 s, and so does the
    client's keepalive time, as the defaults are 300 s against 300 s. The server keeps gRPC's
    other defaults: idle pings allowed every 2 hours only, 2 strikes, then GOAWAY. (With the
    client at 1 s, half the server's interval, the long call fails with "Too many pings".)"""
    models = {"sleepy": sleepy_model(5.0)}
    server, port = serve(
        [v2_handler(V2Service(models))], [("grpc.http2.min_ping_interval_without_data_ms", 2000)]
    )
    try:
        with easnb.connect(f"127.0.0.1:{port}", keepalive=easnb.Keepalive(time_s=2, timeout_s=1), timeout=10) as conn:
            x = {"x": np.zeros(1, np.float32)}
            assert conn.infer("sleepy", x)["x"].shape == (1,)  # a long call, pinged while it runs
            time.sleep(5)  # idle: the server strikes the pings and may send GOAWAY too_many_pings
            assert conn.live()
            assert conn.infer("sleepy", {"x": np.zeros(1, np.float32), "seconds": np.array([0.1])})
            for _ in range(20):  # short calls with gaps
                assert conn.ready()
                time.sleep(0.2)
    finally:
        server.stop(None)
