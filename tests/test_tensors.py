"""The codec: every datatype both ways, raw and typed, and bad tensors named."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from easnb import Tensor, TensorError
from easnb._proto import ModelInferRequest, ModelInferResponse
from easnb.inference import decode_response, encode_request
from easnb.tensors import DATATYPES, _bf16_words, decode_bytes, decode_tensor, encode_bytes, encode_tensor

pytestmark = pytest.mark.core

NUMERIC = [d for d in DATATYPES.values() if d.name not in ("BYTES", "BF16")]
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5)


def round_trip(array, datatype=None, raw=True, **kwargs):  # type: ignore[no-untyped-def]
    tensor = ModelInferRequest().inputs.add()
    value = Tensor(array, datatype) if datatype else array
    buffer, dt = encode_tensor(tensor, "t", value, raw=raw)
    raw_bytes = memoryview(buffer).tobytes() if buffer is not None else None
    return decode_tensor("t", dt, tensor.shape, raw_bytes, tensor.contents if not raw else None, **kwargs)


@pytest.mark.parametrize("raw", [True, False])
@pytest.mark.parametrize("dt", [d for d in NUMERIC if d.contents], ids=lambda d: d.name)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_numeric_round_trip_exact(dt, raw, data) -> None:  # type: ignore[no-untyped-def]
    array = data.draw(hnp.arrays(dt.dtype, shapes))
    out = round_trip(array, raw=raw)
    assert out.dtype == dt.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)


@settings(max_examples=25, deadline=None)
@given(array=hnp.arrays(np.float16, shapes))
def test_fp16_raw_round_trip(array) -> None:  # type: ignore[no-untyped-def]
    np.testing.assert_array_equal(round_trip(array), array)
    with pytest.raises(TensorError, match="no typed contents"):
        round_trip(array, raw=False)


@pytest.mark.parametrize("raw", [True, False])
@settings(max_examples=25, deadline=None)
@given(items=st.lists(st.binary(max_size=20), max_size=12))
def test_bytes_round_trip_keeps_every_byte(raw, items) -> None:  # type: ignore[no-untyped-def]
    array = np.empty(len(items), dtype=object)
    array[:] = items
    out = round_trip(array, raw=raw)
    assert out.dtype == object and out.tolist() == items


def test_bytes_accepts_str_lists_and_numpy_strings() -> None:
    for value in (["héllo", "x"], np.array(["héllo", "x"]), np.array(["héllo", "x"], dtype=object)):
        assert round_trip(value).tolist() == ["héllo".encode(), b"x"]
    assert round_trip(np.array([b"ab", b"c"])).tolist() == [b"ab", b"c"]
    assert round_trip(["a", "b"], bytes_as_str=True).tolist() == ["a", "b"]


def test_bytes_matches_tritonclients_layout() -> None:
    utils = pytest.importorskip("tritonclient.utils")
    items = np.array([b"", b"a", b"bc\x00", "ü".encode()], dtype=object)
    ours = encode_bytes(list(items))
    assert ours == utils.serialize_byte_tensor(items).item()
    assert decode_bytes(ours, 4).tolist() == list(items)


BF16_MAX = float(np.float32(3.38e38))


@settings(max_examples=50, deadline=None)
# within BF16's range: finite values beyond it are refused (test_finite_values_that_would_become_infinite...)
@given(array=hnp.arrays(np.float32, shapes, elements=st.floats(width=32, min_value=-BF16_MAX, max_value=BF16_MAX)))
def test_bf16_round_to_nearest_even(array) -> None:  # type: ignore[no-untyped-def]
    out = round_trip(array, "BF16")
    assert out.dtype == np.float32 and out.shape == array.shape
    ml_dtypes = pytest.importorskip("ml_dtypes")
    np.testing.assert_array_equal(out, array.astype(ml_dtypes.bfloat16).astype(np.float32))


def test_bf16_edge_values_and_ml_dtypes() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.array([1.0, 1.00390625, 1.01171875, -0.0, np.inf, -np.inf, np.nan, 3.3e38, 1e-40], np.float32)
    words = _bf16_words(x)
    np.testing.assert_array_equal(words, x.astype(ml_dtypes.bfloat16).view(np.uint16)[:6].tolist() + words[6:].tolist())
    assert np.isnan(round_trip(x, "BF16")[6])
    b = x.astype(ml_dtypes.bfloat16)  # sent as it is (BF16 words), back as float32 holding the same values
    out = round_trip(b)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:6], b[:6].astype(np.float32))


@pytest.mark.parametrize(
    ("values", "datatype"),
    [([1e39], "FP32"), ([1e39, 1.0], "FP16"), ([70000], "FP16"), ([3.4e38], "BF16"), ([-1e300], "FP32")],
)
def test_finite_values_that_would_become_infinite_are_refused(values: list[float], datatype: str) -> None:
    with pytest.raises(TensorError, match="too large"):
        encode_request("m", {"x": Tensor(np.array(values), datatype)})
    # infinities the caller sent stay infinities
    assert np.isinf(round_trip(np.array([np.inf], np.float64), "FP32")).all()


def test_non_contiguous_and_big_endian_are_sent_correctly() -> None:
    base = np.arange(24, dtype=np.int32).reshape(4, 6)
    np.testing.assert_array_equal(round_trip(base[:, ::2]), base[:, ::2])
    np.testing.assert_array_equal(round_trip(base.T), base.T)
    big = np.arange(5, dtype=">f8")
    out = round_trip(big)
    assert out.dtype == np.dtype("<f8") and out.tolist() == big.tolist()


def test_zero_copy_decode_and_single_copy_encode() -> None:
    x = np.arange(100_000, dtype=np.float32)  # over wire.SMALL, where views pay off
    buffer, _ = encode_tensor(ModelInferRequest().inputs.add(), "x", x)
    assert buffer is x  # contiguous little-endian: handed over as is
    data = encode_request("m", {"x": x})
    request = ModelInferRequest.FromString(data)
    reply = ModelInferResponse(model_name="m")
    reply.outputs.add(name="y", datatype="FP32", shape=[100_000])
    reply.raw_output_contents.append(request.raw_input_contents[0])
    payload = reply.SerializeToString()
    y = decode_response(payload)["y"]
    assert not y.flags.writeable and np.shares_memory(y, np.frombuffer(payload, np.uint8))


@pytest.mark.parametrize(
    ("value", "datatype", "message"),
    [
        (np.array([1.5]), "INT32", "fractional"),
        (np.array([np.nan]), "INT64", "NaN"),
        (np.array([300]), "UINT8", "do not fit"),
        (np.array([-1]), "UINT32", "do not fit"),
        (np.array([2]), "BOOL", "only 0 and 1"),
        (np.array(["a"], dtype=object), "FP32", r"\(sent as FP32\) holds text"),
        (np.array([1.0]), "BYTES", "cannot be sent as BYTES"),
        (np.array([1 + 2j]), None, "no V2 datatype"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), None, "no V2 datatype"),
        (np.array([1]), "FP8", "unknown datatype"),
        (np.array([b"a", None], dtype=object), "BYTES", r"missing value \(None\) at flat index 1"),
        (np.array([1.0], np.float32), "FLOAT", "unknown datatype"),
    ],
)
def test_encode_refusals_name_the_tensor(value, datatype, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TensorError, match=message) as info:
        round_trip(value, datatype)
    assert "'t'" in str(info.value)


def test_ragged_list_is_refused() -> None:
    with pytest.raises(TensorError, match="'t'"):
        round_trip([[1, 2], [3]])


def _response(datatype, shape, raw=None, **typed):  # type: ignore[no-untyped-def]
    reply = ModelInferResponse(model_name="m")
    out = reply.outputs.add(name="out", datatype=datatype, shape=shape)
    for field, values in typed.items():
        getattr(out.contents, field).extend(values)
    if raw is not None:
        reply.raw_output_contents.extend(raw)
    return reply.SerializeToString()


MALFORMED = [
    (_response("FP32", [2], [b"\x00" * 4]), "needs 8 bytes"),
    (_response("FP32", [2], [b"\x00" * 12]), "needs 8 bytes"),
    (_response("INT64", [3], [b"\x00" * 8]), "needs 24 bytes"),
    (_response("FP16", [1], [b"\x00"]), "needs 2 bytes"),
    (_response("BF16", [2, 2], [b"\x00" * 6]), "needs 8 bytes"),
    (_response("BOOL", [4], [b"\x01" * 3]), "needs 4 bytes"),
    (_response("FP32", [-1], [b""]), "negative dimension"),
    (_response("FP33", [1], [b"\x00" * 4]), "unknown datatype"),
    (_response("", [1], [b"\x00" * 4]), "unknown datatype"),
    (_response("fp32", [1], [b"\x00" * 4]), "unknown datatype"),
    (_response("FP32", [3], fp32_contents=[1.0, 2.0]), "has 2 elements but its shape says 3"),
    (_response("INT32", [1], int_contents=[1, 2]), "has 2 elements but its shape says 1"),
    (_response("INT8", [1], int_contents=[1000]), "out of range"),
    (_response("UINT8", [1], uint_contents=[256]), "out of range"),
    (_response("FP32", [2]), "no contents"),
    (_response("FP16", [1], fp32_contents=[1.0]), "only as raw"),
    (_response("FP32", [1], [b"\x00" * 4], fp32_contents=[1.0]), "both raw and typed"),
    (_response("BYTES", [1], [b"\x05\x00\x00\x00abc"]), "runs past the buffer"),
    (_response("BYTES", [2], [b"\x01\x00\x00\x00a"]), "end after 1 of 2"),
    (_response("BYTES", [1], [b"\x01\x00\x00\x00ab"]), "left over"),
    (_response("BYTES", [1], [b"\x01\x00"]), "end after 0 of 1"),
    (_response("BYTES", [2], bytes_contents=[b"a"]), "has 1 elements but its shape says 2"),
    (_response("BYTES", [1], [b"\xff\xff\xff\xff"]), "runs past the buffer"),
    (_response("INT32", [2, 2], int_contents=[1, 2, 3]), "shape says 4"),
    (_response("UINT64", [1], [b"\x00" * 4]), "needs 8 bytes"),
    (_response("FP64", [0], [b"\x00"]), "needs 0 bytes"),
]


@pytest.mark.parametrize(("payload", "message"), MALFORMED)
def test_malformed_replies_raise_named_tensor_errors(payload: bytes, message: str) -> None:
    with pytest.raises(TensorError, match=message) as info:
        decode_response(payload)
    assert "'out'" in str(info.value)


def test_raw_buffer_count_must_match_outputs() -> None:
    reply = ModelInferResponse()
    reply.outputs.add(name="a", datatype="FP32", shape=[1])
    reply.outputs.add(name="b", datatype="FP32", shape=[1])
    reply.raw_output_contents.append(b"\x00" * 4)
    with pytest.raises(TensorError, match="2 outputs but 1 raw buffers"):
        decode_response(reply.SerializeToString())


def test_typed_response_with_no_raw_contents() -> None:
    payload = _response("INT64", [2], int64_contents=[5, -7])
    assert decode_response(payload)["out"].tolist() == [5, -7]


def test_empty_tensors() -> None:
    for dt in ("FP32", "BYTES", "FP16", "BOOL"):
        assert decode_response(_response(dt, [0, 3], [b""]))["out"].shape == (0, 3)
    assert decode_response(_response("FP32", [0]))["out"].shape == (0,)


def test_parameters_on_every_level() -> None:
    from easnb.parameters import to_dict

    data = encode_request(
        "m",
        {"x": Tensor(np.zeros(1, np.float32), parameters={"binary": True, "scale": 0.5})},
        outputs={"y": {"classification": 3}},
        parameters={"priority": 2**63 + 1, "tag": "a", "neg": -5},
    )
    request = ModelInferRequest.FromString(data)
    assert to_dict(request.parameters) == {"neg": -5, "priority": 2**63 + 1, "tag": "a"}
    assert request.parameters["priority"].WhichOneof("parameter_choice") == "uint64_param"
    assert to_dict(request.inputs[0].parameters) == {"binary": True, "scale": 0.5}
    assert to_dict(request.outputs[0].parameters) == {"classification": 3}
    reply = ModelInferResponse(model_name="m")
    reply.parameters["took_ms"].double_param = 1.5
    out = reply.outputs.add(name="y", datatype="FP32", shape=[0])
    out.parameters["note"].string_param = "ok"
    result = decode_response(reply.SerializeToString())
    assert result.parameters == {"took_ms": 1.5} and result.output_parameters == {"y": {"note": "ok"}}
