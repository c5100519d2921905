"""Replies read from a learned layout are exactly what a full decode gives, and only then."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from easnb._proto import ModelInferResponse
from easnb.inference import decode_response


def reply(model: str = "m", outputs: tuple[tuple[str, str, np.ndarray], ...] = (), **fields: object) -> bytes:
    message = ModelInferResponse(model_name=model, **fields)
    for name, datatype, array in outputs:
        message.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
        message.raw_output_contents.append(array.tobytes())
    return message.SerializeToString()


def same(a, b) -> bool:  # type: ignore[no-untyped-def]
    return (
        (a.model_name, a.model_version, a.id, dict(a.datatypes), a.parameters, a.output_parameters)
        == (b.model_name, b.model_version, b.id, dict(b.datatypes), b.parameters, b.output_parameters)
        and list(a) == list(b)
        and all(a[n].tobytes() == b[n].tobytes() and a[n].dtype == b[n].dtype and a[n].shape == b[n].shape for n in a)
    )


def test_the_second_reply_of_a_layout_is_read_from_it() -> None:
    plans: dict = {}
    first = reply("m", (("y", "FP32", np.zeros((1, 4), "<f4")),), model_version="2")
    decode_response(first, plans=plans)
    assert list(plans) == [len(first)]
    second = reply("m", (("y", "FP32", np.arange(4, dtype="<f4").reshape(1, 4)),), model_version="2")
    result = decode_response(second, plans=plans)
    assert same(result, decode_response(second))
    assert result.model_version == "2" and result["y"].tolist() == [[0, 1, 2, 3]]
    assert not result["y"].flags.writeable
    assert decode_response(second, plans=plans, copy=True)["y"].flags.writeable


@pytest.mark.parametrize(
    "other",
    [
        reply("n", (("y", "FP32", np.ones((1, 4), "<f4")),)),  # another model, same length
        reply("m", (("z", "FP32", np.ones((1, 4), "<f4")),)),  # another output name
        reply("m", (("y", "INT32", np.ones((1, 4), "<i4")),)),  # another datatype
        reply("m", (("y", "FP32", np.ones((4, 1), "<f4")),)),  # another shape
        reply("m", (("y", "FP32", np.ones((1, 4), "<f4")),), id="x")[:-1],  # shorter: another length
    ],
)
def test_a_reply_with_another_head_is_decoded_in_full(other: bytes) -> None:
    plans: dict = {}
    decode_response(reply("m", (("y", "FP32", np.zeros((1, 4), "<f4")),)), plans=plans)
    try:
        expected = decode_response(other)
    except Exception as exc:  # noqa: BLE001
        with pytest.raises(type(exc)):
            decode_response(other, plans=plans)
        return
    assert same(decode_response(other, plans=plans), expected)


def test_plain_layouts_only_are_learned() -> None:
    plans: dict = {}
    strings = ModelInferResponse(model_name="m")
    strings.outputs.add(name="s", datatype="BYTES", shape=[1])
    strings.raw_output_contents.append(b"\x01\x00\x00\x00a")
    with_parameters = ModelInferResponse(model_name="m")
    with_parameters.parameters["k"].string_param = "v"
    with_parameters.outputs.add(name="y", datatype="FP32", shape=[1])
    with_parameters.raw_output_contents.append(b"\x00" * 4)
    typed = ModelInferResponse(model_name="m")
    typed.outputs.add(name="y", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    raw_first = ModelInferResponse(model_name="m")
    raw_first.raw_output_contents.append(b"\x00" * 4)
    raw_first.outputs.add(name="y", datatype="FP32", shape=[1])
    for message in (strings, with_parameters, typed):
        decode_response(message.SerializeToString(), plans=plans)
    # raw contents before the outputs on the wire: protobuf writes them last, so build it by hand
    out = ModelInferResponse(model_name="m")
    out.outputs.add(name="y", datatype="FP32", shape=[1])
    head = out.SerializeToString()
    shuffled = b"\x32\x04\x00\x00\x00\x00" + head
    assert same(decode_response(shuffled, plans=plans), decode_response(shuffled))
    assert plans and not any(plans.values())  # each length tried once, none learned


numeric = st.sampled_from([("FP32", "<f4"), ("INT64", "<i8"), ("UINT8", "u1"), ("FP16", "<f2"), ("BOOL", "?")])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.text("abc", min_size=1, max_size=3), numeric, st.lists(st.integers(0, 3), max_size=3)),
             min_size=1, max_size=3, unique_by=lambda t: t[0]),
    st.binary(min_size=1, max_size=64),
)
def test_any_plain_reply_decodes_the_same_through_a_plan(layout, noise) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(len(noise))
    plans: dict = {}

    def make() -> bytes:
        outs = []
        for name, (datatype, dtype), shape in layout:
            data = rng.integers(0, 256, int(np.prod(shape)) * np.dtype(dtype).itemsize, dtype=np.uint8)
            array = data.view(dtype).reshape(shape) if dtype != "?" else (data % 2).astype("?").reshape(shape)
            outs.append((name, datatype, array))
        return reply("m", tuple(outs), model_version="1")

    for _ in range(3):
        data = make()
        assert same(decode_response(data, plans=plans), decode_response(data))
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 2] ^= noise[0] or 1
    try:
        expected = decode_response(bytes(corrupt))
    except Exception as exc:  # noqa: BLE001
        with pytest.raises(type(exc)):
            decode_response(bytes(corrupt), plans=plans)
    else:
        assert same(decode_response(bytes(corrupt), plans=plans), expected)


def test_each_length_is_learned_once_even_when_replies_differ_in_more_than_tensors(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from easnb import reply_plans

    tries = []
    learn = reply_plans.learn
    monkeypatch.setattr(reply_plans, "learn", lambda *a: tries.append(1) or learn(*a))
    plans: dict = {}
    for i in range(5):  # an echoed request id: the head differs every time, the length does not
        data = reply("m", (("y", "FP32", np.full((1, 2), i, "<f4")),), id=f"req-{i}")
        assert decode_response(data, plans=plans)["y"].tolist() == [[i, i]]
        assert decode_response(data, plans=plans).id == f"req-{i}"
    assert len(tries) == 1 and len(plans) == 1
