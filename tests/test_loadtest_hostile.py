"""load_test against servers that misbehave: a hang with no deadline, statistics that go backwards or
are not statistics at all. Each sweep must end on time and say less rather than something wrong."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import pytest

import easnb
from easnb import _proto, cli_perf
from easnb.demo.server import SERVER_OPTIONS, V2Service, v2_handler
from easnb.loadreport import error_notes

from .test_loadtest import ONE, Slow


class Hostile:
    """The slow model's V2 service, with ModelInfer that can hang and ModelStatistics that can lie."""

    def __init__(self) -> None:
        self.service = V2Service({"slow": Slow().model()})
        self.calls = 0
        self.hang_after: int | None = None  # calls answered before every other hangs
        self.release = threading.Event()
        self.stats = "honest"
        self.asked = 0

    def infer(self, data: bytes, context: grpc.ServicerContext) -> bytes:
        self.calls += 1
        if self.hang_after is not None and self.calls > self.hang_after:
            self.release.wait(30)
        return self.service.model_infer(data)

    def statistics(self, data: bytes, context: grpc.ServicerContext) -> bytes:
        self.asked += 1
        if self.stats == "stall" and self.asked > 1:  # the first ask is answered, every later one stalls
            self.release.wait(30)
        if self.stats == "garbage":
            return b"\xff\xff\xff\xff not a protobuf"
        reply = self.service.model_statistics(_proto.ModelStatisticsRequest.FromString(data))
        if self.stats in ("other", "all"):  # another model's statistics, or every model's when asked for one
            extra = reply.model_stats.add()
            extra.CopyFrom(reply.model_stats[0])
            extra.name = "other"
            extra.inference_stats.compute_infer.ns *= 1000
            if self.stats == "other":
                del reply.model_stats[0]
        if self.stats == "huge":  # 1000 times the time the model took: more than the client waited
            reply.model_stats[0].inference_stats.compute_infer.ns *= 1000
        if self.stats == "backwards":  # counters that shrink with every answer, as after a restart
            for stage in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
                duration = getattr(reply.model_stats[0].inference_stats, stage)
                duration.count, duration.ns = max(0, 10_000 - 100 * self.asked), max(0, 10**10 - 10**8 * self.asked)
        return reply.SerializeToString()


