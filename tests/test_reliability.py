"""What an attacker and a fault injector found (round two): each case failed before its fix."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest

import easnb
import easnb.aio
from easnb import _proto, errors, wire
from easnb.batch import BatchError, BatchFailure
from easnb.demo import DemoServer, Gateway
from easnb.demo.models import Model
from easnb.demo.server import V2Service, v2_handler
from easnb.inference import decode_response
from easnb.results import ModelMetadata, TensorMetadata
from easnb.tensors import Tensor, encode_tensor

from .conftest import TOKEN, DemoProcess, eventually, free_port
from .netparts import serve

pytestmark = pytest.mark.core


def rendered(error: BaseException) -> str:
    """Every way a traceback with local variables is rendered: pytest -l, %xmode Verbose, capture_locals."""
    text = "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())
    try:
        from IPython.core.ultratb import VerboseTB

        try:
            verbose = VerboseTB(theme_name="nocolor")
        except TypeError:  # IPython before 9
            verbose = VerboseTB(color_scheme="NoColor")
        text += verbose.text(type(error), error, error.__traceback__)
    except ImportError:  # pragma: no cover - IPython comes with the notebooks extra
        pass
    return text


# -- 1. no token in tracebacks with local variables ------------------------------------------


def _connect(demo: DemoServer, what: str) -> easnb.Connection:
    # the token is a local here only, so the test's own frame (on the traceback) never holds it
    return easnb.connect(demo.endpoint, token=TOKEN + "-wrong" if what == "wrong token" else TOKEN, headers={"x-request-id": "r1"})


@pytest.mark.parametrize("what", ["wrong token", "not found"])
def test_tracebacks_with_locals_never_show_the_token(demo: DemoServer, what: str) -> None:
    conn = _connect(demo, what)
    try:
        conn.model_metadata("irs")
    except easnb.EasnbError as exc:
        error = exc
    conn.close()
    text = rendered(error)
    assert "_metadata" in text or "self" in text  # locals were rendered
    assert TOKEN not in text
    assert error.__context__ is None and error.__cause__ is None  # the raw grpc.RpcError is gone


BAD_TOKEN = "unsendable token-4f2a"


def test_half_built_connections_have_a_repr() -> None:
    for make in (easnb.Connection, easnb.aio.AsyncConnection, easnb.connect, easnb.aio.connect):
        for endpoint, token in (("http://bad host/", TOKEN), ("localhost:1", BAD_TOKEN)):
            try:
                make(endpoint, token)
            except easnb.EasnbError as exc:
                error = exc.with_traceback(exc.__traceback__.tb_next)  # from easnb's frames down, not this test's
            for frame, _ in traceback.walk_tb(error.__traceback__):
                for value in frame.f_locals.values():
                    repr(value)  # must not raise
            text = rendered(error)
            assert BAD_TOKEN not in text and TOKEN not in text, (make, endpoint)
    half = easnb.Connection.__new__(easnb.Connection)
    assert "not opened" in repr(half)
    half.close()


# -- 2. the demo cannot be frozen by calls that never send a message ---------------------------


def test_header_only_calls_cannot_freeze_the_demo() -> None:
    with DemoServer(token=TOKEN, max_workers=8) as server:
        channel = grpc.insecure_channel(server.endpoint)
        never = threading.Event()

        def no_messages():  # type: ignore[no-untyped-def]
            never.wait(30)
            yield b""

        stuck = channel.stream_unary("/inference.GRPCInferenceService/ServerLive")
        calls = [stuck.future(no_messages(), timeout=20) for _ in range(40)]  # no token, headers only
        try:
            # every header-only call has reached the demo and been refused at its headers, while the
            # clients still hold their request streams open
            eventually(lambda: all(c.done() for c in calls))
            with easnb.connect(server.endpoint, token=TOKEN, timeout=3) as conn:
                assert conn.live() and conn.model_metadata("iris").name == "iris"
            assert all(c.exception(timeout=5).code() == grpc.StatusCode.UNAUTHENTICATED for c in calls)
        finally:
            never.set()
            channel.close()


# -- 3. tokens off the command line; a gateway with its own backend token ---------------------


def test_gateway_authenticates_to_a_backend_with_its_own_token() -> None:
    with DemoServer(token="backend-secret") as backend:
        with Gateway(backend.endpoint, token="front-token", backend_token="backend-secret") as gw:
            with easnb.connect(gw.endpoint, token="front-token") as conn:
                assert conn.model_metadata("iris").name == "iris"
        with Gateway(backend.endpoint, token="front-token") as gw:  # no backend token: the backend refuses
            with easnb.connect(gw.endpoint, token="front-token") as conn:
                with pytest.raises(easnb.AuthenticationError) as info:
                    conn.live()
            assert "behind the easnb gateway" in info.value.message and "--backend-token" in info.value.hint
            with easnb.connect(gw.endpoint, token="wrong") as conn:
                with pytest.raises(easnb.AuthenticationError) as info:
                    conn.live()
            assert "easnb gateway refused" in info.value.message and "Bearer" in info.value.hint


def test_gateway_command_reads_tokens_from_the_environment() -> None:
    with DemoServer(token="backend-secret") as backend:
        port = free_port()
        env = {**os.environ, "EASNB_TOKEN": "front-secret-9", "EASNB_BACKEND_TOKEN": "backend-secret"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "easnb", "gateway", "--port", str(port), "--backend", backend.endpoint],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        try:
            banner = [proc.stdout.readline() for _ in range(4)]  # type: ignore[union-attr]
            argv = open(f"/proc/{proc.pid}/cmdline", "rb").read().decode()
            assert "front-secret-9" not in argv + "".join(banner) and "backend-secret" not in argv + "".join(banner)
            with easnb.connect(f"127.0.0.1:{port}", token="front-secret-9") as conn:
                assert conn.ready()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=15)


# -- 4, 5. infer_frame keeps every good row and behaves at the edges ---------------------------


class Disagreeing(V2Service):
    """Echoes ``x``; batches starting at chosen rows answer differently."""

    def __init__(self, how: str, bad_rows: set[int]) -> None:
        super().__init__({"m": _echo_model()})
        self.how, self.bad_rows = how, bad_rows

    def model_infer(self, data: bytes) -> bytes:
        from easnb.inference import decode_request

        request, raws = decode_request(data)
        x = np.frombuffer(raws[0], np.float32).reshape(tuple(request.inputs[0].shape))
        outputs: dict[str, Any] = {"y": Tensor(x, "FP32")}
        if int(x[0, 0]) in self.bad_rows:
            if self.how == "name":
                outputs = {"z": Tensor(x, "FP32")}
            elif self.how == "width":
                outputs = {"y": Tensor(np.hstack([x, x]), "FP32")}
            elif self.how == "extra":
                outputs["w"] = Tensor(x, "FP32")
            elif self.how == "datatype":
                outputs = {"y": Tensor(x.astype(np.float64), "FP64")}
            elif self.how == "rows":
                outputs = {"y": Tensor(x[:-1], "FP32")}
            elif self.how == "rows and width":
                outputs = {"y": Tensor(np.hstack([x, x])[:-1], "FP32")}
        reply = _proto.ModelInferResponse(model_name="m")
        buffers = [encode_tensor(reply.outputs.add(), n, t)[0] for n, t in outputs.items()]
        return wire.join(reply.SerializeToString(), wire.RAW_OUTPUT_FIELD, buffers)


def _echo_model(shape: tuple[int, ...] = (-1, 2)) -> Model:
    meta = ModelMetadata("m", ("1",), "test", (TensorMetadata("x", "FP32", shape),), (TensorMetadata("y", "FP32", shape),))
    return Model(meta, lambda x, types: {"y": ("FP32", x["x"])})


@pytest.mark.parametrize(
    ("how", "said"),
    [("name", "differ from the first batch"), ("width", "rows of shape [4], not [2]"), ("extra", "differ from the first batch"),
     ("datatype", "is FP64, not FP32"), ("rows", "{'y': (9,)} rows for a batch of 10")],
)
def test_batches_that_disagree_fail_alone_and_keep_every_good_row(how: str, said: str) -> None:
    server, port = serve([v2_handler(Disagreeing(how, bad_rows={30, 70}))])
    frame = pd.DataFrame({"x_0": np.arange(100, dtype=np.float32), "x_1": 0.0})
    try:
        with easnb.connect(f"127.0.0.1:{port}") as conn:
            with pytest.raises(BatchError) as info:
                conn.infer_frame("m", frame, batch_size=10, concurrency=1, progress=False)
    finally:
        server.stop(None)
    error = info.value
    assert [(f.start, f.stop) for f in error.failures] == [(30, 40), (70, 80)]
    assert all(isinstance(f.error, easnb.TensorError) and said in f.error.message for f in error.failures)
    assert len(error.partial) == 80 and error.partial["y_0"].dtype == np.float32
    np.testing.assert_array_equal(error.partial["y_0"].to_numpy(), frame["x_0"].drop(range(30, 40)).drop(range(70, 80)).to_numpy())


def test_a_wrong_first_batch_does_not_set_what_the_others_must_return() -> None:
    server, port = serve([v2_handler(Disagreeing("rows and width", bad_rows={0}))])
    frame = pd.DataFrame({"x_0": np.arange(100, dtype=np.float32), "x_1": 0.0})
    try:
        with easnb.connect(f"127.0.0.1:{port}") as conn:
            kept = conn.infer_frame("m", frame, batch_size=10, concurrency=1, progress=False, errors="keep")
    finally:
        server.stop(None)
    assert kept["error"].notna().sum() == 10 and "rows for a batch of 10" in kept["error"].iloc[0]
    assert list(kept.columns) == ["y_0", "y_1", "error"] and kept["y_0"].iloc[10:].tolist() == list(range(10, 100))


class Counting(V2Service):
    def __init__(self, models: dict[str, Model], answer: str = "ok") -> None:
        super().__init__(models)
        self.calls: list[tuple[int, dict[str, Any]]] = []
        self.answer = answer

    def model_infer(self, data: bytes) -> bytes:
        from easnb.inference import decode_request
        from easnb.parameters import to_dict

        request, raws = decode_request(data)
        self.calls.append((request.inputs[0].shape[0], to_dict(request.parameters)))
        if self.answer == "slow":
            time.sleep(0.6)
        return super().model_infer(data)


def test_infer_frame_edges(recording_server) -> None:  # type: ignore[no-untyped-def]
    service = Counting({"m": _echo_model((1, 2)), "free": _echo_model(), "slow": _echo_model()}, answer="ok")
    server, port = serve([v2_handler(service)])
    frame = pd.DataFrame({"x_0": np.arange(6, dtype=np.float32), "x_1": 1.0})
    try:
        conn = easnb.connect(f"127.0.0.1:{port}", timeout=5)
        # a fixed batch dimension [1, 2]: rows go one by one
        scored = conn.infer_frame("m", frame, batch_size=100, progress=False)
        assert len(scored) == 6 and [n for n, _ in service.calls] == [1] * 6
        # parameters go with every batch
        service.calls.clear()
        conn.infer_frame("free", frame, batch_size=4, progress=False, parameters={"temperature": 0.5})
        assert [p for _, p in service.calls] == [{"temperature": 0.5}] * 2
        # errors="keep" always has an error column
        kept = conn.infer_frame("free", frame, progress=False, errors="keep")
        assert "error" in kept and kept["error"].isna().all()
        conn.close()
        with pytest.raises(easnb.EasnbError, match="closed"):
            conn.infer_frame("free", frame, progress=False)
    finally:
        server.stop(None)


def test_infer_frame_sends_headers(recording_server) -> None:  # type: ignore[no-untyped-def]
    endpoint, recorder = recording_server
    with easnb.connect(endpoint) as conn:
        conn.infer_frame("echo", pd.DataFrame({"a": [1.0, 2.0]}), progress=False, headers={"x-request-id": "frame"})
    assert [md.get("x-request-id") for m, md in recorder.calls if m.endswith("ModelInfer")] == ["frame"]


def test_timed_out_batches_are_not_rerun_unless_asked() -> None:
    service = Counting({"slow": _echo_model()}, answer="slow")
    server, port = serve([v2_handler(service)])
    frame = pd.DataFrame({"x_0": np.zeros(2, np.float32), "x_1": 0.0})
    try:
        with easnb.connect(f"127.0.0.1:{port}") as conn:
            with pytest.raises(BatchError):
                conn.infer_frame("slow", frame, batch_size=2, timeout=0.2, progress=False)
            eventually(lambda: len(service.calls) == 1)  # at most once, by default (a retry would be a second)
            service.calls.clear()
            with pytest.raises(BatchError):
                conn.infer_frame("slow", frame, batch_size=2, timeout=0.2, progress=False, retry_deadline=True, retries=2)
            eventually(lambda: len(service.calls) == 3)  # the first send and both retries reach the server
            # timeout=None means no deadline, as everywhere else
            assert len(conn.infer_frame("slow", frame, batch_size=2, timeout=None, progress=False)) == 2
    finally:
        server.stop(None)


def test_a_killed_server_stops_the_run_promptly() -> None:
    process = DemoProcess(free_port()).start()
    frame = pd.DataFrame({"a": np.arange(4000, dtype=np.float64)})
    try:
        with easnb.connect(process.endpoint, token=DemoProcess.TOKEN, timeout=3) as conn:
            conn.model_metadata("echo")
            threading.Timer(0.3, process.kill).start()
            started = time.monotonic()
            with pytest.raises(BatchError) as info:
                conn.infer_frame("echo", frame, batch_size=1, concurrency=4, progress=False)
            took = time.monotonic() - started
    finally:
        process.kill()
    assert took < 3.0, took
    assert len(info.value.partial) + sum(f.stop - f.start for f in info.value.failures) == 4000
    assert any("Not sent" in f.error.message for f in info.value.failures)


def test_columns_feed_a_model_that_declares_no_inputs(conn: easnb.Connection) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": ["x", "y"]})
    scored = conn.infer_frame("echo", frame, columns={"predict": ["a", "b"]}, progress=False)
    assert scored.columns.tolist() == ["predict_0", "predict_1"] and scored["predict_1"].tolist() == [3.0, 4.0]


# -- 6. pickling ------------------------------------------------------------------------------


def test_connections_refuse_to_pickle_with_a_clear_error() -> None:
    try:
        import cloudpickle  # as Dask pickles closures

        more = [cloudpickle.dumps]
    except ImportError:  # the dask extra is not installed: plain pickle still must refuse
        more = []
    sync = easnb.connect("127.0.0.1:1", token=TOKEN)
    asynchronous = easnb.aio.connect("127.0.0.1:1", token=TOKEN)
    for value in (sync, asynchronous, lambda: asynchronous.live()):
        for dumps in [pickle.dumps, *more] if not callable(value) else more:
            with pytest.raises(easnb.EasnbError, match="cannot be pickled|never pickled") as info:
                dumps(value)
            assert "easnb.dask" in info.value.hint or "EASNB_TOKEN" in info.value.hint
    sync.close()


def every_error() -> list[easnb.EasnbError]:
    made = []
    for cls in [errors.EasnbError, *_subclasses(errors.EasnbError)]:
        if cls is BatchError:
            continue
        error = cls("message", hint="hint", code=grpc.StatusCode.INTERNAL, details="details")
        error.status_details = (_proto.HelloRequest(name="x"),)
        made.append(error)
    failure = BatchFailure(0, 2, easnb.UnavailableError("gone", code=grpc.StatusCode.UNAVAILABLE))
    made.append(BatchError(pd.DataFrame({"y": [1.0]}), [failure], 3))
    return made


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def test_every_error_round_trips_through_pickle() -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    assert len(every_error()) >= 14
    for error in every_error():
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error)
        assert (back.code, back.details, back.hint) == (error.code, error.details, error.hint)
    # spawn: a fork of this process (the suite's in-process servers inside gRPC) crashed the child now and then
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        with pytest.raises(BatchError) as info:
            pool.submit(_raise_batch_error).result(timeout=60)
    assert info.value.partial["y"].tolist() == [1.0] and info.value.failures[0].stop == 2


def _raise_batch_error() -> None:
    raise every_error()[-1]


# -- 8, 9. lossy conversions and malformed replies -------------------------------------------


def test_nullable_and_arrow_columns_without_missing_values_convert(conn: easnb.Connection) -> None:
    import importlib.util

    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    arrow = ["float64[pyarrow]"] if importlib.util.find_spec("pyarrow") else []  # Arrow dtypes need pyarrow
    for dtype in ("Float64", "Float32", *arrow):
        frame = pd.DataFrame({c: pd.array([5.1, 4.9], dtype=dtype) for c in features})
        assert conn.infer("iris", frame)["probabilities"].shape == (2, 3)
    frame = pd.DataFrame({"INPUT0": [[1] * 16], "INPUT1": [[2] * 16]})
    assert conn.infer("add_sub", frame)["OUTPUT0"].tolist() == [[3] * 16]


def test_missing_values_into_integer_or_boolean_inputs_are_named() -> None:
    from easnb.frames import frame_to_inputs

    meta = ModelMetadata("m", (), "", (TensorMetadata("x", "INT64", (-1, 2)),), ())
    frame = pd.DataFrame({"x_0": pd.array([1, None], dtype="Int64"), "x_1": pd.array([1, 2], dtype="Int64")})
    with pytest.raises(easnb.TensorError, match="'x_0' has 1 missing"):
        frame_to_inputs(frame, meta, token=None)
    with pytest.raises(easnb.TensorError, match="missing"):  # a float column with NaN into INT64
        frame_to_inputs(pd.DataFrame({"x_0": [1.0, np.nan], "x_1": [1.0, 2.0]}).astype("Float64"), meta, token=None)
    no_inputs = ModelMetadata("m", (), "", (), ())
    with pytest.raises(easnb.TensorError, match="missing"):
        frame_to_inputs(pd.DataFrame({"flag": pd.array([True, None], dtype="boolean")}), no_inputs, token=None)
    assert frame_to_inputs(pd.DataFrame({"flag": pd.array([True, False], dtype="boolean")}), no_inputs, token=None)["flag"].data.dtype == bool
    ints = frame_to_inputs(pd.DataFrame({"n": pd.array([1, 2], dtype="Int64")}), no_inputs, token=None)["n"].data
    assert ints.dtype == np.int64


def test_two_outputs_with_one_name_are_a_tensor_error() -> None:
    reply = _proto.ModelInferResponse(model_name="m")
    for _ in range(2):
        encode_tensor(reply.outputs.add(), "y", np.zeros(1, np.float32), raw=False)
    with pytest.raises(easnb.TensorError, match="two outputs called 'y'"):
        decode_response(reply.SerializeToString())


# -- 10. launch binds loopback whatever the script asks for --------------------------------


AIO_SERVER = '''
import asyncio, grpc, grpc.aio
async def main():
    server = grpc.aio.server()
    server.add_insecure_port("[::]:0")
    await server.start()
    print("Server started", flush=True)
    await asyncio.sleep(30)
asyncio.run(main())
'''

SECURE_SERVER = '''
import grpc, time
from concurrent import futures
server = grpc.server(futures.ThreadPoolExecutor(2))
server.add_secure_port("[::]:0", grpc.local_server_credentials())
server.start()
print("Server started", flush=True)
time.sleep(30)
'''


@pytest.mark.parametrize("script", [AIO_SERVER, SECURE_SERVER], ids=["aio", "secure"])
def test_launch_redirects_every_kind_of_port(script: str, tmp_path: Any) -> None:
    (tmp_path / "server.py").write_text(script)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "easnb.demo.launch", "server.py", f"127.0.0.1:{port}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(2)]  # type: ignore[union-attr]
        assert "listening on 127.0.0.1" in lines[0] and "Server started" in lines[1], lines
        ss = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
        mine = [line for line in ss.splitlines() if f"pid={proc.pid}," in line]
        assert mine and all("127.0.0.1" in line and f":{port} " in line for line in mine), mine
    finally:
        proc.kill()
        proc.wait()
