import logging
import time

import numpy as np
import pytest

import easnb
from easnb.connection import clean_token
from easnb.demo import DemoServer

from .conftest import TOKEN

pytestmark = pytest.mark.core


def test_v2_calls(conn: easnb.Connection) -> None:
    assert conn.live() is True
    assert conn.ready() is True
    assert conn.model_ready("iris") is True
    assert conn.model_ready("iris", "1") is True
    meta = conn.server_metadata()
    assert (meta.name, meta.version) == ("easnb-demo", easnb.__version__)
    model = conn.model_metadata("add_sub")
    assert [(t.name, t.datatype, t.shape) for t in model.inputs] == [
        ("INPUT0", "INT32", (-1, 16)),
        ("INPUT1", "INT32", (-1, 16)),
    ]
    assert model.versions == ("1",) and "add_sub" in repr(model)


def test_infer_add_sub(conn: easnb.Connection) -> None:
    a = np.arange(32, dtype=np.int32).reshape(2, 16)
    b = np.full((2, 16), 3, dtype=np.int32)
    result = conn.infer("add_sub", {"INPUT0": a, "INPUT1": b}, request_id="r-1")
    np.testing.assert_array_equal(result["OUTPUT0"], a + b)
    np.testing.assert_array_equal(result["OUTPUT1"], a - b)
    assert (result.model_name, result.model_version, result.id) == ("add_sub", "1", "r-1")
    assert set(result.outputs) == {"OUTPUT0", "OUTPUT1"}
    assert "OUTPUT0 INT32 [2, 16]" in repr(result)
    with pytest.raises(KeyError, match="Available outputs are 'OUTPUT0', 'OUTPUT1'"):
        result["nope"]


def test_infer_requested_outputs_and_parameters(conn: easnb.Connection) -> None:
    a = np.ones((1, 16), np.int32)
    result = conn.infer("add_sub", {"INPUT0": a, "INPUT1": a}, outputs=["OUTPUT1"], parameters={"x": 1, "y": "z"})
    assert list(result) == ["OUTPUT1"]


@pytest.mark.parametrize("raw", [True, False])
@pytest.mark.parametrize(
    "array",
    [
        np.array([[1.5, -2.0]], np.float32),
        np.array([1, -2, 3], np.int32),
        np.array([2**40, -5], np.int64),
        np.array([0.1, 1e300], np.float64),
        np.array([True, False, True]),
        np.array([b"a", b"bc\x00", b""], dtype=object),
    ],
    ids=["FP32", "INT32", "INT64", "FP64", "BOOL", "BYTES"],
)
def test_basic_datatypes_round_trip(conn: easnb.Connection, array: np.ndarray, raw: bool) -> None:
    out = conn.infer("echo", {"x": array}, raw=raw)["x"]
    assert out.dtype == array.dtype and out.shape == array.shape
    assert out.tolist() == array.tolist()


def test_64mb_tensor_round_trip(conn: easnb.Connection) -> None:
    x = np.random.default_rng(0).random(16 * 1024 * 1024, dtype=np.float32)  # 64 MiB
    out = conn.infer("echo", {"x": x}, timeout=60)["x"]
    assert out.nbytes == 64 * 1024 * 1024
    np.testing.assert_array_equal(out, x)
    assert not out.flags.writeable  # a view of the reply, not a copy


def test_copy_gives_writable_arrays(conn: easnb.Connection) -> None:
    out = conn.infer("echo", {"x": np.zeros(3, np.float32)}, copy=True)["x"]
    out[0] = 1.0
    assert out.flags.writeable


def test_bearer_header_as_received(recording_server) -> None:  # type: ignore[no-untyped-def]
    endpoint, recorder = recording_server
    with easnb.connect(endpoint, token=TOKEN) as conn:
        conn.live()
        conn.infer("echo", {"x": np.zeros(1, np.float32)})
        conn.service("protos/helloworld.proto", "helloworld.GreeterService").SayHello(name="x")
    assert [c[1].get("authorization") for c in recorder.calls] == [f"Bearer {TOKEN}"] * 3
    recorder.calls.clear()
    with easnb.connect(endpoint) as conn:
        conn.live()
    assert "authorization" not in recorder.calls[0][1]


