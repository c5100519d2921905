"""Every public call's arguments: converted where unambiguous, else an ArgumentError naming the argument.

A test per argument (the tables), then a property: any value of any type in any argument of the
V2 calls ends in an answer or an EasnbError, never a bare TypeError from inside protobuf or grpc.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import easnb
import easnb.aio
from easnb.demo import DemoServer
from easnb.demo.models import IRIS_FEATURES, load_iris
from easnb import ArgumentError

X = load_iris()[0][:3]
FRAME = pd.DataFrame(X, columns=IRIS_FEATURES)
NOT_TEXT = [1.5, b"iris", True, ["iris"], object()]
NOT_SECONDS = ["5", -1, float("nan"), float("inf"), 1e300, 2**70, True, [1]]
NOT_FLAG = ["yes", 2, None, 0.5]
NOT_HEADERS = ["x-request-id: 1", [("x-request-id", "1")], 5]

# (call, its valid arguments, argument, bad values): one row per argument of every public call
SYNC: list[tuple[str, dict[str, Any], str, list[Any]]] = [
    ("live", {}, "timeout", NOT_SECONDS), ("live", {}, "headers", NOT_HEADERS),
    ("ready", {}, "timeout", NOT_SECONDS), ("ready", {}, "headers", NOT_HEADERS),
    ("server_metadata", {}, "timeout", NOT_SECONDS), ("server_metadata", {}, "headers", NOT_HEADERS),
    ("model_ready", {"name": "iris"}, "name", [*NOT_TEXT, None]), ("model_ready", {"name": "iris"}, "version", NOT_TEXT),
    ("model_ready", {"name": "iris"}, "timeout", NOT_SECONDS), ("model_ready", {"name": "iris"}, "headers", NOT_HEADERS),
    ("model_metadata", {"name": "iris"}, "name", [*NOT_TEXT, None]), ("model_metadata", {"name": "iris"}, "version", NOT_TEXT),
    ("model_metadata", {"name": "iris"}, "timeout", NOT_SECONDS), ("model_metadata", {"name": "iris"}, "headers", NOT_HEADERS),
    ("cached_model_metadata", {"name": "iris"}, "name", NOT_TEXT), ("cached_model_metadata", {"name": "iris"}, "version", NOT_TEXT),
    ("models", {}, "ready", NOT_FLAG),
    ("wait_until_ready", {"progress": False}, "model", NOT_TEXT),
    ("wait_until_ready", {"progress": False}, "timeout", [*NOT_SECONDS, None]),
    ("wait_until_ready", {}, "progress", NOT_FLAG),
    *[("infer", {"model": "iris", "inputs": {"features": X}}, arg, bad) for arg, bad in [
        ("model", [*NOT_TEXT, None]), ("inputs", [X, "features", 5, [1, 2]]), ("outputs", [b"label", 5.5, {"label": 5}, [1.5]]),
        ("version", NOT_TEXT), ("parameters", [[("a", 1)], "a=1", 5]), ("request_id", NOT_TEXT), ("timeout", NOT_SECONDS),
        ("headers", NOT_HEADERS), ("raw", NOT_FLAG), ("retries", ["2", -1, 1.5, True]), ("copy", NOT_FLAG),
        ("bytes_as_str", NOT_FLAG), ("columns", [["a"], "a", {"features": "a"}]),
    ]],
    *[("infer_frame", {"model": "iris", "frame": FRAME, "progress": False}, arg, bad) for arg, bad in [
        ("model", [*NOT_TEXT, None]), ("frame", [{"features": X}, X]), ("batch_size", [0, "10", 2.5, True]),
        ("concurrency", [0, "8", 1.5, False]), ("outputs", [b"label", 5.5]), ("retries", ["2", -1]), ("progress", NOT_FLAG),
        ("errors", ["ignore", 1, None]), ("version", NOT_TEXT), ("timeout", NOT_SECONDS), ("retry_deadline", NOT_FLAG),
        ("parameters", [[("a", 1)], 5]), ("headers", NOT_HEADERS), ("columns", [["a"], {"features": "a"}]),
    ]],
    ("model_statistics", {}, "model", NOT_TEXT), ("model_statistics", {}, "version", NOT_TEXT),
    ("model_statistics", {}, "timeout", NOT_SECONDS),
    *[("load_test", {"target": "iris", "inputs": {"features": X}, "concurrency": [1], "seconds": 0.1, "progress": False}, arg, bad)
      for arg, bad in [
        ("concurrency", ["4", [1, "2"], [True]]), ("seconds", ["1", -1.0, float("inf")]), ("warmup", ["0", -1]),
        ("batch_size", [0, "1", 1.5]), ("version", NOT_TEXT), ("stop_error_rate", ["0.5", -0.1]), ("timeout", NOT_SECONDS),
        ("max_in_flight", [0, "10"]), ("progress", NOT_FLAG),
    ]],
    ("load_test", {"target": "iris", "inputs": {"features": X}, "rate": [10], "seconds": 0.1, "progress": False}, "rate", ["10", [0, "x"]]),
    ("service", {"proto_or_name": "helloworld.GreeterService"}, "proto_or_name", [5, None, b"x"]),
    ("service", {"proto_or_name": "helloworld.GreeterService"}, "name", [5.5, b"x"]),
    ("service", {"proto_or_name": "helloworld.GreeterService"}, "include", [5, [5]]),
]
CONNECT: list[tuple[str, list[Any]]] = [
    ("endpoint", [5, b"localhost:1", ["localhost:1"]]), ("timeout", NOT_SECONDS), ("headers", NOT_HEADERS),
    ("tls", ["yes", 2]), ("root_certificates", [5, ["a"]]), ("keepalive", [60, "60"]),
    ("max_message_bytes", ["1", -2, 1.5]), ("retries", ["2", -1]), ("options", ["x", 5, [1, 2], {"grpc.x": object()}, [("grpc.x", 1.5)]]),
]


def _rows(table: list[tuple[str, dict[str, Any], str, list[Any]]]) -> list[Any]:
    return [pytest.param(call, base, arg, bad, id=f"{call}-{arg}-{i}") for call, base, arg, values in table for i, bad in enumerate(values)]


@pytest.mark.parametrize(("call", "base", "argument", "bad"), _rows(SYNC))
def test_a_wrong_argument_is_named(conn: easnb.Connection, call: str, base: dict[str, Any], argument: str, bad: Any) -> None:
    with pytest.raises(ArgumentError) as info:
        getattr(conn, call)(**{**base, argument: bad})
    assert info.value.argument == argument and argument in str(info.value)
    assert isinstance(info.value, TypeError) and info.value.hint is not None


@pytest.mark.parametrize(("argument", "bad"), [pytest.param(a, b, id=f"{a}-{i}") for a, values in CONNECT for i, b in enumerate(values)])
def test_a_wrong_connect_argument_is_named(argument: str, bad: Any) -> None:
    for make in (easnb.connect, easnb.Connection, easnb.aio.connect, easnb.aio.AsyncConnection):
        arguments = {"endpoint": "localhost:1", argument: bad}
        with pytest.raises((ArgumentError, easnb.EndpointError)) as info:
            make(**arguments)
        assert argument in str(info.value) or (argument == "endpoint" and "endpoint" in str(info.value).lower())


ASYNC = [(call, base, arg, bad) for call, base, arg, bad in SYNC
         if call in ("live", "ready", "server_metadata", "model_ready", "model_metadata", "infer", "service", "models",
                     "wait_until_ready", "infer_frame")]


@pytest.mark.parametrize(("call", "base", "argument", "bad"), _rows(ASYNC))
def test_a_wrong_argument_is_named_in_easnb_aio(demo: DemoServer, call: str, base: dict[str, Any], argument: str, bad: Any) -> None:
    async def main() -> None:
        async with easnb.aio.connect(demo.endpoint, token=demo.token) as aconn:
            await getattr(aconn, call)(**{**base, argument: bad})

    with pytest.raises(ArgumentError) as info:
        asyncio.run(main())
    assert info.value.argument == argument


META = easnb.ModelMetadata("m", (), "", (easnb.TensorMetadata("x", "FP32", (-1, 2)),), ())
RESULT = easnb.InferResult("m", "1", "", {"y": np.arange(3)}, {"y": "INT64"})
OTHER = [  # the rest of easnb.__all__ that takes arguments: (call, argument, bad value)
    (lambda v: easnb.parse_endpoint("localhost:1", tls=v), "tls", "yes"),
    (lambda v: easnb.connect("localhost:1", keepalive=easnb.Keepalive(time_s=v)), "Keepalive.time_s", "60"),
    (lambda v: easnb.connect("localhost:1", keepalive=easnb.Keepalive(timeout_s=v)), "Keepalive.timeout_s", -5),
    (lambda v: RESULT.to_frame(long=v), "long", "yes"),
    (lambda v: RESULT.to_frame(arrays=v), "arrays", 2),
    (lambda v: RESULT.to_dict(bytes_as=v), "bytes_as", 5),
    (lambda v: RESULT.to_json(indent=v), "indent", [1]),
    (lambda v: META.example_inputs(rows=v), "rows", "2"),
    (lambda v: easnb.connect("localhost:1").encode_infer("m", {"x": easnb.Tensor(np.ones(2), None, v)}), "Tensor.parameters", [1]),
    (lambda v: easnb.connect("localhost:1").close(replaced_by=v), "replaced_by", 1.5),
    (lambda v: easnb.doctor("localhost:1", timeout=v), "timeout", "5"),
    (lambda v: easnb.doctor("localhost:1", model=v), "model", 2.5),
    *[(lambda v, a=a: easnb.compare(easnb.connect("localhost:1"), None, **{"model": "m", "data": FRAME, "model_b": "n", a: v}), a, bad)
      for a, bad in [("model", 1.5), ("model_b", b"n"), ("version_a", 1.0), ("version_b", [1]), ("rtol", "0.1"), ("atol", -1),
                     ("batch_size", 0), ("latency_samples", "3"), ("progress", "yes")]],
]


@pytest.mark.parametrize(("call", "argument", "bad"), [pytest.param(*row, id=row[1]) for row in OTHER])
def test_the_rest_of_the_public_api_names_a_wrong_argument(call: Any, argument: str, bad: Any) -> None:
    with pytest.raises(ArgumentError) as info:
        call(bad)
    assert info.value.argument == argument and argument in str(info.value)


def test_the_rest_converts_what_is_unambiguous() -> None:
    assert easnb.parse_endpoint("localhost:1", tls=1).tls is True
    assert META.example_inputs(rows=2.0)["x"].shape == (2, 2) and RESULT.to_json(indent="  ").startswith("{\n  ")
    with easnb.connect("localhost:1") as offline:  # a lower-case datatype is the datatype
        assert offline.encode_infer("m", {"x": easnb.Tensor(np.ones(2), "fp32")}) == offline.encode_infer("m", {"x": np.ones(2, np.float32)})


async def _aio_frame(conn: easnb.Connection, **options: Any) -> Any:
    async with easnb.aio.connect(conn.settings) as aconn:
        return await aconn.infer_frame("iris", FRAME, progress=False, **options)


def test_a_misspelt_option_is_named_with_the_nearest(conn: easnb.Connection) -> None:
    for call, wrong, right in ((lambda: easnb.connect("localhost:1", tiemout=3), "tiemout", "timeout"),
                               (lambda: easnb.aio.connect("localhost:1", max_mesage_bytes=3), "max_mesage_bytes", "max_message_bytes"),
                               (lambda: easnb.Connection("localhost:1", keep_alive=3), "keep_alive", "keepalive"),
                               (lambda: conn.infer_frame("iris", FRAME, colums={}), "colums", "columns"),
                               (lambda: asyncio.run(_aio_frame(conn, errros="keep")), "errros", "errors")):
        with pytest.raises(ArgumentError, match=f"no argument '{wrong}'; did you mean '{right}'") as info:
            call()
        assert info.value.argument == wrong


def test_text_given_in_the_wrong_place_is_never_echoed(conn: easnb.Connection) -> None:
    secret = "tok-EASNB-SECRET-7f3a9c"  # a token passed where something else goes must not reach the message
    for call in (lambda: easnb.connect("localhost:1", "t", secret), lambda: conn.infer_frame("iris", FRAME, errors=secret),
                 lambda: conn.live(timeout=secret), lambda: conn.infer("iris", {"features": X}, raw=secret),
                 lambda: conn.infer("iris", {"features": X}, headers=[("x-token", secret)]), lambda: conn.infer("iris", secret)):
        with pytest.raises(ArgumentError) as info:
            call()
        assert secret not in str(info.value) and secret not in repr(info.value)


def test_numbers_for_text_become_text(conn: easnb.Connection, demo: DemoServer) -> None:
    assert conn.model_ready("iris", 1) is True and conn.model_ready(np.int64(1) and "iris", version=np.int64(1)) is True
    assert conn.model_metadata("iris", version=1).name == "iris"
    right = conn.infer("iris", {"features": X}, version="1")["label"].tolist()
    assert conn.infer("iris", {"features": X}, version=1)["label"].tolist() == right
    assert conn.infer("iris", {"features": X}, version=1, request_id=7, outputs="label").id == "7"
    assert conn.infer("iris", FRAME, version=1, timeout=np.float32(5), retries=np.int64(1), raw=1)["label"].tolist() == right
    scored = conn.infer_frame("iris", FRAME, batch_size=2.0, concurrency=np.int64(2), version=1, progress=0, timeout=3)
    assert scored["label"].tolist() == [v.decode() for v in right]
    assert conn.infer("iris", [("features", X)])["label"].tolist() == right  # (name, array) pairs
    assert conn.live(timeout=1) and conn.ready(timeout=np.float64(1.5))
    with pytest.raises(ArgumentError, match="version must be a str"):  # 1.0: "1" or "1.0"? not guessed
        conn.infer("iris", {"features": X}, version=1.0)

    async def main() -> tuple[bool, list[Any]]:
        async with easnb.aio.connect(demo.endpoint, token=demo.token, timeout=5, retries=1.0) as aconn:
            ready = await aconn.model_ready("iris", 1)
            return ready, (await aconn.infer("iris", {"features": X}, version=1, retries=np.int64(1)))["label"].tolist()

    assert asyncio.run(main()) == (True, right)
    with easnb.connect(demo.endpoint, token=demo.token, options=[("grpc.enable_http_proxy", 0)], tls=0, retries=2.0) as plain:
        assert plain.live()  # gRPC's own list-of-pairs options, and 0 for False


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=8),
    st.binary(max_size=8), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.tuples(st.text(max_size=3), st.integers()),
)
INFER_ARGS = ["model", "outputs", "version", "parameters", "request_id", "timeout", "headers", "raw", "retries", "copy", "bytes_as_str"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=st.sampled_from(["infer", "model_metadata", "model_ready", "infer_frame", "live"]), argument=st.sampled_from(INFER_ARGS), value=VALUES)
def test_any_value_anywhere_is_an_answer_or_a_typed_error(conn: easnb.Connection, call: str, argument: str, value: Any) -> None:
    arguments: dict[str, Any] = {"timeout": 2}
    if call == "infer":
        arguments |= {"model": "iris", "inputs": {"features": X}}
    elif call == "infer_frame":
        arguments |= {"model": "iris", "frame": FRAME, "progress": False}
        argument = {"raw": "progress", "copy": "retry_deadline", "bytes_as_str": "batch_size", "request_id": "concurrency"}.get(argument, argument)
    elif call in ("model_metadata", "model_ready"):
        arguments |= {"name": "iris"}
        argument = {"model": "name"}.get(argument, argument)
        if argument not in ("name", "version", "timeout", "headers"):
            return
    elif argument not in ("timeout", "headers"):
        return
    try:
        getattr(conn, call)(**{**arguments, argument: value})
    except easnb.EasnbError:
        pass


def test_an_outputs_parameter_that_is_not_a_dict_names_the_output(conn: easnb.Connection) -> None:
    with pytest.raises(ArgumentError, match=r"outputs\['label'\] must be a dict of that output's parameters") as info:
        conn.infer("iris", {"features": X}, outputs={"label": 1})
    assert "outputs=['label']" in info.value.hint
    assert list(conn.infer("iris", {"features": X}, outputs={"label": None}).outputs) == ["label"]
