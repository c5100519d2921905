"""conn.stream against servers that misbehave: garbage replies, a flood of text, foreign ids, no end."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from concurrent import futures

import grpc
import numpy as np
import pytest

import easnb
from easnb.stream_watchdog import LINGER
from easnb import _proto
from easnb.parameters import set_parameters
from easnb.stream_wire import encode_stream_response

INPUTS = {"text_input": np.array([b"x"], dtype=object)}


def reply(request_id: str, text: bytes | None = None, final: bool = False) -> bytes:
    r = _proto.ModelInferResponse(model_name="m", id=request_id)
    set_parameters(r.parameters, {"triton_final_response": final})
    if text is not None:
        r.outputs.add(name="text_output", datatype="BYTES", shape=[1]).contents.bytes_contents.append(text)
    return r.SerializeToString()


def stream_server(handle: Callable[[Iterator[bytes], grpc.ServicerContext], Iterator[bytes]]) -> tuple[grpc.Server, str]:
    """A started loopback server whose ``ModelStreamInfer`` is ``handle`` (bytes in, bytes out): ``(server, endpoint)``."""
    handler = grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", {"ModelStreamInfer": grpc.stream_stream_rpc_method_handler(handle)})
    server = grpc.server(futures.ThreadPoolExecutor(4), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def queued(out: queue.SimpleQueue[Any], context: grpc.ServicerContext) -> Iterator[Any]:
    """What a test server's threads put in ``out``, for as long as the call lasts."""
    while context.is_active():
        try:
            yield out.get(timeout=0.05)
        except queue.Empty:
            continue