def test_pasted_bearer_prefix_and_spaces_are_cleaned(recording_server) -> None:  # type: ignore[no-untyped-def]
    endpoint, recorder = recording_server
    with easnb.connect(endpoint, token=f"  Bearer {TOKEN}\n") as conn:
        conn.live()
    assert recorder.calls[0][1]["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("token", ["a b", "tab\there", "new\nline", "caf\u00e9", "\x00x"])
def test_unsendable_tokens_are_refused_without_echo(token: str) -> None:
    with pytest.raises(easnb.TokenError) as info:
        clean_token(token)
    assert token not in str(info.value)


def test_wrong_and_missing_token(demo: DemoServer) -> None:
    with easnb.connect(demo.endpoint, token="wrong-token-123") as conn:
        with pytest.raises(easnb.AuthenticationError) as info:
            conn.live()
    assert "token" in info.value.hint and "wrong-token-123" not in str(info.value)
    assert info.value.code.name == "UNAUTHENTICATED"
    with easnb.connect(demo.endpoint) as conn:
        with pytest.raises(easnb.AuthenticationError, match="missing") as info:
            conn.ready()
    assert "EASNB_TOKEN" in info.value.hint


def test_deadline_is_honoured(demo: DemoServer) -> None:
    with easnb.connect(demo.endpoint, token=demo.token, timeout=0.3) as conn:
        started = time.perf_counter()
        with pytest.raises(easnb.DeadlineError) as info:
            conn.infer("sleepy", {"seconds": np.array([2.0])})
        elapsed = time.perf_counter() - started
        assert 0.25 < elapsed < 1.0
        assert "0.3 s" in info.value.hint
        # a per-call timeout overrides the connection's
        assert conn.infer("sleepy", {"seconds": np.array([0.5])}, timeout=3)["seconds"][0] == 0.5


def test_unavailable_with_hint() -> None:
    with easnb.connect("127.0.0.1:1", timeout=2, retries=1) as conn:
        with pytest.raises(easnb.UnavailableError) as info:
            conn.live()
    assert "endpoint" in info.value.hint and info.value.code.name == "UNAVAILABLE"


def test_vpc_endpoint_hint() -> None:
    conn = easnb.connect("http://svc.1.vpc.cn-hangzhou.pai-eas.aliyuncs.com.invalid/", timeout=2, retries=0)
    with conn, pytest.raises(easnb.UnavailableError) as info:
        conn.live()
    assert "VPC" in info.value.hint


def test_not_found_and_invalid_argument(conn: easnb.Connection) -> None:
    with pytest.raises(easnb.NotFoundError, match="unknown model 'nope'"):
        conn.model_metadata("nope")
    with pytest.raises(easnb.NotFoundError, match="no version '7'"):
        conn.model_metadata("iris", "7")
    # model_ready answers False for an unknown model or version, on every server
    assert conn.model_ready("iris", "7") is False and conn.model_ready("nope") is False
    with pytest.raises(easnb.InvalidArgumentError, match="takes INT32, not FP32"):
        conn.infer("add_sub", {"INPUT0": np.zeros((1, 16), np.float32), "INPUT1": np.zeros((1, 16), np.float32)})
    with pytest.raises(easnb.InvalidArgumentError, match="takes shape"):
        conn.infer("add_sub", {"INPUT0": np.zeros((1, 3), np.int32), "INPUT1": np.zeros((1, 3), np.int32)})


def test_env_fallback(demo: DemoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EASNB_ENDPOINT", demo.endpoint)
    monkeypatch.setenv("EASNB_TOKEN", demo.token)
    with easnb.connect() as conn:
        assert conn.live() and conn.has_token
    monkeypatch.delenv("EASNB_ENDPOINT")
    with pytest.raises(easnb.EndpointError, match="EASNB_ENDPOINT"):
        easnb.connect()


def test_repr_hides_token_and_close(demo: DemoServer) -> None:
    conn = easnb.connect(demo.endpoint, token=TOKEN)
    assert TOKEN not in repr(conn) and "token set" in repr(conn)
    conn.close()
    conn.close()
    assert "closed" in repr(conn)
    with pytest.raises(easnb.EasnbError, match="closed"):
        conn.live()


def test_no_token_in_logs(demo: DemoServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with easnb.connect(demo.endpoint, token="wrong-" + TOKEN) as conn:
        with pytest.raises(easnb.AuthenticationError) as info:
            conn.live()
    assert TOKEN not in caplog.text and TOKEN not in str(info.value) and TOKEN not in repr(info.value)


def test_server_that_echoes_the_token_is_redacted() -> None:
    import grpc

    from easnb.rpc_errors import from_rpc_error

    class Fake(grpc.RpcError):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.UNAUTHENTICATED

        def details(self) -> str:
            return f"bad header Bearer {TOKEN}"

    error = from_rpc_error(Fake(), target="t", method="m", token=TOKEN)
    assert TOKEN not in str(error) and "***" in error.details


def test_threads_share_one_connection(conn: easnb.Connection) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(i: int) -> int:
        a = np.full((1, 16), i, np.int32)
        return int(conn.infer("add_sub", {"INPUT0": a, "INPUT1": a})["OUTPUT0"][0, 0])

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(work, range(64))) == [2 * i for i in range(64)]


def test_idempotent_calls_retry_until_server_is_back() -> None:
    from .conftest import free_port

    port = free_port()
    conn = easnb.connect(f"127.0.0.1:{port}", token="t", timeout=2, retries=6)
    import threading

    server = DemoServer(token="t", port=port)
    threading.Timer(0.3, server.start).start()
    try:
        assert conn.live() is True  # retried through UNAVAILABLE while the server came up
    finally:
        server.stop()
        conn.close()


def test_example_inputs_are_accepted(conn: easnb.Connection) -> None:
    for model in ("add_sub", "iris", "text"):
        inputs = conn.model_metadata(model).example_inputs(rows=3)
        result = conn.infer(model, inputs)
        assert all(a.shape[0] == 3 for a in result.values())
