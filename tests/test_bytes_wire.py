"""The BYTES layout: the C-speed paths give exactly what a plain struct walk gives."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from easnb.bytes_wire import _encode_with_marshal, _split_text, decode_bytes, encode_bytes
from easnb.errors import TensorError


def reference(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


text = st.binary(min_size=1, max_size=40).filter(lambda b: b"\0" not in b)
anything = st.one_of(st.binary(max_size=300), text, st.just(b""), st.just(b"\0\0\0\0"))


@settings(max_examples=300, deadline=None)
@given(st.lists(anything, min_size=0, max_size=200))
def test_any_bytes_round_trip_exactly(items: list[bytes]) -> None:
    wire = encode_bytes(items)
    assert wire == reference(items)
    assert decode_bytes(wire, len(items)).tolist() == items


@settings(max_examples=200, deadline=None)
@given(st.lists(text, min_size=64, max_size=300))
def test_text_is_split_by_numpy_not_walked(items: list[bytes]) -> None:
    wire = reference(items)
    assert _encode_with_marshal(items) == wire
    assert _split_text(wire, len(items)) == items


@pytest.mark.parametrize(
    "items",
    [
        [b"abc"] * 63 + [b"ends with NUL\0"],  # a NUL inside: walked
        [b""] * 100,  # nothing but lengths
        [b"x" * 256] * 70,  # a length whose low byte is zero
        [b"a", b""] * 40 + [b"\x01" * 300],
        [b"\0" * 5] * 80,
    ],
)
def test_cases_the_split_must_refuse_or_get_right(items: list[bytes]) -> None:
    wire = reference(items)
    assert _split_text(wire, len(items)) in (None, items)
    assert decode_bytes(wire, len(items)).tolist() == items


def test_marshal_path_refuses_what_it_would_get_wrong() -> None:
    class Sub(bytes):
        pass

    for odd in (["a", b"b"], [b"a", 3], [b"a", memoryview(np.zeros(2, "<u4"))]):
        assert _encode_with_marshal(odd) is None
    for same in ([b"a", bytearray(b"b")], [b"a", Sub(b"b")]):  # marshal writes these as bytes
        assert _encode_with_marshal(same) == reference([b"a", b"b"])
    assert encode_bytes(["é", bytearray(b"b"), Sub(b"c")]) == reference(["é".encode(), b"b", b"c"])
    with pytest.raises(TensorError, match="int at flat index 1"):
        encode_bytes([b"a", 3])


def test_split_refuses_a_buffer_that_does_not_chain() -> None:
    wire = bytearray(reference([b"abcd"] * 100))
    wire[8 * 4] = 9  # element 4 now claims 9 bytes
    assert _split_text(bytes(wire), 100) is None
    with pytest.raises(TensorError):
        decode_bytes(bytes(wire), 100)


def test_a_large_text_tensor_decodes_to_an_object_array() -> None:
    items = [f"row {i}".encode() for i in range(10_000)]
    out = decode_bytes(np.frombuffer(reference(items), np.uint8).data, len(items))
    assert out.dtype == object and out.tolist() == items


@pytest.mark.parametrize("sizes", [[300] * 70, [70_000, 5, 300] * 30, list(range(3, 600, 7))])  # no multiple of 256: its zero low byte is refused, then walked
def test_long_text_elements_are_split_too(sizes: list[int]) -> None:
    items = [bytes([97 + i % 26]) * size for i, size in enumerate(sizes)]  # lengths with a second and third byte
    assert _split_text(reference(items), len(items)) == items
