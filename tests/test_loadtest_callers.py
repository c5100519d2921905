"""load_test's closed-loop callers: a thread each on the connection's own sync channel (its interceptors
and metadata see every request, as a bare stub's would), and a Stop that a hung server cannot hold."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest

import easnb
from easnb.loadtest import THREADED_UP_TO

from .test_loadtest import ONE, Slow, slow  # noqa: F401 - the fixture
from .test_loadtest_hostile import Hostile, hostile  # noqa: F401 - the fixture

pytestmark = pytest.mark.alone  # windows and a time bound: a busy neighbour moves them


class Counting(grpc.UnaryUnaryClientInterceptor):
    """Counts the ModelInfer calls that pass through the connection's sync channel, with their metadata."""

    def __init__(self) -> None:
        self.calls = 0
        self.tagged = 0

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if details.method.endswith("/ModelInfer"):
            self.calls += 1
            self.tagged += ("x-sweep", "a") in tuple(details.metadata or ())
        return continuation(details, request)


@pytest.mark.parametrize("callers", [1, THREADED_UP_TO])
def test_callers_go_through_the_connections_sync_channel(slow: tuple[easnb.Connection, Slow], callers: int) -> None:  # noqa: F811
    conn, model = slow
    counting = Counting()
    with easnb.connect(conn.endpoint.target, timeout=10, interceptors=[counting], headers={"x-sweep": "a"}) as mine:
        ran = len(model.durations)
        level = mine.load_test("slow", ONE, concurrency=[callers], seconds=0.6, warmup=0.2, progress=False).levels[0]
    sent = len(model.durations) - ran  # what the server ran during the sweep (its first call included)
    assert level.requests > 10 and not level.errors, level
    assert counting.calls == sent and counting.tagged == sent, (counting.calls, counting.tagged, sent)
    assert counting.calls >= level.requests
    names = {t.name for t in threading.enumerate()}
    assert "easnb-load" not in names  # every caller ended with its level


def test_stop_mid_level_is_not_held_by_a_hung_server(hostile: tuple[str, Hostile]) -> None:  # noqa: F811
    """Stop (the tab's button, or ``cancel``) while every caller waits on a server that never answers,
    on a connection without deadlines: the sweep returns within about a second, not at the window's end."""
    endpoint, h = hostile
    with easnb.connect(endpoint, timeout=None) as conn:
        h.hang_after = 1
        cancel = threading.Event()
        stopper = threading.Timer(0.5, cancel.set)
        stopper.start()
        started = time.perf_counter()
        report = conn.load_test("slow", ONE, concurrency=[4], seconds=20, warmup=0.0, progress=False, timeout=None,
                                cancel=cancel)
        took = time.perf_counter() - started
        stopper.join()
    assert report.interrupted and took < 4, (report, took)
