"""Small replies decoded from a layout learned once: the usual reply costs a few byte comparisons.

A model answers the same shapes again and again, so its replies differ only in the raw
tensor bytes at the end. The first reply of a length is decoded in full and checked; if it
is plain (numeric raw outputs after everything else, no parameters), its head and each
output's place are kept. A later reply of the same length is read from that layout only if
it starts with the very same head bytes and every raw field's tag and length are where the
layout says, which proves it parses to the same message with new tensor bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from google.protobuf.message import DecodeError, Message

from . import wire
from ._proto import ModelInferResponse
from .dtypes import DATATYPES
from .results import InferResult

#: How many reply layouts a cache keeps before it starts again.
PLANS = 64
_PLAIN = {d.name: d.dtype for d in DATATYPES.values() if d.name not in ("BYTES", "BF16")}
_RAW_TAG = bytes([wire.RAW_OUTPUT_FIELD << 3 | 2])


@dataclass(frozen=True)
class ReplyPlan:
    """Where a reply's raw outputs sit, for replies that start with ``head``."""

    head: bytes
    model_name: str
    model_version: str
    id: str
    outputs: tuple[tuple[str, str, np.dtype, tuple[int, ...], int, bytes], ...]  # name, datatype, dtype, shape, count, tag+length

    def decode(self, data: bytes, copy: bool) -> InferResult | None:
        """The result, or None when ``data`` does not have this layout."""
        if not data.startswith(self.head):
            return None
        pos = len(self.head)
        arrays, datatypes = {}, {}
        for name, datatype, dtype, shape, count, prefix in self.outputs:
            if not data.startswith(prefix, pos):
                return None
            pos += len(prefix)
            array = np.frombuffer(data, dtype, count, pos).reshape(shape)
            pos += array.nbytes
            arrays[name] = array.copy() if copy else array
            datatypes[name] = datatype
        return InferResult(self.model_name, self.model_version, self.id, arrays, datatypes, {}, {})


def learn(data: bytes, response: Message, raws: list[memoryview], result: InferResult) -> ReplyPlan | None:
    """The layout of ``data`` (already decoded in full as ``response``/``result``), if it is plain."""
    if not raws or len(raws) != len(result.outputs) or response.parameters:
        return None
    outputs: list[tuple[str, str, np.dtype, tuple[int, ...], int, bytes]] = []
    tail: list[bytes | memoryview] = []
    for tensor, raw in zip(response.outputs, raws):
        dtype = _PLAIN.get(tensor.datatype)
        if dtype is None or tensor.parameters or tensor.HasField("contents"):
            return None
        prefix = _RAW_TAG + wire.varint(raw.nbytes)
        outputs.append((tensor.name, tensor.datatype, dtype, tuple(tensor.shape), raw.nbytes // dtype.itemsize, prefix))
        tail += (prefix, raw)
    tail_bytes = b"".join(tail)
    if not data.endswith(tail_bytes):
        return None  # the raw fields are not all at the end, in order
    head = data[: len(data) - len(tail_bytes)]
    try:
        if ModelInferResponse.FromString(head) != response:  # the head alone is the rest of the reply
            return None
    except DecodeError:  # a head that does not parse on its own is simply not learned
        return None
    return ReplyPlan(head, result.model_name, result.model_version, result.id, tuple(outputs))
