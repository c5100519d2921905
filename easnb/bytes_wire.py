"""V2's raw BYTES layout: each element as a 4-byte little-endian length and its bytes.

Both directions run in C for the common case, each checked before it is trusted:

- encoding lets ``marshal`` write the elements (its format for a list of ``bytes`` is the same
  layout with one type byte before each length) and drops those type bytes with numpy;
- decoding finds the lengths with numpy when no element holds a NUL byte (any UTF-8 text),
  verifies that they chain exactly from the first byte to the last, and splits in C.

Anything else (``str`` elements, NUL bytes in the data, an element over 16 MiB) takes the
plain path, so the result is always the same bytes.

>>> decode_bytes(encode_bytes([b"ab", b""]), 2).tolist()
[b'ab', b'']
"""

from __future__ import annotations

import marshal
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import TensorError

_LENGTH = struct.Struct("<I")
_LIST, _BYTES = ord("["), ord("s")  # marshal's type codes for list and bytes
_SPLIT_FROM = 64  # below this many elements the Python walk is as quick


def encode_bytes(items: Sequence[object], name: str = "tensor") -> bytes:
    """Raw BYTES contents from bytes (or str, encoded as UTF-8) elements."""
    if not len(items):
        return b""
    items = items if isinstance(items, list) else list(items)
    if len(items) < _SPLIT_FROM and all(type(item) is bytes for item in items):  # a prompt: a join beats numpy's set-up
        try:
            return b"".join([_LENGTH.pack(len(item)) + item for item in items])  # type: ignore[arg-type, operator]
        except struct.error:
            pass  # an element over 4 GiB: the numpy path says so
    encoded = _encode_with_marshal(items)
    if encoded is not None:
        return encoded
    exact = as_bytes_list(items, name)
    encoded = _encode_with_marshal(exact) if exact is not items else None  # str elements, now bytes
    return encoded if encoded is not None else _encode_with_numpy(exact, name)


def as_bytes_list(items: list[object], name: str = "tensor") -> list[bytes]:
    """The elements as exact ``bytes``: str as UTF-8; ``TensorError`` for anything else."""
    if all(type(item) is bytes for item in items):
        return items  # type: ignore[return-value]
    out = list(items)
    for i, item in enumerate(out):
        if isinstance(item, (bytes, bytearray, memoryview)):
            out[i] = bytes(item)
        elif isinstance(item, str):
            out[i] = item.encode("utf-8")
        else:
            raise TensorError(
                f"BYTES tensor {name!r} has a {type(item).__name__} at flat index {i}; "
                "BYTES elements must be bytes or str.",
                hint="Convert the values with str() or .encode() first.",
            )
    return out  # type: ignore[return-value]


def _encode_with_marshal(items: list[Any]) -> bytes | None:
    """marshal's list of bytes without its type bytes, or None when it is not exactly that."""
    try:
        lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
        stream = np.frombuffer(marshal.dumps(items, 2), dtype=np.uint8)  # version 2: no back-references
    except (TypeError, ValueError, OverflowError):
        return None
    marks = np.cumsum(lengths + 5) - lengths  # where each element's type byte sits
    if stream.size != 5 + marks[-1] + lengths[-1] or stream[0] != _LIST or not (stream[marks] == _BYTES).all():
        return None  # an element that is not exactly bytes (or a marshal we do not know)
    keep = np.ones(stream.size, dtype=bool)
    keep[:5] = False
    keep[marks] = False
    return stream[keep].tobytes()


def _encode_with_numpy(items: Sequence[bytes], name: str) -> bytes:
    n = len(items)
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=n)
    if lengths.max() > 0xFFFFFFFF:
        raise TensorError(f"BYTES tensor {name!r} has an element over 4 GiB, which V2 cannot carry.")
    payload = np.frombuffer(b"".join(items), dtype=np.uint8)
    out = np.empty(4 * n + payload.size, dtype=np.uint8)
    starts = np.arange(n, dtype=np.int64) * 4
    starts[1:] += np.cumsum(lengths[:-1])
    prefix_at = (starts[:, None] + np.arange(4)).reshape(-1)
    out[prefix_at] = lengths.astype("<u4").view(np.uint8)
    is_payload = np.ones(out.size, dtype=bool)
    is_payload[prefix_at] = False
    out[is_payload] = payload
    return out.tobytes()


