"""The ModelInfer fast path: raw tensor bytes in and out of the wire format directly.

Protobuf copies a ``bytes`` field several times on serialize and parse. The raw
contents fields are the last fields of their messages (7 in ModelInferRequest,
6 in ModelInferResponse), so a request is the serialized rest of the message
followed by one length-delimited field per buffer: byte for byte what protobuf
writes. A reply is scanned field by field at the top level only; raw buffers stay
views of the received bytes and the rest goes to protobuf. Anything unusual is
handed to protobuf whole, so this parses whatever protobuf parses.
"""

from __future__ import annotations

import functools

from collections.abc import Iterable
from typing import Any

from google.protobuf.message import DecodeError, Message

from .errors import ServerError

RAW_INPUT_FIELD = 7  # ModelInferRequest.raw_input_contents
RAW_OUTPUT_FIELD = 6  # ModelInferResponse.raw_output_contents
#: Below this size protobuf's own copies cost less than our Python-level scan.
SMALL = 64 * 1024


class _Unusual(ValueError):
    """The scan met something it leaves to protobuf."""


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def join(head: bytes, field: int, buffers: Iterable[Any]) -> bytes:
    """``head`` followed by ``buffers`` as repeated bytes ``field``; one copy of each buffer."""
    tag = varint(field << 3 | 2)
    parts = [head]
    for buffer in buffers:
        parts += (tag, varint(memoryview(buffer).nbytes), buffer)
    return b"".join(parts)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it; ``ValueError`` past 64 bits, ``IndexError`` past the end."""
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Unusual


def _scan(data: bytes, field: int) -> tuple[bytes, list[memoryview]]:
    view = memoryview(data)
    head: list[bytes] = []
    raws: list[memoryview] = []
    pos = run = 0
    end = len(data)
    while pos < end:
        start = pos
        key, pos = read_varint(data, pos)
        number, kind = key >> 3, key & 7
        if number == 0:
            raise _Unusual
        if kind == 0:
            _, pos = read_varint(data, pos)
        elif kind == 1:
            pos += 8
        elif kind == 5:
            pos += 4
        elif kind == 2:
            length, pos = read_varint(data, pos)
            if number == field:
                if pos + length > end:
                    raise _Unusual
                head.append(data[run:start])
                raws.append(view[pos : pos + length])
                pos = run = pos + length
                continue
            pos += length
        else:
            raise _Unusual
        if pos > end:
            raise _Unusual
    head.append(data[run:end])
    return b"".join(head), raws


def split(data: bytes, message_class: type[Message], field: int) -> tuple[Message, list[memoryview]]:
    """Parse ``data``: the message without ``field``, and that field's buffers as views."""
    if len(data) >= SMALL:
        try:
            head, raws = _scan(data, field)
            return message_class.FromString(head), raws
        except (_Unusual, IndexError, DecodeError):
            pass
    try:
        message = message_class.FromString(data)
    except DecodeError as exc:
        raise ServerError(
            f"The server's reply is not a valid {message_class.DESCRIPTOR.name}: {exc}.",
            hint="The server, or something between it and you, sent a corrupt message.",
        ) from None
    name = _field_name(message_class, field)  # type: ignore[arg-type]  # message classes hash by identity
    raws = [memoryview(b) for b in getattr(message, name)]
    message.ClearField(name)
    return message, raws


@functools.lru_cache(maxsize=None)
def _field_name(message_class: type[Message], field: int) -> str:
    return str(message_class.DESCRIPTOR.fields_by_number[field].name)
