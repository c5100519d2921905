"""conn.stream and conn.open_stream against the demo's decoupled model (Triton's semantics), and its gateway."""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

import easnb
from easnb.stream_watchdog import LINGER
from easnb.streaming import AFTER_FINAL
from easnb.demo import DemoServer, Gateway
from easnb.stream_wire import DECOUPLED_REFUSAL

from .conftest import TOKEN


def prompt(text: str, stream: bool = True, **sampling: object) -> dict[str, np.ndarray]:
    import json

    inputs = {"text_input": np.array([text.encode()], dtype=object), "stream": np.array([stream])}
    if sampling:
        inputs["sampling_parameters"] = np.array([json.dumps(sampling).encode()], dtype=object)
    return inputs


def words(results: list[easnb.InferResult]) -> list[str]:
    return [r["text_output"][0].decode() for r in results]


def wait_for(check, seconds: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_tokens_arrive_one_by_one_and_the_stream_ends_at_the_final_response(conn: easnb.Connection) -> None:
    stream = conn.stream("textgen", prompt("hello big world"), request_id="r1")
    seen = []
    for result in stream:
        seen.append(result)
        assert not stream.finished
    assert words(seen) == [" You", " said:", " hello", " big", " world."]
    assert stream.finished and not stream.cancelled and stream.responses == seen
    assert all(r.id == "r1" and r.parameters["triton_final_response"] is False for r in seen)
    assert seen[-1]["finish_reason"].tolist() == [b"stop"]
    # one arrival per message: five tokens, then the flags-only final response easnb asked for
    assert len(stream.arrivals) == 6 and stream.arrivals == sorted(stream.arrivals)
    assert 0 < stream.time_to_first_response < stream.arrivals[-1] - stream.sent_at
    with pytest.raises(easnb.EasnbError, match="read once"):
        list(stream)


def test_a_final_response_with_content_is_yielded(conn: easnb.Connection) -> None:
    results = conn.stream("textgen", prompt("not streamed", stream=False)).collect()
    assert len(results) == 1 and results[0]["text_output"].tolist() == [b"not streamed You said: not streamed."]
    assert results[0].parameters["triton_final_response"] is True


def test_a_model_that_is_not_decoupled_streams_one_response(conn: easnb.Connection) -> None:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    results = conn.stream("add_sub", {"INPUT0": a, "INPUT1": a}).collect()
    assert len(results) == 1 and results[0]["OUTPUT0"].tolist() == (2 * a).tolist()


def test_same_inputs_as_infer(conn: easnb.Connection) -> None:
    frame = pd.DataFrame([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], columns=easnb.demo.models.IRIS_FEATURES)
    streamed = conn.stream("iris", frame, outputs=["label"]).collect()[0]
    assert streamed["label"].tolist() == conn.infer("iris", frame, outputs=["label"])["label"].tolist()
    tensors = {"b": easnb.Tensor(np.array([1.5, -2.0], np.float32), "BF16"), "s": np.array(["é", "x"], dtype=object)}
    echoed = conn.stream("echo", tensors, bytes_as_str=True, parameters={"note": "x"}, headers={"x-request-id": "7"}).collect()[0]
    assert echoed.datatypes["b"] == "BF16" and echoed["b"].tolist() == [1.5, -2.0] and echoed["s"].tolist() == ["é", "x"]
    typed = conn.stream("echo", {"i": np.array([[1, 2]], np.int64)}, raw=False).collect()[0]
    assert typed["i"].tolist() == [[1, 2]]


def test_zero_responses(conn: easnb.Connection) -> None:
    stream = conn.stream("textgen", prompt("nothing", max_tokens=0))
    assert stream.collect() == [] and stream.finished and len(stream.arrivals) == 1


def test_error_inside_the_stream_keeps_its_id_and_what_came_before(conn: easnb.Connection) -> None:
    stream = conn.stream("textgen", prompt("please fail now"), request_id="bad-1")
    with pytest.raises(easnb.StreamError) as caught:
        for _ in stream:
            pass
    error = caught.value
    assert error.request_id == "bad-1" and error.final is True
    assert words(list(error.received)) == [" You", " said:"]
    assert "failed on purpose" in str(error) and "bad-1" in str(error) and error.__context__ is None
    assert isinstance(error, easnb.ServerError)


def test_the_grpc_error_header_ends_the_stream_with_a_status(conn: easnb.Connection) -> None:
    with pytest.raises(easnb.ServerError) as caught:
        conn.stream("textgen", prompt("fail here"), headers={"triton_grpc_error": "true"}, request_id="h").collect()
    assert not isinstance(caught.value, easnb.StreamError) and caught.value.code.name == "INTERNAL"
    assert words(list(caught.value.received)) == [" You", " said:"] and caught.value.request_id == "h"


def test_unary_infer_on_a_decoupled_model_is_unimplemented_as_on_triton(conn: easnb.Connection) -> None:
    with pytest.raises(easnb.UnimplementedError) as caught:
        conn.infer("textgen", prompt("hi"))
    assert caught.value.details == DECOUPLED_REFUSAL and "conn.stream" in caught.value.hint


def _slow(conn: easnb.Connection, delay_ms: int = 200, **options: object) -> easnb.streaming.Stream:
    return conn.stream("textgen", prompt("a b c d e f g h i j"), parameters={"delay_ms": delay_ms}, **options)


@pytest.mark.parametrize("how", ["break", "cancel", "ctrl-c", "exception"])
def test_cancel_reaches_the_server(demo: DemoServer, conn: easnb.Connection, how: str) -> None:
    before = demo.service.cancelled
    stream = _slow(conn)
    if how == "break":
        for _ in stream:
            break
    elif how == "cancel":
        threading.Timer(0.3, stream.cancel).start()
        assert len(stream.collect()) < 5  # ends quietly, early
    elif how == "ctrl-c":
        threading.Timer(0.3, _thread.interrupt_main).start()
        with pytest.raises(KeyboardInterrupt):
            stream.collect()
    else:
        with pytest.raises(ZeroDivisionError):
            for _ in stream:
                1 / 0
    assert stream.cancelled and not stream.finished
    assert wait_for(lambda: demo.service.cancelled > before), "the server never saw the cancellation"


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"first_response_timeout": 0.1}, "first_response_timeout=0.1"),
        ({"between_responses_timeout": 0.3, "first_response_timeout": 2}, "between_responses_timeout=0.3"),
        ({"timeout": 0.5}, "DEADLINE_EXCEEDED"),
    ],
)
def test_timeouts(conn: easnb.Connection, options: dict, says: str) -> None:
    delay = 400 if "between" in says else 200
    stream = _slow(conn, delay, **options)
    started = time.monotonic()
    with pytest.raises(easnb.DeadlineError, match=says) as caught:
        stream.collect()
    assert time.monotonic() - started < 3
    assert isinstance(caught.value.received, tuple)
    if "between" in says:
        assert len(caught.value.received) >= 1