def decode_bytes(buffer: bytes | memoryview, count: int, name: str = "tensor") -> np.ndarray:
    """An object array of ``count`` bytes elements from raw BYTES contents."""
    data = buffer if isinstance(buffer, bytes) else memoryview(buffer).tobytes()
    if count * 4 > len(data):  # each element needs at least its 4-byte length
        _explain_bad_bytes(data, count, name)
    items = _split_text(data, count) if count >= _SPLIT_FROM else None
    if items is None:
        items = _walk(data, count, name)
    return np.fromiter(items, dtype=object, count=count)


def _split_text(data: bytes, count: int) -> list[bytes] | None:
    """The elements, found with numpy, when none holds a NUL byte and each is under 16 MiB; else None.

    Then a length's last byte is its last zero before a non-zero byte, so those zeros give every
    length's position; the positions are trusted only if they chain from byte 0 to the end.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    zero = raw == 0
    zeros = np.count_nonzero(zero)
    if zeros > 4 * count:
        return None  # NUL bytes in the data: binary elements, walked instead
    heads = np.flatnonzero(zero[3:-1] > zero[4:])  # a zero, then a non-zero byte
    if zero[-1]:
        heads = np.append(heads, raw.size - 4)
    if heads.size != count or heads[0] != 0:
        return None
    prefixes = np.lib.stride_tricks.sliding_window_view(raw, 4)[heads]  # each length's 4 bytes, one gather
    ends = heads + 4 + prefixes.view("<u4").ravel()
    if ends[-1] != raw.size or not np.array_equal(ends[:-1], heads[1:]):
        return None
    if zeros != np.count_nonzero(prefixes == 0):
        return None  # a NUL inside an element: the split below would cut it
    marked = raw.copy()
    for offset in range(3):
        if prefixes[:, offset].any():  # lengths under 256 have zeros there already
            marked[heads + offset] = 0  # every length becomes the separator b"\0\0\0\0"
    pieces: list[bytes] = marked.tobytes().split(b"\0\0\0\0")
    if len(pieces) != count + 1:
        return None
    del pieces[0]  # the empty piece before the first separator
    return pieces


def _walk(data: bytes, count: int, name: str) -> list[bytes]:
    items: list[bytes] = []
    append, unpack, pos = items.append, _LENGTH.unpack_from, 0
    try:
        for _ in range(count):  # the hot loop: bounds are checked once, after it
            (length,) = unpack(data, pos)
            pos += 4
            append(data[pos : pos + length])
            pos += length
    except struct.error:
        pos = -1
    if pos != len(data):
        _explain_bad_bytes(data, count, name)
    return items


def _explain_bad_bytes(data: bytes, count: int, name: str) -> None:
    """Walk the BYTES buffer again, checking each step, to say exactly what is wrong."""
    pos, end = 0, len(data)
    for i in range(count):
        if pos + 4 > end:
            raise TensorError(
                f"BYTES tensor {name!r}: the raw contents end after {i} of {count} elements.",
                hint="The server sent fewer elements than its shape says.",
            )
        (length,) = _LENGTH.unpack_from(data, pos)
        pos += 4
        if pos + length > end:
            raise TensorError(
                f"BYTES tensor {name!r}: element {i} claims {length} bytes but only "
                f"{end - pos} remain (the length prefix runs past the buffer).",
            )
        pos += length
    raise TensorError(
        f"BYTES tensor {name!r}: {end - pos} bytes are left over after {count} elements.",
        hint="The server sent more data than its shape says.",
    )