def serve(answer: Callable[[bytes], Iterator[bytes]]) -> tuple[grpc.Server, str]:
    """A server answering each call's first request with ``answer(request)``."""
    def handle(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for data in requests:
            yield from answer(data)
            return

    return stream_server(handle)


@pytest.mark.parametrize(
    ("answer", "error", "says"),
    [
        (lambda _: iter([b"\xff\xff\xff"]), easnb.ServerError, "not a valid ModelStreamInferResponse"),
        (lambda _: iter([encode_stream_response(reply("r", b"ok")), b"\x12\x05ab"]), easnb.ServerError, "truncated"),
        (lambda _: iter([encode_stream_response(b"\x0a\xff")]), easnb.ServerError, "ModelInferResponse"),
    ],
)
def test_garbage_replies_are_a_clear_error(answer, error, says) -> None:  # type: ignore[no-untyped-def]
    server, endpoint = serve(answer)
    try:
        with easnb.connect(endpoint) as conn, pytest.raises(error, match=says) as caught:
            conn.stream("m", INPUTS, flavour="triton").collect()
        assert caught.value.__context__ is None or not isinstance(caught.value.__context__, grpc.RpcError)
    finally:
        server.stop(None)


def test_a_flood_of_error_text_is_bounded() -> None:
    flood = "E" * 5_000_000
    server, endpoint = serve(lambda _: iter([encode_stream_response(reply("r", final=True), flood)]))
    try:
        with easnb.connect(endpoint) as conn, pytest.raises(easnb.StreamError) as caught:
            conn.stream("m", INPUTS, flavour="triton").collect()
        assert len(str(caught.value)) < 3000 and len(caught.value.details) == 65536
    finally:
        server.stop(None)


def test_foreign_ids_on_a_shared_stream_are_ignored_and_no_end_times_out() -> None:
    def answer(data: bytes) -> Iterator[bytes]:
        yield encode_stream_response(reply("someone-else", b"not yours", final=True))
        time.sleep(5)

    server, endpoint = serve(answer)
    try:
        with easnb.connect(endpoint) as conn, conn.open_stream("m", flavour="triton") as shared:
            mine = shared.submit(INPUTS, first_response_timeout=0.5)
            started = time.monotonic()
            with pytest.raises(easnb.DeadlineError, match="first_response_timeout"):
                mine.collect()
            assert time.monotonic() - started < 3 and mine.responses == []
    finally:
        server.stop(None)


def _replies() -> list[bytes]:
    from easnb.tensors import encode_tensor

    plain = _proto.ModelInferResponse(model_name="m", model_version="2", id="i")
    set_parameters(plain.parameters, {"triton_final_response": False, "n": 3, "s": "x"})
    buffers = []
    for name, value in (("t", np.array([b"tok", b""], dtype=object)), ("n", np.array([[1, 2]], np.uint32)),
                        ("f", np.array([0.5], np.float16))):
        buffer, _ = encode_tensor(plain.outputs.add(), name, value)
        buffers.append(memoryview(buffer).tobytes())
    plain.raw_output_contents.extend(buffers)
    typed = _proto.ModelInferResponse(model_name="m")
    typed.outputs.add(name="t", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"typed")
    marked = _proto.ModelInferResponse(model_name="m")
    out = marked.outputs.add(name="t", datatype="BYTES", shape=[1])
    set_parameters(out.parameters, {"content_type": "str"})
    marked.raw_output_contents.append(b"\x02\x00\x00\x00hi")
    return [plain.SerializeToString(), typed.SerializeToString(), marked.SerializeToString(), b""]


@pytest.mark.parametrize("data", _replies())
@pytest.mark.parametrize("as_str", [False, True])
def test_the_small_reply_decoder_agrees_with_decode_response(data: bytes, as_str: bool) -> None:
    from easnb.inference import decode_response
    from easnb.streaming import Reader

    mine, theirs = Reader("triton", "m", False, as_str).small(data), decode_response(data, bytes_as_str=as_str)
    assert mine.to_dict() == theirs.to_dict() and mine.datatypes == theirs.datatypes
    assert {n: a.dtype for n, a in mine.items()} == {n: a.dtype for n, a in theirs.items()}


def test_a_garbage_reply_on_a_shared_stream_fails_every_waiter_at_once() -> None:
    def answer(data: bytes) -> Iterator[bytes]:
        yield encode_stream_response(b"\x0a\xff")  # a ModelStreamInferResponse around a corrupt ModelInferResponse
        time.sleep(5)

    server, endpoint = serve(answer)
    try:
        with easnb.connect(endpoint) as conn, conn.open_stream("m", flavour="triton") as shared:
            mine = shared.submit(INPUTS, first_response_timeout=4)
            started = time.monotonic()
            with pytest.raises(easnb.ServerError, match="no valid ModelInferResponse"):
                mine.collect()  # was: the reader thread died with protobuf's traceback and this waited 4 s
            assert time.monotonic() - started < 2
            assert not any(t.name == "easnb-stream-reader" for t in threading.enumerate())
    finally:
        server.stop(None)


def test_text_output_that_is_not_text_is_a_clear_error() -> None:
    def answer(data: bytes) -> Iterator[bytes]:
        r = _proto.ModelInferResponse(model_name="m")
        set_parameters(r.parameters, {"triton_final_response": True})
        r.outputs.add(name="text_output", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.5)
        yield encode_stream_response(r.SerializeToString())

    from easnb.generate import Generation

    server, endpoint = serve(answer)
    try:
        with easnb.connect(endpoint) as conn:
            g = Generation(conn.stream("m", INPUTS, flavour="triton", bytes_as_str=True))
            with pytest.raises(easnb.TensorError, match="text_output as FP32"):
                g.finish()  # was: the float's bytes printed as text ('\x00\x00\ufffd?')
            assert g.pieces == []
    finally:
        server.stop(None)


def test_a_server_of_the_other_flavour_is_named_not_read_as_garbage(conn: easnb.Connection) -> None:
    from easnb.generate import build_inputs

    inputs = build_inputs(conn.cached_model_metadata("textgen"), "a b c", {})
    with pytest.raises(easnb.ServerError, match="Triton's ModelStreamInferResponses, not MLServer's") as caught:
        conn.stream("textgen", inputs, flavour="mlserver").collect()  # was: five empty results, garbage versions
    assert "flavour='triton'" in caught.value.hint

    def mlserver(data: bytes) -> Iterator[bytes]:
        r = _proto.ModelInferResponse(model_name="m", model_version="1", id="x")
        r.outputs.add(name="text_output", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"a")
        yield r.SerializeToString()

    server, endpoint = serve(mlserver)
    try:
        with easnb.connect(endpoint) as other, pytest.raises(easnb.ServerError) as caught:
            other.stream("m", INPUTS, flavour="triton").collect()
        assert "flavour='mlserver'" in caught.value.hint
        with easnb.connect(endpoint) as other:
            assert [r["text_output"][0] for r in other.stream("m", INPUTS, flavour="mlserver")] == [b"a"]
    finally:
        server.stop(None)


def test_a_call_left_open_after_the_final_response_is_still_cancelled() -> None:
    cancelled = threading.Event()

    def handle(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        next(requests)
        context.add_callback(cancelled.set)  # runs when the call ends: here only by the client's cancel
        yield encode_stream_response(reply("r", b"done", final=True))
        while context.is_active():  # the final response sent, the call never ended
            time.sleep(0.05)

    server, endpoint = stream_server(handle)
    try:
        with easnb.connect(endpoint) as conn:
            stream = conn.stream("m", INPUTS, flavour="triton", between_responses_timeout=0.5)
            assert [r["text_output"][0] for r in stream] == [b"done"] and stream.finished
            assert cancelled.wait(5)  # the watchdog still cancels the call the server left open
            watchdogs = [t for t in threading.enumerate() if t.name == "easnb-stream-watchdog"]
            assert watchdogs  # it waits a little for the next stream, then ends with nothing to watch
            watchdogs[0].join(LINGER + 2)
            assert not watchdogs[0].is_alive()
    finally:
        server.stop(None)


@pytest.mark.parametrize(("datatype", "field", "values"), [("BYTES", "bytes_contents", [b"abc"]),
                                                           ("FP32", "fp32_contents", [float("nan")]),
                                                           ("FP32", "fp32_contents", [3.0]),
                                                           ("INT64", "int64_contents", [-5])])
def test_a_token_count_that_is_not_a_count_is_a_clear_error(datatype: str, field: str, values: list) -> None:
    def answer(data: bytes) -> Iterator[bytes]:
        r = _proto.ModelInferResponse(model_name="m")
        set_parameters(r.parameters, {"triton_final_response": True})
        r.outputs.add(name="text_output", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"hi")
        getattr(r.outputs.add(name="num_output_tokens", datatype=datatype, shape=[1]).contents, field).extend(values)
        yield encode_stream_response(r.SerializeToString())

    from easnb.generate import Generation

    server, endpoint = serve(answer)
    try:
        with easnb.connect(endpoint) as conn:
            g = Generation(conn.stream("m", INPUTS, flavour="triton", bytes_as_str=True))
            with pytest.raises(easnb.TensorError, match=f"num_output_tokens as {datatype}"):
                g.finish()  # was: ValueError from int() (text, NaN), or a count of -5 tokens
    finally:
        server.stop(None)


class _Limited:
    """A stream as the watchdog sees it (``easnb.stream_watchdog.Watched``), with one limit from now."""

    def __init__(self, limit: float, broken: bool = False) -> None:
        self.since, self.limit, self.broken, self.expired = time.perf_counter(), limit, broken, threading.Event()

    def idle_limits(self) -> tuple[float | None, float | None]:
        return self.limit, None

    def idle_limit(self) -> tuple[float | None, str, float]:
        if self.broken and time.perf_counter() > self.since + 0.05:
            raise RuntimeError("a fault in a stream's own code")
        return self.limit, "first_response_timeout", self.since

    def watched(self) -> bool:
        return not self.expired.is_set()

    def idle_expired(self, name: str, limit: float) -> None:
        self.expired.set()


def test_a_stream_whose_watch_fails_does_not_end_the_watch_of_the_others(caplog: pytest.LogCaptureFixture) -> None:
    """The connection's watchdog thread watches every stream of the connection: one that raises when looked at is
    dropped (a warning names the exception's type only), and the others' limits still end them."""
    from easnb.stream_watchdog import Watchdog

    watchdog = Watchdog()
    broken, later = _Limited(0.1, broken=True), _Limited(0.4)
    watchdog.watch(broken)
    watchdog.watch(later)
    try:
        assert later.expired.wait(5) and not broken.expired.is_set()
        assert "stopped watching a stream's idle limits: RuntimeError" in caplog.text and "fault" not in caplog.text
    finally:
        watchdog.close()


def test_a_stream_watched_twice_is_looked_at_by_one_chain_of_looks() -> None:
    """A shared stream is watched again when a request's limit passes before the planned look: the two plans merge at
    the next look, so a stream never has looks multiplying (each look plans the next)."""
    from easnb.stream_watchdog import Watchdog

    class Busy(_Limited):  # a response keeps arriving: its limit never passes, so it is looked at again and again
        def idle_limit(self) -> tuple[float | None, str, float]:
            return self.limit, "between_responses_timeout", time.perf_counter()

    watchdog, stream = Watchdog(), Busy(0.05)
    try:
        for _ in range(3):
            watchdog.watch(stream)
        time.sleep(0.3)
        with watchdog._lock:
            assert len(watchdog._due) == 1 and not stream.expired.is_set()
    finally:
        watchdog.close()
