"""Idle limits on a shared stream (conn.open_stream), whose callers read the call in turn.

The caller holding the turn waits inside gRPC; a limit of another caller's never ends a request before
its own limit, and a stream silent past every waiting caller's limit is ended by the connection's watchdog.
"""

from __future__ import annotations

import contextlib
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

from .test_streaming_hostile import INPUTS, queued, reply, stream_server


def serve(delays: dict[str, float], errors: frozenset[str] = frozenset()) -> tuple[grpc.Server, str]:
    """A Triton-like stream: request ``id`` gets its final reply (an error reply for those in ``errors``) after
    ``delays[id]`` seconds; other ids nothing."""

    def handle(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        out: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

        def answer(request_id: str) -> None:
            time.sleep(delays[request_id])
            if request_id in errors:
                out.put(encode_stream_response(reply(request_id), "model failed"))
            else:
                out.put(encode_stream_response(reply(request_id, b"done", final=True)))

        def read() -> None:
            with contextlib.suppress(grpc.RpcError):  # the client ended the call: nothing more to read
                for data in requests:
                    request_id = _proto.ModelInferRequest.FromString(data).id
                    if request_id in delays:
                        threading.Thread(target=answer, args=(request_id,), daemon=True).start()

        threading.Thread(target=read, daemon=True).start()
        yield from queued(out, context)

    return stream_server(handle)


def read_in_thread(stream: Any) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            outcome["texts"] = [r["text_output"][0] for r in stream]
        except easnb.EasnbError as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("first_reader", ["never", "late"])
def test_a_short_limit_ends_only_its_own_request(first_reader: str) -> None:
    server, endpoint = serve({"late": 1.5})
    try:
        with easnb.connect(endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
            never = shared.submit(INPUTS, request_id="never", first_response_timeout=0.4)
            late = shared.submit(INPUTS, request_id="late", first_response_timeout=10)
            order = [never, late] if first_reader == "never" else [late, never]
            first, first_outcome = read_in_thread(order[0])
            time.sleep(0.1)  # the first reader holds the turn; the second waits for its reply or the turn
            second, second_outcome = read_in_thread(order[1])
            first.join(10)
            second.join(10)
            outcomes = dict(zip(("never", "late") if first_reader == "never" else ("late", "never"),
                                (first_outcome, second_outcome)))
            assert isinstance(outcomes["never"]["error"], easnb.DeadlineError)
            assert "first_response_timeout=0.4" in str(outcomes["never"]["error"])
            # the caller holding the turn learns of its limit at the next reply on the stream (late's, at 1.5 s)
            assert 0.2 < outcomes["never"]["seconds"] < 4  # its limit counts from the submit, 0.1 s before some readers start
            assert outcomes["late"] == {"texts": [b"done"], "seconds": outcomes["late"]["seconds"]}  # not cut short
            assert late.finished and never.responses == []
    finally:
        server.stop(None)


def test_a_stream_silent_past_every_waiting_limit_is_ended() -> None:
    server, endpoint = serve({"answered": 0.0})
    try:
        with easnb.connect(endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
            a = shared.submit(INPUTS, first_response_timeout=0.3)
            b = shared.submit(INPUTS, first_response_timeout=0.8)
            (ta, a_outcome), (tb, b_outcome) = read_in_thread(a), read_in_thread(b)
            ta.join(10)
            tb.join(10)
            for stream, outcome in ((a, a_outcome), (b, b_outcome)):
                assert isinstance(outcome["error"], easnb.DeadlineError), outcome
                assert f"request id {stream.request_id!r}" in str(outcome["error"])  # each its own limit, named
                assert outcome["seconds"] < 5  # not the call's deadline (none), nor forever
            assert max(a_outcome["seconds"], b_outcome["seconds"]) > 0.7  # b was not ended before its own limit
            again = shared.submit(INPUTS, request_id="answered", first_response_timeout=5)  # the call is over: another
            assert [r["text_output"][0] for r in again] == [b"done"]
    finally:
        server.stop(None)


def test_an_id_cancelled_before_its_final_reply_is_not_reused_until_that_reply_comes() -> None:
    """Reusing a cancelled request's id at once would hand the old request's late replies to the new one."""
    server, endpoint = serve({"slow": 0.5, "keep": 1.2})
    try:
        with easnb.connect(endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
            keep = shared.submit(INPUTS, request_id="keep")  # in flight: the cancel below cannot end the call
            slow = shared.submit(INPUTS, request_id="slow")
            slow.cancel()
            with pytest.raises(easnb.EasnbError, match="'slow' was cancelled or timed out") as refused:
                shared.submit(INPUTS, request_id="slow")
            assert "another id" in refused.value.hint
            made = shared.submit(INPUTS)  # an id of its own is never the abandoned one
            assert made.request_id not in ("slow", "keep")
            made.cancel()
            assert [r["text_output"][0] for r in keep] == [b"done"]  # while read, slow's late final reply came (0.5 s)
            again = shared.submit(INPUTS, request_id="slow")  # its final reply came: the id is free again
            started = time.monotonic()
            assert [r["text_output"][0] for r in again] == [b"done"] and time.monotonic() - started > 0.3  # its own
    finally:
        server.stop(None)


def test_a_cancel_racing_the_turn_holders_own_final_reply_leaves_its_id_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller holding the turn reads its request's final reply while another thread cancels that request
    (marking it abandoned): the reply came, so the id is free again (was: refused until the call ended)."""
    server, endpoint = serve({"slow": 0.3, "keep": 3.0})
    try:
        with easnb.connect(endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
            dispatch = shared._dispatch
            forget = dispatch.forget
            keep = shared.submit(INPUTS, request_id="keep")  # in flight: the cancel below cannot end the call
            slow = shared.submit(INPUTS, request_id="slow")

            def cancel_first(request_id: str) -> None:  # the cancel lands between the reply's check and forget
                if request_id == "slow":
                    other = threading.Thread(target=slow.cancel)
                    other.start()
                    other.join()
                forget(request_id)

            monkeypatch.setattr(dispatch, "forget", cancel_first)
            assert [r["text_output"][0] for r in slow] == [b"done"]  # it held the turn and read its own final reply
            assert slow.cancelled
            again = shared.submit(INPUTS, request_id="slow")  # its final reply came: the id is free
            assert again.request_id == "slow"
            again.cancel()
            keep.cancel()
    finally:
        server.stop(None)


def test_an_abandoned_id_whose_server_never_answers_is_freed_once_nothing_else_is_in_flight() -> None:
    """A cancelled request the server never finishes: once the others are over, the call ends (the server
    stops working for nobody) and the id may be sent again on the next call (was: refused for ever)."""
    server, endpoint = serve({"keep": 0.5, "again": 0.2})  # "slow" is never answered
    try:
        with easnb.connect(endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
            keep = shared.submit(INPUTS, request_id="keep")
            slow = shared.submit(INPUTS, request_id="slow")
            slow.cancel()
            with pytest.raises(easnb.EasnbError, match="'slow' was cancelled") as refused:
                shared.submit(INPUTS, request_id="slow")
            assert "another stream" in refused.value.hint  # what frees it, when the server never answers
            assert [r["text_output"][0] for r in keep] == [b"done"]
            reused = shared.submit(INPUTS, request_id="slow")  # a new call: no late reply of the old can reach it
            reused.cancel()
            assert [r["text_output"][0] for r in shared.submit(INPUTS, request_id="again")] == [b"done"]
    finally:
        server.stop(None)


def test_the_turn_holder_cancelled_from_another_thread_frees_its_id_once_the_others_are_over() -> None:
    """The caller holding the turn is cancelled from another thread while another request is in flight, and the
    server never finishes it: once the other's final reply comes, the call ends and the id is free again."""
    server, endpoint = serve({"keep": 0.5, "again": 0.2})  # "slow" is never answered
    try:
        with easnb.connect(endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
            slow = shared.submit(INPUTS, request_id="slow")
            keep = shared.submit(INPUTS, request_id="keep")
            reader, outcome = read_in_thread(slow)
            for _ in range(100):  # until slow's caller holds the turn, waiting inside gRPC
                if shared._dispatch.reading is slow:
                    break
                time.sleep(0.01)
            assert shared._dispatch.reading is slow
            slow.cancel()  # keep is in flight: the call stays
            reader.join(5)
            assert outcome.get("texts") == [] and slow.cancelled  # it woke on keep's final reply, and ended
            assert [r["text_output"][0] for r in keep] == [b"done"]  # from its inbox
            reused = shared.submit(INPUTS, request_id="slow")  # nothing but slow was left: a new call
            reused.cancel()
            assert [r["text_output"][0] for r in shared.submit(INPUTS, request_id="again")] == [b"done"]
    finally:
        server.stop(None)


def test_an_abandoned_id_is_freed_by_its_error_reply_as_by_a_final_one() -> None:
    """A server that ends a cancelled request with an error reply instead of a final one: the id is free again
    while the others are still in flight."""
    server, endpoint = serve({"slow": 0.2, "mid": 0.5, "keep": 3.0}, errors=frozenset({"slow"}))
    try:
        with easnb.connect(endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
            keep = shared.submit(INPUTS, request_id="keep")
            slow = shared.submit(INPUTS, request_id="slow")
            slow.cancel()
            assert [r["text_output"][0] for r in shared.submit(INPUTS, request_id="mid")] == [b"done"]  # slow's error came
            again = shared.submit(INPUTS, request_id="slow")  # keep is still in flight: freed by the error reply
            with pytest.raises(easnb.EasnbError, match="model failed"):
                again.collect()  # its own error reply, at 0.2 s
            keep.cancel()
    finally:
        server.stop(None)


def test_an_id_timed_out_while_another_reads_is_refused_until_its_final_reply_comes() -> None:
    """The timed-out half of the rule: a request past its first_response_timeout while another caller holds the
    turn is refused again until its late final reply is read off the call."""
    server, endpoint = serve({"slow": 0.6, "keep": 1.5})
    try:
        with easnb.connect(endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
            keep = shared.submit(INPUTS, request_id="keep")
            slow = shared.submit(INPUTS, request_id="slow", first_response_timeout=0.2)
            reader, outcome = read_in_thread(keep)  # keep's caller takes the turn
            time.sleep(0.05)
            with pytest.raises(easnb.DeadlineError):
                slow.collect()
            with pytest.raises(easnb.EasnbError, match="'slow' was cancelled or timed out"):
                shared.submit(INPUTS, request_id="slow")
            deadline = time.monotonic() + 5
            while shared._dispatch.taken("slow") and time.monotonic() < deadline:  # its final reply, at 0.6 s
                time.sleep(0.05)
            again = shared.submit(INPUTS, request_id="slow")
            assert [r["text_output"][0] for r in again] == [b"done"]
            reader.join(5)
            assert outcome["texts"] == [b"done"]
    finally:
        server.stop(None)


def test_the_turn_holder_s_own_reply_after_its_limit_is_a_deadline_error() -> None:
    """The caller holding the turn gets its own first reply 0.6 s after the submit, past its 0.2 s limit: a
    DeadlineError naming the limit (as conn.stream gives), not the reply; that reply was final, so its id is free."""
    server, endpoint = serve({"slow": 0.6})
    try:
        with easnb.connect(endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
            slow = shared.submit(INPUTS, request_id="slow", first_response_timeout=0.2)
            with pytest.raises(easnb.DeadlineError, match=r"first_response_timeout=0.2 s \(request id 'slow'\)"):
                slow.collect()
            assert slow.responses == []
            again = shared.submit(INPUTS, request_id="slow", first_response_timeout=5)
            assert [r["text_output"][0] for r in again] == [b"done"]
    finally:
        server.stop(None)


def test_a_silent_stream_is_ended_when_the_limit_passes_not_up_to_a_second_later() -> None:
    """A request submitted with a limit that passes before the watchdog's next look (planned a second on while
    nobody waited) has it look then: a 0.2 s limit on a silent stream ends it well before a second."""
    server, endpoint = serve({"one": 0.05})  # a reply for "one", then silence
    try:
        with easnb.connect(endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
            shared.submit(INPUTS, request_id="one").collect()  # the first request: the watchdog has the stream
            quiet = shared.submit(INPUTS, request_id="quiet", first_response_timeout=0.2)
            started = time.monotonic()
            with pytest.raises(easnb.DeadlineError, match="first_response_timeout=0.2 s"):
                quiet.collect()
            assert time.monotonic() - started < 0.6  # was 0.9-1.2 s
            time.sleep(1.2)  # the look planned before (a second after "one") finds the call ended too: no look left
            with conn.stream_watchdog._lock:
                assert conn.stream_watchdog._due == []
    finally:
        server.stop(None)