def test_interleaved_requests_on_one_stream(demo: DemoServer, conn: easnb.Connection) -> None:
    texts = ["one two three", "four five", "six", "fail hard", "seven eight nine ten"]
    answers: dict[str, object] = {}
    with conn.open_stream("textgen", parameters=None) as shared:
        streams = {t: shared.submit(prompt(t)) for t in texts}
        assert len({s.request_id for s in streams.values()}) == len(texts)

        def read(text: str) -> None:
            try:
                answers[text] = "".join(words(streams[text].collect()))
            except easnb.StreamError as exc:
                answers[text] = exc

        threads = [threading.Thread(target=read, args=(t,)) for t in texts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        zero = shared.submit(prompt("x", max_tokens=0))  # ends only if the final marker was asked for
        assert zero.collect() == [] and zero.finished
    for text in texts:
        if "fail" in text:
            assert isinstance(answers[text], easnb.StreamError) and answers[text].request_id == streams[text].request_id
        else:
            assert answers[text] == f" You said: {text}."
    with pytest.raises(easnb.EasnbError, match="closed"):
        shared.submit(prompt("late"))


def test_a_stream_reads_even_its_first_reply_from_a_layout_an_earlier_stream_learned(conn: easnb.Connection) -> None:
    """The connection keeps the reply layouts its streams learned (per model, whatever the request id): a later
    request, plain or on a shared stream, reads every reply from them, each with its own id."""
    assert conn.stream("textgen", prompt("warm up")).collect()
    later = conn.stream("textgen", prompt("a b c"), request_id="later")
    assert later.reader.plans.known  # before its first reply
    results = later.collect()
    assert later.reader.plans.misses == 0 and [r.id for r in results] == ["later"] * 5
    assert {type(r.outputs).__name__ for r in results} == {"StreamOutputs"} and words(results)[-1] == " c."
    with conn.open_stream("textgen") as shared:
        streams = [shared.submit(prompt(f"w{i} x")) for i in range(3)]
        for i, stream in enumerate(streams):
            assert words(stream.collect()) == [" You", " said:", f" w{i}", " x."]
            assert stream.reader.plans.misses == 0 and {r.id for r in stream.responses} == {stream.request_id}


def test_open_stream_refuses_an_id_in_flight(conn: easnb.Connection) -> None:
    with conn.open_stream("textgen") as shared:
        shared.submit(prompt("a b c"), request_id="same")
        with pytest.raises(easnb.EasnbError, match="already in flight"):
            shared.submit(prompt("d"), request_id="same")


def test_closing_an_open_stream_cancels_on_the_server(demo: DemoServer, conn: easnb.Connection) -> None:
    before = demo.service.cancelled
    with conn.open_stream("textgen") as shared:
        first = shared.submit(prompt("a b c d e f g"), parameters={"delay_ms": 200})
        rest = iter(first)
        next(rest)
    assert wait_for(lambda: demo.service.cancelled > before)
    list(rest)
    assert first.cancelled and not first.finished  # was: finished, as if its final response had come


def test_unknown_model_and_closed_connection(demo: DemoServer) -> None:
    with easnb.connect(demo.endpoint, token=TOKEN) as conn:
        with pytest.raises(easnb.StreamError, match="unknown model"):
            conn.stream("nope", prompt("x")).collect()
    with pytest.raises(easnb.EasnbError, match="closed"):
        conn.stream("textgen", prompt("x"), flavour="triton")
    with pytest.raises(ValueError, match="flavour"):
        easnb.connect(demo.endpoint, token=TOKEN).stream("textgen", prompt("x"), flavour="vllm")


@pytest.fixture(scope="module")
def gateway(demo: DemoServer) -> Iterator[Gateway]:
    with Gateway(demo.endpoint, token="gw-token", backend_token=TOKEN) as gw:
        yield gw


def test_streams_pass_through_the_gateway(gateway: Gateway) -> None:
    with easnb.connect(gateway.endpoint, token="gw-token") as conn:
        stream = conn.stream("textgen", prompt("a b c d"), parameters={"delay_ms": 50})
        assert "".join(words(stream.collect())) == " You said: a b c d."
        # the tokens came through as they were made, not all at the end
        assert stream.arrivals[-1] - stream.arrivals[0] > 0.2
        with pytest.raises(easnb.StreamError) as caught:
            conn.stream("textgen", prompt("fail"), request_id="g").collect()
        assert caught.value.request_id == "g" and len(caught.value.received) == 2
    with easnb.connect(gateway.endpoint, token="wrong") as conn:
        with pytest.raises(easnb.AuthenticationError):
            conn.stream("textgen", prompt("x"), flavour="triton").collect()


@pytest.mark.parametrize(
    ("argument", "bad"),
    [("model", None), ("model", 1.5), ("inputs", "text"), ("version", 1.5), ("request_id", b"x"), ("timeout", "5"),
     ("first_response_timeout", -1), ("between_responses_timeout", "1"), ("headers", "a:b"), ("raw", "yes"),
     ("parameters", [("a", 1)]), ("bytes_as_str", 2)],
)
def test_a_wrong_argument_is_named(conn: easnb.Connection, argument: str, bad: object) -> None:
    call = {"model": "textgen", "inputs": prompt("x"), argument: bad}
    with pytest.raises(easnb.EasnbError) as caught:
        conn.stream(**call)
    assert caught.value.argument == argument
    with conn.open_stream("textgen") as shared:
        if argument not in ("model", "timeout", "headers"):
            with pytest.raises(easnb.EasnbError):
                shared.submit(**{k: v for k, v in call.items() if k != "model"})


@pytest.mark.parametrize("idle", [{}, {"between_responses_timeout": None, "first_response_timeout": 5}])
def test_no_thread_outlives_its_stream(conn: easnb.Connection, idle: dict) -> None:
    # a stream read to its final response is watched until its call ends, at most AFTER_FINAL seconds more
    conn.generate("textgen", "warm", max_tokens=2).finish()
    before = {t.ident for t in threading.enumerate() if t.name != "easnb-stream-watchdog"}
    watchdogs = set()
    for _ in range(3):
        conn.generate("textgen", "hi", max_tokens=3, **idle).finish()
        for _ in conn.generate("textgen", "a b c d e f", max_tokens=20, **idle):
            break
        watchdogs |= {t.ident for t in threading.enumerate() if t.name == "easnb-stream-watchdog"}
    assert len(watchdogs) == 1  # one thread watches every stream of the connection: not one a stream
    deadline = time.monotonic() + AFTER_FINAL + LINGER + 3  # it ends a little after the last stream, not a timeout later
    while time.monotonic() < deadline and any(t.name == "easnb-stream-watchdog" for t in threading.enumerate()):
        time.sleep(0.05)
    assert [t.name for t in threading.enumerate() if t.ident not in before and t.name.startswith("easnb-stream")] == []
    assert conn.generate("textgen", "again", max_tokens=3).finish().finished
