"""A corpus of bad input: each case gets a typed EasnbError with a hint, or is accepted exactly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import pytest

import easnb
from easnb import Tensor
from easnb.demo import DemoServer
from easnb.inference import decode_response

from .test_endpoint import BAD as BAD_ENDPOINTS
from .test_tensors import MALFORMED

pytestmark = pytest.mark.core

Case = Callable[[easnb.Connection, DemoServer], Any]


def endpoint_case(text: str) -> Case:
    return lambda conn, demo: easnb.connect(text)


def token_case(token: str) -> Case:
    return lambda conn, demo: easnb.connect(demo.endpoint, token=token)


def reply_case(payload: bytes) -> Case:
    return lambda conn, demo: decode_response(payload)


def infer_case(model: str, inputs: dict, **kwargs: Any) -> Case:  # type: ignore[type-arg]
    return lambda conn, demo: conn.infer(model, inputs, **kwargs)


def raw_header_case(value: str) -> Case:
    """A call whose authorization header is exactly ``value`` (no easnb cleaning), like a hand-made client."""

    def run(conn: easnb.Connection, demo: DemoServer) -> Any:
        with grpc.insecure_channel(demo.endpoint) as channel:
            hand_made = easnb.Connection(demo.endpoint, channel=channel)
            stub = channel.unary_unary("/inference.GRPCInferenceService/ServerLive")
            return hand_made.call("ServerLive", lambda s: stub(b"", metadata=(("authorization", value),), timeout=s))

    return run


def _two_outputs_named_alike() -> bytes:
    from easnb._proto import ModelInferResponse

    reply = ModelInferResponse(model_name="m")
    for _ in range(2):
        reply.outputs.add(name="out", datatype="FP32", shape=[1])
        reply.raw_output_contents.append(b"\x00" * 4)
    return reply.SerializeToString()


I32 = np.zeros((1, 16), np.int32)
REFUSED: list[tuple[str, Case, type[easnb.EasnbError]]] = [
    *[(f"endpoint {t!r}"[:40], endpoint_case(t), easnb.EndpointError) for t in BAD_ENDPOINTS],
    *[(f"reply {i}: {m}", reply_case(p), easnb.TensorError) for i, (p, m) in enumerate(MALFORMED)],
    ("token with a space", token_case("abc def"), easnb.TokenError),
    ("token with a newline inside", token_case("abc\ndef"), easnb.TokenError),
    ("token with a tab", token_case("abc\tdef"), easnb.TokenError),
    ("token non-ASCII", token_case("tökén"), easnb.TokenError),
    ("token NUL", token_case("a\x00b"), easnb.TokenError),
    ("header without Bearer", raw_header_case("tok"), easnb.AuthenticationError),
    ("header lower-case bearer", raw_header_case("bearer tok"), easnb.AuthenticationError),
    ("header two spaces", raw_header_case("Bearer  tok"), easnb.AuthenticationError),
    ("header Basic", raw_header_case("Basic dG9rOg=="), easnb.AuthenticationError),
    ("wrong datatype", infer_case("add_sub", {"INPUT0": I32.astype(np.float32), "INPUT1": I32.astype(np.float32)}), easnb.InvalidArgumentError),
    ("wrong rank", infer_case("add_sub", {"INPUT0": np.zeros(16, np.int32), "INPUT1": np.zeros(16, np.int32)}), easnb.InvalidArgumentError),
    ("wrong width", infer_case("add_sub", {"INPUT0": np.zeros((1, 15), np.int32), "INPUT1": np.zeros((1, 15), np.int32)}), easnb.InvalidArgumentError),
    ("shapes differ", infer_case("add_sub", {"INPUT0": I32, "INPUT1": np.zeros((2, 16), np.int32)}), easnb.InvalidArgumentError),
    ("unknown input", infer_case("add_sub", {"INPUT0": I32, "INPUT9": I32}), easnb.InvalidArgumentError),
    ("missing input", infer_case("iris", {}), easnb.TensorError),
    ("unknown output", infer_case("add_sub", {"INPUT0": I32, "INPUT1": I32}, outputs=["OUTPUT7"]), easnb.InvalidArgumentError),
    ("unknown model", infer_case("nope", {"x": I32}), easnb.NotFoundError),
    ("unknown version", infer_case("iris", {"features": np.zeros((1, 4), np.float32)}, version="9"), easnb.NotFoundError),
    ("complex numbers", infer_case("echo", {"x": np.array([1j])}), easnb.TensorError),
    ("datetimes", infer_case("echo", {"x": np.array(["2024-01-01"], "datetime64[D]")}), easnb.TensorError),
    ("None in BYTES", infer_case("echo", {"x": np.array([b"a", None], dtype=object)}), easnb.TensorError),
    ("ragged list", infer_case("echo", {"x": [[1, 2], [3]]}), easnb.TensorError),
    ("FP16 typed", infer_case("echo", {"x": np.zeros(2, np.float16)}, raw=False), easnb.TensorError),
    ("float to INT32 loses fraction", infer_case("add_sub", {"INPUT0": Tensor(np.full((1, 16), 0.5), "INT32"), "INPUT1": I32}), easnb.TensorError),
    ("int out of INT8", infer_case("echo", {"x": Tensor(np.array([1000]), "INT8")}), easnb.TensorError),
    ("NaN to INT64", infer_case("echo", {"x": Tensor(np.array([np.nan]), "INT64")}), easnb.TensorError),
    ("unknown datatype", infer_case("echo", {"x": Tensor(np.zeros(1), "FP128")}), easnb.TensorError),
    ("bad parameter type", infer_case("echo", {"x": np.zeros(1)}, parameters={"p": [1, 2]}), easnb.InvalidArgumentError),
    ("parameter too large", infer_case("echo", {"x": np.zeros(1)}, parameters={"p": 2**70}), easnb.InvalidArgumentError),
    ("non-proto reply", reply_case(b"\xff\xff\xff"), easnb.ServerError),
    ("1e39 as FP32", infer_case("echo", {"x": Tensor(np.array([1e39]), "FP32")}), easnb.TensorError),
    ("70000 as FP16", infer_case("echo", {"x": Tensor(np.array([70000]), "FP16")}), easnb.TensorError),
    ("3.4e38 as BF16", infer_case("echo", {"x": Tensor(np.array([3.4e38], np.float32), "BF16")}), easnb.TensorError),
    ("two outputs with one name", reply_case(_two_outputs_named_alike()), easnb.TensorError),
    ("authorization in headers", lambda conn, demo: conn.live(headers={"authorization": "Bearer x"}), easnb.EasnbError),
    ("header name with a space", lambda conn, demo: conn.live(headers={"x y": "1"}), easnb.EasnbError),
    ("endpoint with a path", endpoint_case("http://1.cn-hangzhou.pai-eas.aliyuncs.com/api/predict/svc"), easnb.EndpointError),
    ("bracketed host name", endpoint_case("[example.com]:80"), easnb.EndpointError),
]

ACCEPTED: list[tuple[str, Any]] = [
    ("non-contiguous rows", np.arange(60, dtype=np.int32).reshape(6, 10)[::2]),
    ("non-contiguous columns", np.arange(60, dtype=np.float64).reshape(6, 10)[:, ::3]),
    ("transposed", np.arange(12, dtype=np.int16).reshape(3, 4).T),
    ("big-endian floats", np.arange(5, dtype=">f4")),
    ("big-endian ints", np.array([1, -2, 2**40], dtype=">i8")),
    ("NaN and inf", np.array([np.nan, np.inf, -np.inf, -0.0], np.float32)),
    ("empty FP32", np.zeros((0, 4), np.float32)),
    ("empty BYTES", np.zeros((0,), dtype=object)),
    ("huge BYTES element", np.array([b"x" * (8 << 20), b""], dtype=object)),
    ("BYTES with NULs", np.array([b"\x00\x00", b"a\x00"], dtype=object)),
]


def test_corpus_size() -> None:
    assert len(REFUSED) + len(ACCEPTED) >= 60


@pytest.mark.parametrize(("name", "case", "expected"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_with_a_typed_error_and_a_hint(name: str, case: Case, expected: type, conn: easnb.Connection, demo: DemoServer) -> None:
    with pytest.raises(easnb.EasnbError) as info:
        case(conn, demo)
    assert isinstance(info.value, expected), f"{type(info.value).__name__}: {info.value}"
    assert info.value.hint and info.value.message
    assert info.value.__suppress_context__ or info.value.__context__ is None  # no raw grpc traceback chained


@pytest.mark.parametrize(("name", "array"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_accepted_exactly(name: str, array: np.ndarray, raw: bool, conn: easnb.Connection) -> None:
    if not raw and array.dtype == np.float16:
        pytest.skip("FP16 has no typed contents")
    back = conn.infer("echo", {"x": array}, raw=raw, timeout=30)["x"]
    assert back.shape == array.shape
    if array.dtype == object:
        assert back.tolist() == array.tolist()
    else:
        assert back.dtype == array.dtype.newbyteorder("<") or back.dtype == array.dtype
        np.testing.assert_array_equal(back, array)
