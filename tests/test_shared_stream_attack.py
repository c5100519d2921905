"""conn.open_stream attacked from several threads against a scripted server: failures mid-way, requests
submitted and never read, cancels from another thread, each caller's error naming its own request."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

import easnb
from easnb import _proto
from easnb.stream_wire import encode_stream_response

from .test_shared_stream_idle import read_in_thread
from .test_streaming_hostile import INPUTS, queued, reply, stream_server

pytestmark = pytest.mark.timeout(60)


class Scripted:
    """A Triton-like ``ModelStreamInfer`` whose replies the test sends: ``seen`` gets each request's id as it
    arrives, ``send(...)`` puts a reply on the stream, ``abort(code, details)`` ends the call with a status."""

    def __init__(self) -> None:
        self.seen: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.cancelled = threading.Event()
        self.server, self.endpoint = stream_server(self._handle)

    def _handle(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        context.add_callback(lambda: None if context.is_active() else self.cancelled.set())
        out = self.out = queue.SimpleQueue()  # replies go to the newest call, never to one that ended

        def read() -> None:
            try:
                for data in requests:
                    self.seen.put(_proto.ModelInferRequest.FromString(data).id)
            except grpc.RpcError:  # the call was cancelled
                pass

        threading.Thread(target=read, daemon=True).start()
        for item in queued(out, context):
            if isinstance(item, tuple):
                context.abort(*item)
            yield item

    def send(self, request_id: str, text: bytes | None = None, final: bool = False) -> None:
        self.out.put(encode_stream_response(reply(request_id, text, final)))

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.out.put((code, details))

    def wait_seen(self, count: int) -> list[str]:
        return [self.seen.get(timeout=5) for _ in range(count)]

    def stop(self) -> None:
        self.server.stop(None)


@pytest.fixture()
def scripted() -> Iterator[Scripted]:
    server = Scripted()
    yield server
    server.stop()


def test_a_call_ended_by_a_status_gives_each_caller_an_error_of_its_own(scripted: Scripted) -> None:
    with easnb.connect(scripted.endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
        a = shared.submit(INPUTS, request_id="a")
        b = shared.submit(INPUTS, request_id="b")
        scripted.wait_seen(2)
        scripted.send("a", b"a1")
        scripted.send("b", b"b1")
        scripted.send("b", b"b2")
        (ta, a_out), (tb, b_out) = read_in_thread(a), read_in_thread(b)
        time.sleep(0.3)
        scripted.abort(grpc.StatusCode.INTERNAL, "model crashed")
        ta.join(10)
        tb.join(10)
        errors = {"a": a_out["error"], "b": b_out["error"]}
        assert isinstance(errors["a"], easnb.EasnbError) and isinstance(errors["b"], easnb.EasnbError)
        assert errors["a"] is not errors["b"]  # was: one exception object raised in both threads
        assert errors["a"].request_id == "a" and errors["b"].request_id == "b"  # was: both named the first to raise
        assert [r["text_output"][0] for r in errors["a"].received] == [b"a1"]
        assert [r["text_output"][0] for r in errors["b"].received] == [b"b1", b"b2"]
        assert "model crashed" in str(errors["a"]) and "model crashed" in str(errors["b"])


def test_a_request_submitted_and_not_yet_read_is_not_lost_to_another_callers_short_limit(scripted: Scripted) -> None:
    with easnb.connect(scripted.endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
        short = shared.submit(INPUTS, request_id="short", first_response_timeout=0.3)
        long = shared.submit(INPUTS, request_id="long", first_response_timeout=20)
        scripted.wait_seen(2)
        started = time.monotonic()
        threading.Timer(1.5, lambda: scripted.send("long", b"kept", final=True)).start()
        with pytest.raises(easnb.DeadlineError, match="first_response_timeout=0.3"):
            short.collect()  # nobody reads `long` yet: its limit (20 s) has not passed, so the call must stay
        assert time.monotonic() - started < 5
        assert [r["text_output"][0] for r in long] == [b"kept"] and long.finished  # was: DeadlineError, the call ended
        assert not scripted.cancelled.is_set()


def echo_server() -> Scripted:
    """A scripted server that answers each request with two tokens and its final reply as it arrives."""
    server = Scripted()

    def answer() -> None:
        while True:
            try:
                request_id = server.seen.get(timeout=30)
            except queue.Empty:
                return
            server.send(request_id, request_id.encode())
            server.send(request_id, b"!")
            server.send(request_id, final=True)

    threading.Thread(target=answer, daemon=True).start()
    return server


def test_many_threads_submitting_at_once_on_a_fresh_stream_each_get_their_own_replies() -> None:
    server = echo_server()
    try:
        with easnb.connect(server.endpoint, timeout=None) as conn:
            for _ in range(3):
                with conn.open_stream("m", flavour="triton") as shared:
                    gate, outcomes = threading.Barrier(8), {}

                    def run(i: int) -> None:
                        gate.wait()
                        stream = shared.submit(INPUTS, request_id=f"r{i}", first_response_timeout=10)
                        outcomes[i] = [r["text_output"][0] for r in stream]

                    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join(20)
                    # was: two first submits each opened a call on one request queue; one call's replies went unread
                    assert outcomes == {i: [f"r{i}".encode(), b"!"] for i in range(8)}
    finally:
        server.stop()


def test_cancel_from_another_thread_ends_a_caller_blocked_reading_the_stream(scripted: Scripted) -> None:
    with easnb.connect(scripted.endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
        a = shared.submit(INPUTS, request_id="a", first_response_timeout=None)
        scripted.wait_seen(1)
        scripted.send("a", b"a1")
        thread, outcome = read_in_thread(a)  # gets a1, then waits inside gRPC for a reply that never comes
        time.sleep(0.5)
        a.cancel()
        thread.join(5)
        assert not thread.is_alive()  # was: blocked until the next reply on the stream, here forever
        assert outcome["texts"] == [b"a1"] and a.cancelled and not a.finished
        assert scripted.cancelled.wait(5)  # nothing else was in flight: the server sees the cancel
        b = shared.submit(INPUTS, request_id="b")  # the stream still takes requests
        scripted.wait_seen(1)
        scripted.send("b", b"b1", final=True)
        assert [r["text_output"][0] for r in b] == [b"b1"]


def test_break_ends_the_call_only_when_no_other_request_is_in_it(scripted: Scripted) -> None:
    with easnb.connect(scripted.endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
        a = shared.submit(INPUTS, request_id="a")
        b = shared.submit(INPUTS, request_id="b")
        scripted.wait_seen(2)
        scripted.send("a", b"a1")
        scripted.send("b", b"b1")
        for _ in a:
            break
        scripted.send("b", b"b2", final=True)  # b is still in the call
        assert [r["text_output"][0] for r in b] == [b"b1", b"b2"] and not scripted.cancelled.is_set()
        c = shared.submit(INPUTS, request_id="c")
        scripted.wait_seen(1)
        scripted.send("c", b"c1")
        for _ in c:
            break  # c alone was in flight: the call ends, and the server sees it
        assert scripted.cancelled.wait(5)
        d = shared.submit(INPUTS, request_id="d")  # a new call
        scripted.wait_seen(1)
        scripted.send("d", b"d1", final=True)
        assert [r["text_output"][0] for r in d] == [b"d1"]


def interrupt_after(seconds: float) -> threading.Timer:
    import _thread

    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    return timer


def test_ctrl_c_while_blocked_reading_the_stream_cancels_the_request(scripted: Scripted) -> None:
    with easnb.connect(scripted.endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
        a = shared.submit(INPUTS, request_id="a", first_response_timeout=None)
        scripted.wait_seen(1)
        interrupt_after(0.5)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            a.collect()  # holds the turn, inside gRPC
        assert time.monotonic() - started < 3 and a.cancelled
        assert scripted.cancelled.wait(5)
        b = shared.submit(INPUTS, request_id="b")
        scripted.wait_seen(1)
        scripted.send("b", b"b1", final=True)
        assert [r["text_output"][0] for r in b] == [b"b1"]


def test_ctrl_c_while_waiting_for_the_turn_leaves_the_other_request_running(scripted: Scripted) -> None:
    with easnb.connect(scripted.endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
        a = shared.submit(INPUTS, request_id="a", first_response_timeout=None)
        b = shared.submit(INPUTS, request_id="b", first_response_timeout=None)
        scripted.wait_seen(2)
        thread, outcome = read_in_thread(b)  # b's caller holds the turn
        time.sleep(0.3)
        interrupt_after(0.3)
        with pytest.raises(KeyboardInterrupt):
            a.collect()  # waits for its reply or the turn
        assert a.cancelled and not scripted.cancelled.is_set()
        scripted.send("a", b"late for a")
        scripted.send("b", b"b1", final=True)
        thread.join(5)
        assert outcome["texts"] == [b"b1"] and a.responses == []


def test_ctrl_c_while_blocked_in_a_single_request_stream_cancels_it(scripted: Scripted) -> None:
    with easnb.connect(scripted.endpoint, timeout=None) as conn:
        stream = conn.stream("m", INPUTS, flavour="triton", first_response_timeout=None)
        interrupt_after(0.5)
        with pytest.raises(KeyboardInterrupt):
            stream.collect()
        assert stream.cancelled and scripted.cancelled.wait(5)


def senders() -> set[int]:
    """The threads in gRPC's loop that sends a stream's requests."""
    import sys
    import traceback

    return {ident for ident, frame in sys._current_frames().items()
            if any(f.name == "consume_request_iterator" for f in traceback.extract_stack(frame))}


def test_a_failed_stream_left_open_lets_go_of_grpcs_sending_thread(scripted: Scripted) -> None:
    before = senders()
    with easnb.connect(scripted.endpoint, timeout=None) as conn:
        shared = conn.open_stream("m", flavour="triton")  # kept open after the failure, as a notebook would
        a = shared.submit(INPUTS, request_id="a")
        scripted.wait_seen(1)
        assert senders() - before
        scripted.abort(grpc.StatusCode.INTERNAL, "gone")
        with pytest.raises(easnb.ServerError, match="gone"):
            a.collect()
        deadline = time.monotonic() + 5
        while senders() - before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not senders() - before  # was: blocked on the request queue until the stream was closed or dropped
        again = shared.submit(INPUTS)  # on another call (tests/test_shared_stream_reopen.py)
        assert scripted.wait_seen(1) == [again.request_id]
        shared.close()


def test_submit_refuses_what_belongs_to_the_shared_call_and_makes_ids_that_are_free(scripted: Scripted) -> None:
    with easnb.connect(scripted.endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
        for option in ({"timeout": 3}, {"headers": {"x-a": "1"}}):  # was: taken, and silently ignored
            with pytest.raises(easnb.ArgumentError, match=f"submit\\(\\) takes no {next(iter(option))}=") as caught:
                shared.submit(INPUTS, **option)
            assert "open_stream" in caught.value.hint
        mine = shared.submit(INPUTS, request_id="easnb-0")
        made = [shared.submit(INPUTS) for _ in range(2)]  # was: the first made id, easnb-0, refused as in flight
        assert [s.request_id for s in made] == ["easnb-1", "easnb-2"] and mine.request_id == "easnb-0"
        with pytest.raises(easnb.EasnbError, match="already in flight"):
            shared.submit(INPUTS, request_id="easnb-1")


def test_a_loop_closed_while_its_thread_holds_the_dispatch_lock_does_not_deadlock(scripted: Scripted) -> None:
    # The garbage collector closes an abandoned loop in whichever thread allocates, also one that holds the
    # stream's lock (a caller handing a reply to another's inbox, the watchdog looking): the loop's cancel
    # takes that lock again. Here the loop is dropped under the lock, which is what that collection does.
    with easnb.connect(scripted.endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
        x = shared.submit(INPUTS, request_id="x")
        y = shared.submit(INPUTS, request_id="y")
        scripted.wait_seen(2)
        scripted.send("x", b"x1")
        loop = iter(x)
        next(loop)  # suspended after its first reply
        done = threading.Event()

        def drop() -> None:
            nonlocal loop
            with shared._dispatch.changed:
                del loop  # was: the loop's cancel waited for the lock this thread holds, forever
            done.set()

        worker = threading.Thread(target=drop, daemon=True)
        worker.start()
        assert done.wait(5) and x.cancelled
        scripted.send("y", b"y1", final=True)
        assert [r["text_output"][0] for r in y] == [b"y1"]


def test_a_stream_loop_closed_while_its_thread_holds_the_watchdogs_lock_does_not_deadlock(scripted: Scripted) -> None:
    # As above, for conn.stream: its loop's end lets go of the watchdog, whose lock the collecting thread may hold
    with easnb.connect(scripted.endpoint, timeout=None) as conn:
        stream = conn.stream("m", INPUTS, flavour="triton", request_id="s", first_response_timeout=30)
        scripted.wait_seen(1)
        scripted.send("s", b"s1")
        loop = iter(stream)
        next(loop)
        done = threading.Event()

        def drop() -> None:
            nonlocal loop
            with conn.stream_watchdog._lock:
                del loop  # was: unwatch() waited for the lock this thread holds, forever
            done.set()

        threading.Thread(target=drop, daemon=True).start()
        assert done.wait(5) and stream.cancelled
        later = conn.stream("m", INPUTS, flavour="triton", request_id="t", first_response_timeout=0.3)
        with pytest.raises(easnb.DeadlineError, match="first_response_timeout=0.3"):
            later.collect()  # the watchdog still works


@pytest.mark.parametrize("kind", ["stream", "open_stream"])
def test_a_connection_closed_under_a_stream_ends_it_with_closed_error(scripted: Scripted, kind: str) -> None:
    conn = easnb.connect(scripted.endpoint, timeout=None)
    if kind == "stream":
        stream = conn.stream("m", INPUTS, flavour="triton", first_response_timeout=None)
    else:
        stream = conn.open_stream("m", flavour="triton").submit(INPUTS, first_response_timeout=None)
    scripted.wait_seen(1)
    thread, outcome = read_in_thread(stream)
    time.sleep(0.3)
    conn.close()
    thread.join(5)
    # was: ServerError "CANCELLED: Channel closed!", its hint blaming the server
    assert isinstance(outcome["error"], easnb.ClosedError), outcome


def test_an_async_connection_closed_under_a_stream_ends_it_with_closed_error(scripted: Scripted) -> None:
    import asyncio

    import easnb.aio

    async def main() -> BaseException | None:
        aconn = easnb.aio.connect(scripted.endpoint, timeout=None)
        stream = await aconn.stream("m", INPUTS, flavour="triton", first_response_timeout=None)
        reading = asyncio.ensure_future(stream.collect())
        await asyncio.sleep(0.3)
        await aconn.close()
        try:
            await asyncio.wait_for(reading, 5)
        except BaseException as exc:  # what the user would see
            return exc
        return None

    found = asyncio.run(main())
    assert isinstance(found, easnb.ClosedError), repr(found)  # was: a bare CancelledError nobody asked for
