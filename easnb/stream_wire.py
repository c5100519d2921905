"""Triton's ``ModelStreamInferResponse`` on the wire, read and written without a message class.

The message is ``string error_message = 1; ModelInferResponse infer_response = 2;``: two
length-delimited fields, so the inner response stays a slice of the received bytes and goes
to easnb's own ModelInfer decoder. Triton's flags live in parameters, named here once.

>>> encode_stream_response(b"\\x0a\\x01m", "boom") == b"\\x0a\\x04boom\\x12\\x03\\x0a\\x01m"
True
>>> decode_stream_response(b"\\x0a\\x04boom\\x12\\x03\\x0a\\x01m")
('boom', b'\\n\\x01m')
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from ._proto import ModelInferResponse
from .errors import ServerError
from .stream_plans import inner_reply
from .wire import read_varint, varint

#: Response parameter: this is the request's last response.
FINAL = "triton_final_response"
#: Request parameter: end every request with a response carrying ``FINAL``, empty if need be.
ENABLE_EMPTY_FINAL = "triton_enable_empty_final_response"
#: Header: the first error ends the whole stream with a gRPC status instead of an in-stream message.
GRPC_ERROR_HEADER = "triton_grpc_error"
#: The unary ModelInfer refusal Triton gives for a decoupled model (UNIMPLEMENTED).
DECOUPLED_REFUSAL = "ModelInfer RPC doesn't support models with decoupled transaction policy"


def encode_stream_response(infer_response: bytes, error_message: str = "") -> bytes:
    """A serialized ModelStreamInferResponse around an already serialized ModelInferResponse."""
    parts: list[bytes] = []
    if error_message:
        text = error_message.encode("utf-8")
        parts += (b"\x0a", varint(len(text)), text)
    if infer_response:
        parts += (b"\x12", varint(len(infer_response)), infer_response)
    return b"".join(parts)


def decode_stream_response(data: bytes) -> tuple[str, bytes | memoryview]:
    """``(error_message, infer_response bytes)`` of a ModelStreamInferResponse; unknown fields skipped.

    Raises ``ServerError`` for bytes that are not such a message (a truncated or foreign reply).
    """
    error = ""
    inner: bytes | memoryview = b""
    view, pos, end = memoryview(data), 0, len(data)
    try:
        while pos < end:
            key, pos = read_varint(data, pos)
            kind = key & 7
            if kind == 2:
                length, pos = read_varint(data, pos)
                if pos + length > end:
                    raise ValueError("truncated field")
                if key >> 3 == 1:
                    error = bytes(view[pos : pos + length]).decode("utf-8", "replace")
                elif key >> 3 == 2:
                    inner = view[pos : pos + length]
                pos += length
            elif kind == 0:
                _, pos = read_varint(data, pos)
            elif kind in (1, 5):
                pos += 8 if kind == 1 else 4
            else:
                raise ValueError(f"wire type {kind}")
    except (ValueError, IndexError) as exc:
        raise ServerError(
            f"The server's stream reply is not a valid ModelStreamInferResponse ({exc}).",
            hint="The server, or something between it and you, sent a corrupt message.",
        ) from None
    return error, inner


_FINAL_ENTRY = b"\x0a\x15" + FINAL.encode()  # a parameters entry's key field: triton_final_response
_FINAL_VALUES = {_FINAL_ENTRY + b"\x12\x02\x08\x01": True, _FINAL_ENTRY + b"\x12\x02\x08\x00": False}


def id_and_final(inner: bytes) -> tuple[str, bool] | None:
    """A ModelInferResponse's ``(id, final flag)`` read off its bytes, skipping the tensors; None for a
    reply not written plainly (a field other than length-delimited ones, an unusual parameters entry,
    a truncated field), which the caller parses in full.

    >>> id_and_final(b"\\x1a\\x01r\\x22\\x1b" + _FINAL_ENTRY + b"\\x12\\x02\\x08\\x01")
    ('r', True)
    """
    pos, end = 0, len(inner)
    request_id, final = "", False
    try:
        while pos < end:
            tag, length = inner[pos], inner[pos + 1]
            if tag & 7 != 2 or tag > 0x7F:
                return None
            if length < 0x80:
                start = pos + 2
            else:
                length, start = read_varint(inner, pos + 1)
            pos = start + length
            if pos > end:
                return None
            if tag == 0x1A:  # id
                request_id = inner[start:pos].decode()
            elif tag == 0x22:  # a parameters entry: key (field 1) first, as protobuf writes it
                if length == 0 or inner[start] != 0x0A:
                    return None
                if inner.startswith(_FINAL_ENTRY, start):
                    value = _FINAL_VALUES.get(inner[start:pos])
                    if value is None:
                        return None
                    final = value
    except (IndexError, ValueError):  # ValueError covers UnicodeDecodeError
        return None
    return request_id, final


class Heads:
    """A shared stream's view of replies (easnb.shared_stream): each request's id and final flag, from the bytes
    before a reply's tensors (its head) seen before, so a token costs a comparison and a walk over its raw fields."""

    def __init__(self) -> None:
        self.known: list[tuple[bytes, str, bool]] = []  # the latest first

    def read(self, data: bytes) -> tuple[str, bool, str]:
        """A reply's ``(request id, final flag, error message)``; ``ServerError`` for one easnb cannot read."""
        inner = inner_reply(data)  # the usual reply: no error message
        if inner is None:
            error, message = decode_stream_response(data)
            return (*_id_and_final(bytes(message)), error)
        for head, request_id, final in self.known:
            if inner.startswith(head) and raw_tail(inner, len(head)):
                return request_id, final, ""
        found = id_and_final(inner)
        if found is None:
            return (*_id_and_final(inner), "")
        start = raw_start(inner)
        if start is not None:
            del self.known[HEADS - 1 :]
            self.known.insert(0, (inner[:start], *found))
        return (*found, "")


#: How many reply heads a shared stream keeps (a token's and a final one's for a few interleaved requests).
HEADS = 16


def raw_start(inner: bytes) -> int | None:
    """Where a plainly written ModelInferResponse's raw output fields (field 6) begin, if only they follow."""
    pos, end, start = 0, len(inner), None
    while pos < end:
        tag, length = inner[pos], inner[pos + 1]
        if length > 0x7F:
            return None
        if tag == _RAW_TAG:
            start = pos if start is None else start
        else:
            start = None
        pos += 2 + length
    return start if pos == end else None


def raw_tail(inner: bytes, pos: int) -> bool:
    """Whether ``inner`` from ``pos`` on is raw output fields (field 6) with one-byte lengths, and nothing else."""
    end = len(inner)
    while pos < end:
        if inner[pos] != _RAW_TAG or pos + 1 == end or inner[pos + 1] > 0x7F:
            return False
        pos += 2 + inner[pos + 1]
    return pos == end


_RAW_TAG = 0x32  # ModelInferResponse.raw_output_contents, length-delimited


def _id_and_final(inner: bytes) -> tuple[str, bool]:
    """A reply's request id and final flag, parsed in full (what ``id_and_final`` leaves)."""
    try:
        head = ModelInferResponse.FromString(inner)
    except DecodeError:
        raise ServerError("The server's stream reply holds no valid ModelInferResponse.",
                          hint="The server, or something between it and you, sent a corrupt message.") from None
    final = head.parameters.get(FINAL)
    return head.id, final is not None and final.bool_param
