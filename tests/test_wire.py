"""The fast path writes what protobuf writes and reads what protobuf reads."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from easnb import ServerError, wire
from easnb._proto import ModelInferRequest, ModelInferResponse
from easnb.inference import decode_request, decode_response, encode_request

pytestmark = pytest.mark.core

names = st.text(min_size=1, max_size=8)


@pytest.fixture(autouse=True, params=["fast path", "protobuf path"])
def size_threshold(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test through easnb's own wire code (threshold 0) and through protobuf's."""
    monkeypatch.setattr(wire, "SMALL", 0 if request.param == "fast path" else 1 << 40)
param_values = st.one_of(st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False), st.text(max_size=5))
arrays = st.one_of(
    st.lists(st.floats(width=32, allow_nan=False), max_size=50).map(lambda v: np.array(v, np.float32)),
    st.lists(st.integers(-(2**31), 2**31 - 1), max_size=50).map(lambda v: np.array(v, np.int32)),
    st.lists(st.binary(max_size=300), max_size=20).map(lambda v: np.array(v + [b"x"], dtype=object)),
    st.lists(st.booleans(), max_size=500).map(np.array),
)


@settings(max_examples=200, deadline=None)
@given(
    model=st.text(max_size=10),
    inputs=st.dictionaries(names, arrays, min_size=1, max_size=4),
    outputs=st.lists(names, max_size=3),
    parameters=st.dictionaries(names, param_values, max_size=1),
    request_id=st.text(max_size=10),
)
def test_request_bytes_identical_to_protobuf(model, inputs, outputs, parameters, request_id) -> None:  # type: ignore[no-untyped-def]
    ours = encode_request(model, inputs, outputs or None, "2", parameters, request_id)
    message = ModelInferRequest.FromString(ours)
    assert message.SerializeToString(deterministic=True) == ours
    assert len(message.raw_input_contents) == len(inputs)
    parsed, raws = decode_request(ours)
    assert [r.tobytes() for r in raws] == list(message.raw_input_contents)


@settings(max_examples=200, deadline=None)
@given(
    outputs=st.lists(st.tuples(names, st.binary(max_size=2000)), max_size=5),
    model=st.text(max_size=10),
    typed=st.lists(st.floats(width=32, allow_nan=False), max_size=10),
    unknown=st.binary(max_size=20),
)
def test_reply_split_matches_protobuf(outputs, model, typed, unknown) -> None:  # type: ignore[no-untyped-def]
    reply = ModelInferResponse(model_name=model, id="i")
    reply.parameters["p"].int64_param = 3
    for name, data in outputs:
        reply.outputs.add(name=name, datatype="UINT8", shape=[len(data)])
        reply.raw_output_contents.append(data)
    payload = reply.SerializeToString()
    # unknown fields, and raw buffers interleaved with other fields, are still read
    payload += b"\x82\x01" + bytes([len(unknown)]) + unknown  # field 16, length-delimited
    head, raws = wire.split(payload, ModelInferResponse, wire.RAW_OUTPUT_FIELD)
    expected = ModelInferResponse.FromString(payload)
    assert [r.tobytes() for r in raws] == list(expected.raw_output_contents)
    expected.ClearField("raw_output_contents")
    assert head == expected


def test_interleaved_fields_parse() -> None:
    a = ModelInferResponse(model_name="m")
    a.raw_output_contents.append(b"\x01\x02")
    b = ModelInferResponse(id="x")
    b.outputs.add(name="o", datatype="UINT8", shape=[2])
    payload = a.SerializeToString() + b.SerializeToString()  # concatenation merges messages
    result = decode_response(payload)
    assert result.model_name == "m" and result.id == "x" and result["o"].tolist() == [1, 2]


@pytest.mark.parametrize("payload", [b"\x0a\x05ab", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", b"\x32\x80"])
def test_corrupt_reply_is_a_server_error(payload: bytes) -> None:
    with pytest.raises(ServerError, match="not a valid ModelInferResponse"):
        decode_response(payload)


def test_varint_lengths() -> None:
    for n in (0, 1, 127, 128, 300, 2**21, 2**28 + 5):
        assert wire.read_varint(wire.varint(n), 0) == (n, len(wire.varint(n)))


numeric = st.sampled_from(["<f4", "<f8", "<f2", "<i1", "<i2", "<i4", "<i8", "<u1", "<u2", "<u4", "<u8", "?"])


@settings(max_examples=200, deadline=None)
@given(
    model=st.text(max_size=10),
    shapes=st.dictionaries(names, st.lists(st.integers(0, 4), min_size=1, max_size=3), min_size=1, max_size=3),
    dtype=numeric,
    version=st.sampled_from(["", "2"]),
)
def test_cached_request_heads_write_what_protobuf_writes(model, shapes, dtype, version) -> None:  # type: ignore[no-untyped-def]
    """The per-connection cache of request heads is byte-identical to the general path, every time."""
    rng = np.random.default_rng(0)
    inputs = {name: (rng.random(shape) * 100).astype(dtype) for name, shape in shapes.items()}
    heads: dict = {}
    first = encode_request(model, inputs, version=version, heads=heads)
    again = encode_request(model, inputs, version=version, heads=heads)  # from the cache
    assert first == again == encode_request(model, inputs, version=version)
    assert len(heads) == 1
    message = ModelInferRequest.FromString(again)
    assert message.SerializeToString(deterministic=True) == again
    assert [tuple(t.shape) for t in message.inputs] == [tuple(s) for s in shapes.values()]
