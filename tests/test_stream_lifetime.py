"""conn.open_stream lets go of what it holds: its call and gRPC's threads when closed or dropped, and requests that are over."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

import easnb
from easnb.demo import DemoServer

from .test_streaming import prompt, wait_for, words
from .test_streaming_hostile import reply, serve


def started_during(before: set[int]) -> list[str]:
    return [t.name for t in threading.enumerate() if t.ident not in before]


@pytest.fixture()
def quiet_threads(conn: easnb.Connection) -> Iterator[set[int]]:
    """The threads alive once the connection's channel is in use (gRPC starts its own on the first call)."""
    with conn.open_stream("textgen", timeout=None) as warm:
        warm.submit(prompt("warm")).collect()
    assert wait_for(lambda: not [t for t in threading.enumerate() if t.name == "easnb-stream-reader"])
    yield {t.ident for t in threading.enumerate()}


def test_closing_an_open_stream_ends_its_threads(demo: DemoServer, conn: easnb.Connection, quiet_threads: set[int]) -> None:
    shared = conn.open_stream("textgen", timeout=None)
    assert words(shared.submit(prompt("a b")).collect()) == [" You", " said:", " a", " b."]
    assert "easnb-stream-reader" not in started_during(quiet_threads)  # each caller reads its own replies
    shared.close()
    assert wait_for(lambda: started_during(quiet_threads) == []), started_during(quiet_threads)


def test_a_dropped_open_stream_ends_its_call_and_threads(demo: DemoServer, conn: easnb.Connection,
                                                         quiet_threads: set[int]) -> None:
    shared = conn.open_stream("textgen", timeout=None)  # no timeout: nothing else would ever end the call
    assert "".join(words(shared.submit(prompt("x y")).collect())) == " You said: x y."
    before = demo.service.cancelled
    left = shared.submit(prompt("a b c d e f g h"), parameters={"delay_ms": 200})  # in flight, then dropped
    reading = iter(left)
    next(reading)  # the server is generating it
    unread = shared.submit(prompt("i j k l"), parameters={"delay_ms": 200})  # dropped unread
    dropped = weakref.ref(shared)
    del shared, left, reading, unread
    gc.collect()
    assert dropped() is None  # neither the reader thread nor a request nobody reads keeps it alive
    assert wait_for(lambda: started_during(quiet_threads) == []), started_during(quiet_threads)
    assert wait_for(lambda: demo.service.cancelled > before)  # the request in flight was cancelled on the server


def test_a_request_being_read_keeps_its_open_stream(conn: easnb.Connection, quiet_threads: set[int]) -> None:
    # the OpenStream is dropped at once; the request sent on it is still read to its end
    stream = conn.open_stream("textgen", timeout=None).submit(prompt("one two three"), parameters={"delay_ms": 20})
    gc.collect()
    assert "".join(words(stream.collect())) == " You said: one two three." and stream.finished
    del stream
    gc.collect()
    assert wait_for(lambda: started_during(quiet_threads) == []), started_during(quiet_threads)


def test_requests_that_are_over_are_not_kept(conn: easnb.Connection) -> None:
    with conn.open_stream("textgen", timeout=None) as shared:
        gone = []
        for i in range(5):
            stream = shared.submit(prompt(f"w{i} v{i}"))
            for _ in stream:  # only iterated, never collected
                pass
            gone.append(weakref.ref(stream))
        del stream
        gc.collect()
        assert [ref() for ref in gone] == [None] * 5
        assert shared._dispatch.waiting == {}


def test_mlserver_calls_that_are_over_are_not_kept() -> None:
    # MLServer's flavour: a call per request, plain ModelInferResponses, the end of the call ends the request
    server, endpoint = serve(lambda _: iter([reply("r", b"a"), reply("r", b"b")]))
    try:
        with easnb.connect(endpoint) as conn, conn.open_stream("m", flavour="mlserver", timeout=None) as shared:
            gone = []
            for _ in range(5):
                stream = shared.submit({"text_input": prompt("x")["text_input"]})
                assert [r["text_output"][0] for r in stream] == [b"a", b"b"]
                gone.append(weakref.ref(stream))
            del stream
            gc.collect()
            assert [ref() for ref in gone] == [None] * 5 and len(shared._calls) == 0
            kept = shared.submit({"text_input": prompt("x")["text_input"]})
            assert list(shared._calls) == [kept]  # one still in use is kept, so close() can cancel it
        assert kept.cancelled or kept.finished
    finally:
        server.stop(None)


def test_an_id_stays_in_flight_when_its_stream_is_dropped(conn: easnb.Connection) -> None:
    with conn.open_stream("textgen", timeout=None) as shared:
        shared.submit(prompt("a b c"), request_id="same", parameters={"delay_ms": 100})  # dropped at once, unread
        gc.collect()
        with pytest.raises(easnb.EasnbError, match="already in flight"):  # its replies would reach the new one
            shared.submit(prompt("d"), request_id="same")
        # until its final response is taken off the call, by whoever reads it next
        assert "".join(words(shared.submit(prompt("x y z w v u"), parameters={"delay_ms": 150}).collect())) == " You said: x y z w v u."
        assert "same" not in shared._dispatch.in_flight
        assert "".join(words(shared.submit(prompt("d"), request_id="same").collect())) == " You said: d."
