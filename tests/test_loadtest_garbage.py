"""load_test against servers that answer with bytes easnb cannot read: each such reply is an error of its
own kind (UNREADABLE_REPLY), never a success, in code, on the command line and in the Load tab; a mix of
good and garbage replies counts each as what it is. The check costs a parse at most (bench/load.py)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import easnb
from easnb import _proto, wire
from easnb.demo.models import iris, textgen
from easnb.demo.server import SERVER_OPTIONS, V2Service, greeter_handler, v2_handler
from easnb.demo.streams import stream_infer
from easnb.history import History
from easnb.inference import decode_response
from easnb.load_tab import LoadTab
from easnb.tensors import Tensor, encode_tensor

from .test_cli_perf import run

GARBAGE = b"\xff\xff\xff\xff not a protobuf"
ROW = {"features": np.array([[5.1, 3.5, 1.4, 0.2]], np.float32)}
GOOD_S = 0.004  # a good reply takes this long; garbage comes at once
UNREADABLE = "UNREADABLE_REPLY"


class Liar:
    """The demo's iris and textgen behind V2, with ModelInfer, ModelStreamInfer and SayHello answering as
    ``mode`` says: "good", "garbage", or "mix" (every second call garbage); "empty" streams an empty reply."""

    def __init__(self) -> None:
        self.service = V2Service({"iris": iris(), "textgen": textgen()})
        self.mode = "good"
        self.calls = itertools.count()
        self.lock = threading.Lock()
        self.streams = stream_infer(self.service)

    def garbage(self) -> bool:
        with self.lock:
            n = next(self.calls)
        return self.mode == "garbage" or (self.mode == "mix" and n % 2 == 1)

    def infer(self, data: bytes, context: grpc.ServicerContext) -> bytes:
        if self.mode == "leak":  # the token it was sent, in an output's name, in a reply easnb cannot read
            sent = dict(context.invocation_metadata()).get("authorization", "")
            reply = _proto.ModelInferResponse()
            reply.outputs.add(name=f"y {sent}", datatype="FP99", shape=[1])
            return reply.SerializeToString()
        if self.garbage():
            return GARBAGE
        time.sleep(GOOD_S)
        return self.service.model_infer(data)

    def hello(self, data: bytes, context: grpc.ServicerContext) -> bytes:
        return GARBAGE if self.garbage() else _proto.HelloResponse(message="Hello").SerializeToString()

    def stream(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        if not self.garbage() and self.mode != "empty":
            yield from self.streams.stream_stream(requests, context)
            return
        for _ in requests:
            yield b"" if self.mode == "empty" else b"\xff\xff\xff"
            return


@pytest.fixture()
def liar() -> Iterator[tuple[str, Liar]]:
    h = Liar()
    v2 = grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(h.infer),
        "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(h.stream),
    })
    hello = grpc.method_handlers_generic_handler("helloworld.GreeterService",
                                                 {"SayHello": grpc.unary_unary_rpc_method_handler(h.hello)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=SERVER_OPTIONS,
                         handlers=[v2, hello, v2_handler(h.service), greeter_handler()])  # the first that has a method serves it
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", h
    server.stop(None).wait()


SWEEPS = [{"concurrency": [1]}, {"concurrency": [12]}, {"rate": [150]}]  # threads, the aio loop closed and open


@pytest.mark.parametrize("sweep", SWEEPS, ids=["threads", "aio", "open"])
def test_garbage_is_counted_as_errors_not_successes(liar: tuple[str, Liar], sweep: dict[str, Any]) -> None:
    endpoint, h = liar
    h.mode = "garbage"
    with easnb.connect(endpoint, timeout=5) as conn:
        report = conn.load_test("iris", ROW, seconds=0.5, warmup=0.0, stop_error_rate=None, progress=False, **sweep)
    level = report.levels[0]
    assert level.requests >= 10 and level.errors == {UNREADABLE: level.requests}, level
    assert level.infer_per_s == 0 and np.isnan(level.p50_ms)
    assert "not a valid ModelInferResponse" in level.error_messages[UNREADABLE]
    page = report._repr_html_()
    assert "every request failed, so nothing was measured" in page and "replies easnb cannot read" in page
    assert "<svg" not in page and level.client_limited == ""  # no chart of nothing, nor a verdict on it
    kept = json.loads(report.to_json())
    assert kept["levels"][0]["errors"] == level.requests and kept["notes"][0].startswith(f"{report.mode} ")


@pytest.mark.parametrize("sweep", SWEEPS, ids=["threads", "aio", "open"])
def test_a_mix_counts_each_reply_as_what_it_is(liar: tuple[str, Liar], sweep: dict[str, Any]) -> None:
    endpoint, h = liar
    h.mode = "mix"
    with easnb.connect(endpoint, timeout=5) as conn:
        report = conn.load_test("iris", ROW, seconds=0.6, warmup=0.0, stop_error_rate=None, progress=False, **sweep)
    level = report.levels[0]
    bad = level.errors.get(UNREADABLE, 0)
    assert set(level.errors) == {UNREADABLE} and level.requests >= 20, level
    assert abs(bad - level.requests / 2) <= 12, (bad, level.requests)  # every second reply; 12 callers at most in flight
    # the good ones, and only they (the open loop counts requests due in the window, a few answered after it)
    assert abs(round(level.infer_per_s * level.seconds) - (level.requests - bad)) <= (0 if "concurrency" in sweep else 3)
    assert level.p50_ms >= GOOD_S * 1000  # latency of good replies only (garbage comes at once)
    assert f"{bad} of {level.requests} requests failed" in report._repr_html_()


def test_any_method_whose_reply_does_not_parse(liar: tuple[str, Liar]) -> None:
    endpoint, h = liar
    h.mode = "mix"
    with easnb.connect(endpoint, timeout=5) as conn:
        greeter = conn.service(Path(__file__).parents[1] / "protos" / "helloworld.proto", "helloworld.GreeterService")
        level = conn.load_test(greeter.SayHello, {"name": "x"}, concurrency=[2], seconds=0.4, warmup=0.0,
                               stop_error_rate=None, progress=False).levels[0]
    assert set(level.errors) == {UNREADABLE} and 0 < level.errors[UNREADABLE] < level.requests, level
    assert "not a valid HelloResponse" in level.error_messages[UNREADABLE]


@pytest.mark.parametrize(("mode", "kind", "says"), [
    ("garbage", UNREADABLE, "not a valid ModelStreamInferResponse"),
    ("empty", "NO_TEXT_OUTPUT", "without any text_output"),
])
def test_streamed_garbage_is_counted_as_errors(liar: tuple[str, Liar], mode: str, kind: str, says: str) -> None:
    endpoint, h = liar
    h.mode = mode
    with easnb.connect(endpoint, timeout=5) as conn:
        report = conn.load_test("textgen", "a b c", concurrency=[1], stream=True, seconds=0.4, warmup=0.0, max_tokens=2,
                                stop_error_rate=None, progress=False)
    level = report.levels[0]
    assert level.requests >= 5 and level.errors == {kind: level.requests} and level.infer_per_s == 0, level
    assert says in level.error_messages[kind] and np.isnan(level.stream["ttft_p50_ms"])
    assert "every request failed" in report._repr_html_()


def test_a_streamed_mix_counts_each_generation_as_what_it_is(liar: tuple[str, Liar]) -> None:
    endpoint, h = liar
    h.mode = "mix"
    with easnb.connect(endpoint, timeout=5) as conn:
        level = conn.load_test("textgen", "a b c", concurrency=[1], stream=True, seconds=0.6, warmup=0.0, max_tokens=2,
                               stop_error_rate=None, progress=False).levels[0]
    bad = level.errors.get(UNREADABLE, 0)
    assert set(level.errors) == {UNREADABLE} and abs(bad - level.requests / 2) <= 1, level
    assert round(level.infer_per_s * level.seconds) == level.requests - bad
    assert level.stream["tokens_per_request"] == 2  # the good generations only


def test_the_command_line_says_nothing_was_measured(liar: tuple[str, Liar]) -> None:
    endpoint, h = liar
    h.mode = "garbage"
    common = ("load", endpoint, "iris", "--concurrency", "1,2", "--seconds", "0.5", "--warmup", "0",
              "--inputs", json.dumps({"features": [[5.1, 3.5, 1.4, 0.2]]}))
    table, kept = run(*common, token=""), run(*common, "--json", token="")
    streamed = run("load", endpoint, "textgen", "--prompt", "a b", "--max-tokens", "2", "--concurrency", "1",
                   "--seconds", "0.3", "--warmup", "0", token="")
    assert table.returncode == 1 and "UNREADABLE_REPLY" in table.stdout, table  # stopped on the error rate
    assert "errors: concurrency 1: every request failed, so nothing was measured" in table.stdout, table.stdout
    assert "not a valid ModelInferResponse" in table.stdout and "Traceback" not in table.stderr
    report = json.loads(kept.stdout)
    assert kept.returncode == 1 and report["levels"][0]["errors_by_code"].startswith("UNREADABLE_REPLY ")
    assert "not a valid ModelInferResponse" in report["levels"][0]["error_messages"][UNREADABLE] and report["notes"]
    assert streamed.returncode == 1 and "UNREADABLE_REPLY" in streamed.stdout, streamed
    few = run("load", endpoint, "iris", "--rate", "10", "--seconds", "0.4", "--warmup", "0",
              "--inputs", json.dumps({"features": [[5.1, 3.5, 1.4, 0.2]]}), token="")
    assert "stopped" not in few.stdout and few.returncode == 1, few  # too few answers to stop on, yet nothing measured


def test_the_load_tab_says_nothing_was_measured(liar: tuple[str, Liar]) -> None:
    endpoint, h = liar
    history = History()
    with easnb.connect(endpoint, timeout=5) as conn:
        tab = LoadTab(conn, history=history)
        tab.model_field.value, tab.levels.value, tab.seconds.value, tab.warmup.value = "iris", "1", 0.4, 0.0
        h.mode = "garbage"
        tab.start(wait=True)
        garbage = (tab.output.value, tab.chart.value)
        h.mode = "mix"
        tab.start(wait=True)
        mixed = tab.output.value
    assert "every request failed, so nothing was measured" in garbage[0] and "UNREADABLE_REPLY" in garbage[0], garbage
    assert "<svg" not in garbage[1]
    assert "requests failed" in mixed and "replies easnb cannot read" in mixed and "every request" not in mixed, mixed
    # History says so too: the sweep with no success failed, the mix partly failed, with the counts by kind
    dead, mix = history[-2].status, history[-1].status
    assert dead.startswith("failed: no request succeeded at concurrency 1 (UNREADABLE_REPLY ") and "OK" not in dead, dead
    assert tab.report is not None
    level = tab.report.levels[0]
    bad = level.errors[UNREADABLE]
    assert mix.startswith(f"partly failed: {bad} of {level.requests} requests failed (UNREADABLE_REPLY {bad})"), mix
    assert history.percentiles() == {}  # neither sweep counts as a call that succeeded


def _reply(outputs: list[tuple[str, str, np.ndarray]], raw: bool) -> bytes:
    reply = _proto.ModelInferResponse(model_name="m", id="r")
    buffers = []
    for name, datatype, array in outputs:
        buffer, _ = encode_tensor(reply.outputs.add(), name, Tensor(array, datatype), raw=raw)
        buffers.append(buffer)
    return wire.join(reply.SerializeToString(), wire.RAW_OUTPUT_FIELD, buffers) if raw else reply.SerializeToString()


ARRAYS = st.sampled_from([
    ("FP32", np.arange(6, dtype=np.float32).reshape(2, 3)), ("INT64", np.arange(4, dtype=np.int64)),
    ("BYTES", np.array([b"ab", b"", b"xyz"], dtype=object)), ("BOOL", np.array([True, False])),
    ("FP16", np.zeros((1, 3), np.float16)), ("INT8", np.array([-3, 4], np.int8)),
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ARRAYS, min_size=0, max_size=3), st.booleans(), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3))
def test_a_reply_easnb_reads_is_never_counted_as_garbage(arrays: list[tuple[str, np.ndarray]], raw: bool,
                                                         flips: list[tuple[int, int]]) -> None:
    """Whatever conn.infer decodes, the check passes: first seen, and again through its remembered layout."""
    from easnb.loadcheck import infer_replies

    outputs = [(f"out{i}", datatype, array) for i, (datatype, array) in enumerate(arrays)]
    if not raw:
        outputs = [o for o in outputs if o[1] != "FP16"]  # V2 sends FP16 only raw
    data = bytearray(_reply(outputs, raw))
    for at, value in flips:
        if data:
            data[at % len(data)] = value
    check = infer_replies()
    try:
        decode_response(bytes(data))
    except easnb.EasnbError:
        return
    assert check(bytes(data)) == "" and check(bytes(data)) == ""


def test_a_remembered_layout_is_not_trusted_beyond_the_raw_contents() -> None:
    from easnb.loadcheck import infer_replies

    good = _reply([("y", "FP32", np.arange(4, dtype=np.float32))], raw=True)
    layouts: dict[int, Any] = {}
    check = infer_replies(layouts)
    assert check(good) == "" and layouts[len(good)] is not None
    other = _reply([("y", "FP32", np.full(4, 7, np.float32))], raw=True)
    assert len(other) == len(good) and check(other) == ""  # new tensor bytes: the same layout
    wrong = _reply([("y", "FP32", np.arange(4, dtype=np.float32))], raw=True).replace(b"\x1a\x01\x04", b"\x1a\x01\x05")
    assert len(wrong) == len(good) and "cannot be held in 16 bytes" in check(wrong)  # shape [5]: the head differs
    for bad, says in [(GARBAGE, "not a valid ModelInferResponse"), (good[:-3], "not a valid ModelInferResponse"),
                      (good.replace(b"FP32", b"FP33"), "FP33"),
                      (good + wire.join(b"", wire.RAW_OUTPUT_FIELD, [b"1234"]), "2 raw buffers"),
                      (_reply([("t", "BYTES", np.array([b"ab", b"cd"], dtype=object))], raw=True).replace(
                          b"\x02\x00\x00\x00cd", b"\x05\x00\x00\x00cd"), "BYTES tensor 't'")]:  # a length past the end
        assert says in check(bad), bad
        with pytest.raises(easnb.EasnbError):
            decode_response(bad)


def test_large_replies_and_huge_names() -> None:
    """A reply past wire.SMALL (scanned, not parsed whole) is learnt and its layout trusted no further than
    its raw contents; a server's huge output name does not make a huge reason."""
    from easnb.loadcheck import infer_replies

    big = np.arange(100_000, dtype=np.float32)
    good = _reply([("y", "FP32", big)], raw=True)
    layouts: dict[int, Any] = {}
    check = infer_replies(layouts)
    assert len(good) > wire.SMALL and check(good) == "" and layouts[len(good)] is not None
    assert check(_reply([("y", "FP32", big + 1)], raw=True)) == ""
    assert "cannot be held" in check(good.replace(b"FP32", b"FP64", 1))  # same length, other head: checked in full
    named = _reply([("n" * 100_000, "FP32", np.zeros(2, np.float32))], raw=True)
    problem = check(named[:-1])  # truncated: not a message
    assert "not a valid ModelInferResponse" in problem
    problem = check(named.replace(b"FP32", b"FP99"))
    assert "FP99" in problem and len(problem) < 300


def test_a_reason_never_shows_the_token(liar: tuple[str, Liar]) -> None:
    endpoint, h = liar
    token = "s3cret-load-token-0123456789"
    with easnb.connect(endpoint, token=token, timeout=5) as conn:
        h.mode = "leak"
        report = conn.load_test("iris", ROW, concurrency=[1], seconds=0.3, warmup=0.0, progress=False)
    level = report.levels[0]
    assert level.errors == {UNREADABLE: level.requests} and "FP99" in level.error_messages[UNREADABLE], level
    shown = level.error_messages[UNREADABLE] + report._repr_html_() + report.to_json() + repr(report)
    assert "***" in level.error_messages[UNREADABLE] and token not in shown