@pytest.fixture()
def hostile() -> Iterator[tuple[str, Hostile]]:
    h = Hostile()
    methods = {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(h.infer),
        "ModelStatistics": grpc.unary_unary_rpc_method_handler(h.statistics),
        "ModelMetadata": grpc.unary_unary_rpc_method_handler(
            lambda r, c: h.service.model_metadata(r), _proto.ModelMetadataRequest.FromString,
            _proto.ModelMetadataResponse.SerializeToString),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=SERVER_OPTIONS,
                         handlers=[grpc.method_handlers_generic_handler("inference.GRPCInferenceService", methods)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", h
    h.release.set()
    server.stop(None).wait()


def test_a_hung_server_without_deadlines_cannot_hold_the_sweep(hostile: tuple[str, Hostile]) -> None:
    endpoint, h = hostile
    with easnb.connect(endpoint, timeout=None) as conn:
        h.hang_after = 1  # the sweep's first call is answered; every later one hangs
        started = time.perf_counter()
        closed = conn.load_test("slow", ONE, concurrency=[2], seconds=0.5, warmup=0.0, progress=False, timeout=None)
        h.hang_after = h.calls + 1
        opened = conn.load_test("slow", ONE, rate=[20], seconds=0.3, warmup=0.0, progress=False, timeout=2)
        took = time.perf_counter() - started
    assert closed.levels[0].requests == 0 and np.isnan(closed.levels[0].p50_ms)
    # `easnb load` exits 1 on such a level: its output says why (was: no word, only the exit status)
    assert error_notes(closed) == ["concurrency 2: no request was answered in the window, so nothing was measured"]
    assert "nothing was measured" in closed._repr_html_() and cli_perf._status(closed) == 1
    assert opened.levels[0].errors == {"DEADLINE_EXCEEDED": opened.levels[0].requests} and opened.levels[0].requests >= 4
    assert took < 12, took


def test_the_first_call_is_bounded_even_without_a_deadline(hostile: tuple[str, Hostile]) -> None:
    endpoint, h = hostile
    with easnb.connect(endpoint, timeout=None) as conn:
        h.hang_after = 0
        with pytest.raises(easnb.DeadlineError):
            conn.load_test("slow", ONE, concurrency=[1], seconds=0.5, progress=False, timeout=1)


@pytest.mark.parametrize("lie", ["backwards", "garbage", "huge"])
def test_statistics_that_lie_give_no_split(hostile: tuple[str, Hostile], lie: str) -> None:
    endpoint, h = hostile
    h.stats = lie
    with easnb.connect(endpoint, timeout=5) as conn:
        report = conn.load_test("slow", ONE, concurrency=[1], seconds=0.4, warmup=0.1, progress=False)
    level = report.levels[0]
    assert level.requests > 10 and level.server_ms == {} and "<svg" in report._repr_html_()
    assert all(v is None or v >= 0 for k, v in __import__("json").loads(report.to_json())["levels"][0].items()
               if k.startswith("server_") and not isinstance(v, str))


def test_an_open_loop_far_above_capacity_still_measures_the_server() -> None:
    """rate=[1e6] against a 200/s model: the sender skips what it cannot send (counted as not sent) instead
    of spinning through a million due times without letting an answer in (which reported 0 infer/s)."""
    from .test_loadtest import Slow

    model = Slow()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=SERVER_OPTIONS,
                         handlers=[v2_handler(V2Service({"slow": model.model()}))])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with easnb.connect(f"127.0.0.1:{port}", timeout=10) as conn:
            started = time.perf_counter()
            report = conn.load_test("slow", ONE, rate=[1e6], seconds=1.0, warmup=0.0, max_in_flight=10, progress=False)
            took = time.perf_counter() - started
    finally:
        server.stop(None).wait()
    level = report.levels[0]
    assert level.infer_per_s > 10 and level.requests >= 10, level  # answers taken in during the window
    assert level.requests + level.not_sent == pytest.approx(1e6, abs=2)  # every due request is sent or counted
    assert "not sent" in level.client_limited and took < 8, took


def test_statistics_of_another_model_are_not_taken_for_this_one(hostile: tuple[str, Hostile]) -> None:
    endpoint, h = hostile
    with easnb.connect(endpoint, timeout=5) as conn:
        h.stats = "other"
        with pytest.raises(easnb.NotFoundError, match="no statistics for model 'slow'"):
            conn.model_statistics("slow")
        alone = conn.load_test("slow", ONE, concurrency=[1], seconds=0.3, warmup=0.0, progress=False)
        h.stats = "all"
        assert [s.name for s in conn.model_statistics("slow")] == ["slow"]
        mixed = conn.load_test("slow", ONE, concurrency=[1], seconds=0.4, warmup=0.1, progress=False)
    assert not alone.split and alone.levels[0].server_ms == {}
    assert mixed.split and 4.5 <= mixed.levels[0].server_ms["compute_infer"] <= mixed.levels[0].mean_ms, mixed.levels[0].server_ms


def test_statistics_that_stall_cannot_hold_the_sweep(hostile: tuple[str, Hostile]) -> None:
    """A connection without deadlines, and a server that answers the first ModelStatistics and stalls the
    rest: each snapshot waits for the requests' deadline at most (it waited for ever: 40 s with a 20 s stall)."""
    endpoint, h = hostile
    h.stats = "stall"
    with easnb.connect(endpoint, timeout=None) as conn:
        started = time.perf_counter()
        report = conn.load_test("slow", ONE, concurrency=[1], seconds=0.5, warmup=0.0, progress=False, timeout=1)
        took = time.perf_counter() - started
    assert report.split and report.levels[0].requests > 10 and report.levels[0].server_ms == {}
    assert took < 10, took


def test_closing_the_connection_mid_sweep_ends_it_cleanly(hostile: tuple[str, Hostile], monkeypatch: pytest.MonkeyPatch,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    """conn.close() from another thread (a widget connecting again) mid-level: the sweep returns at once
    with what it measured, and no thread dies with a traceback (it did: "Exception in thread", "Event loop
    is closed", "Task was destroyed but it is pending")."""
    import gc

    endpoint, _ = hostile
    died: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", died.append)
    loops = {t.ident for t in threading.enumerate() if t.name == "easnb-aio"}  # other tests' connections' loops
    conn = easnb.connect(endpoint, timeout=5)
    closer = threading.Timer(0.6, conn.close)
    closer.start()
    started = time.perf_counter()
    report = conn.load_test("slow", ONE, concurrency=[2, 4], seconds=1.5, warmup=0.0, progress=False)
    took = time.perf_counter() - started
    closer.join()
    gc.collect()
    assert report.stopped == "stopped: the connection was closed" and len(report.levels) == 1, report
    assert report.levels[0].requests > 10 and report.levels[0].seconds < 1.2 and took < 3, (report.levels[0], took)
    assert not died and "Traceback" not in capfd.readouterr().err
    assert {t.ident for t in threading.enumerate() if t.name == "easnb-aio"} <= loops  # this sweep's loop ended
