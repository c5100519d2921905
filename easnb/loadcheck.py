"""Whether a load test's replies are replies at all: one easnb cannot read counts as an error, not a success.

A load test does not decode its replies (that would measure numpy, not the server), but it checks each
one's structure:

- a V2 ``ModelInferResponse`` must parse, have one raw buffer per output (or none), known datatypes,
  shapes without negative dimensions, and raw buffers or typed contents that hold as many elements as
  the shape says (a raw BYTES buffer's element lengths walked). A reply laid out as one already checked
  (the same length, the same bytes but for its raw buffers' contents) is known to pass after a few byte
  comparisons: a numeric buffer's contents cannot be wrong, but a BYTES one's lengths are not walked
  again (the one thing such a reply could get wrong);
- any other method's reply must parse as its response message (upb: about a microsecond).

A reply that fails counts under the kind ``UNREADABLE_REPLY``, its reason kept for the report.

>>> infer_replies()(b"\\xff\\xff")   # doctest: +ELLIPSIS
"The server's reply is not a valid ModelInferResponse: ..."
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError, Message

from . import wire
from ._proto import ModelInferResponse
from .dtypes import DATATYPES
from .bytes_wire import decode_bytes
from .errors import EasnbError, ServerError

#: The error kind of a reply easnb cannot read (beside gRPC's codes in a level's errors).
UNREADABLE = "UNREADABLE_REPLY"
#: A streamed generation that ended without any ``text_output``: its replies do not follow the conventions.
NO_TEXT = "NO_TEXT_OUTPUT"
#: A reason is kept to this many characters (a server's text inside it is the server's).
REASON = 300
#: Reply layouts remembered (by length) at most; replies of other lengths are checked in full.
LAYOUTS = 64
_RAW_TAG = wire.varint(wire.RAW_OUTPUT_FIELD << 3 | 2)
_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxlist = 80, 8

Layout = tuple[bytes, tuple[tuple[bytes, int], ...]]  # the bytes before the raw fields; each one's tag+length and size


def infer_replies(layouts: dict[int, Layout | None] | None = None) -> Callable[[bytes], str]:
    """A check of ``ModelInferResponse`` bytes: ``""``, or why easnb cannot read them (see the module).

    ``layouts`` (by length; None: that length's replies are checked in full) is where it keeps what it learnt.
    """
    known: dict[int, Layout | None] = {} if layouts is None else layouts

    def check(data: bytes) -> str:  # a closure, and _fits inlined: each call costs the load test's hot path
        layout = known.get(len(data))
        if layout is not None and data.startswith(layout[0]):
            pos = len(layout[0])
            for prefix, size in layout[1]:
                if not data.startswith(prefix, pos):
                    break
                pos += len(prefix) + size
            else:
                return ""
        learn = len(data) not in known and len(known) < LAYOUTS
        problem, learnt = _check(data, learn)
        if learn and not problem:
            known[len(data)] = learnt
        return problem

    return check


def _fits(data: bytes, layout: Layout) -> bool:
    """Whether ``data`` (as long as the reply ``layout`` came from) has its bytes but for the raw contents."""
    head, raws = layout
    if not data.startswith(head):
        return False
    pos = len(head)
    for prefix, size in raws:
        if not data.startswith(prefix, pos):
            return False
        pos += len(prefix) + size
    return True


def _check(data: bytes, learn: bool = False) -> tuple[str, Layout | None]:
    """Why ``data`` is not a readable reply (``""`` if it is) and, if it is and ``learn``, its layout when it has one."""
    try:
        response, raws = wire.split(data, ModelInferResponse, wire.RAW_OUTPUT_FIELD)
    except ServerError as exc:
        return exc.message, None
    outputs = response.outputs
    if raws and len(raws) != len(outputs):
        return f"The reply has {len(outputs)} outputs but {len(raws)} raw buffers; V2 needs one per output.", None
    for i, tensor in enumerate(outputs):
        dt = DATATYPES.get(tensor.datatype)
        if dt is None:
            return f"Output {_short(tensor.name)} has datatype {_short(tensor.datatype)}, which V2 does not have.", None
        count = 1
        for dim in tensor.shape:
            if dim < 0:
                return f"Output {_short(tensor.name)} has shape {_short(list(tensor.shape))} with a negative dimension.", None
            count *= dim
        if raws and dt.name == "BYTES":
            try:  # each element's length, walked (once for a layout: a reply that fits it is not walked again)
                decode_bytes(raws[i], count, tensor.name[:80])
            except EasnbError as exc:
                return exc.message, None
        elif raws:
            size = raws[i].nbytes
            if size != count * dt.dtype.itemsize:
                return (f"Output {_short(tensor.name)} ({dt.name}, shape {_short(list(tensor.shape))}) cannot be held in "
                        f"{size} bytes of raw contents."), None
        elif count:
            held = len(getattr(tensor.contents, dt.contents)) if dt.contents else 0
            if held != count:
                return f"Output {_short(tensor.name)} has shape {_short(list(tensor.shape))} but {held} values.", None
    return "", _layout(data, response, raws) if learn else None


def _layout(data: bytes, response: Message, raws: list[memoryview]) -> Layout | None:
    """The reply's layout if its raw fields come last, after bytes that parse to the rest of it.

    The tail is not compared with the raw buffers (no copy of a large reply): a head that parses on its own
    to the reply without raw fields holds none, so the raw fields whose tags and lengths follow it are the
    reply's, in order, whatever their contents."""
    layout = tuple((_RAW_TAG + wire.varint(raw.nbytes), raw.nbytes) for raw in raws)
    start = len(data) - sum(len(prefix) + size for prefix, size in layout)
    if start < 0 or not _fits(data, (data[:start], layout)):
        return None
    head = data[:start]
    try:
        if ModelInferResponse.FromString(head) != response:  # the head holds no raw field of its own
            return None
    except DecodeError:
        return None
    return head, layout


def _short(value: Any) -> str:
    """A server's name or shape in a reason: its repr, cut short (a huge one is not copied whole)."""
    return _REPR.repr(value)


def message_problem(message_class: Any) -> Callable[[bytes], str]:
    """A check that ``data`` parses as ``message_class`` (``""``, else why not)."""
    parse, name = message_class.FromString, message_class.DESCRIPTOR.name

    def problem(data: bytes) -> str:
        try:
            parse(data)
        except DecodeError as exc:
            return f"The server's reply is not a valid {name}: {exc}."
        return ""

    return problem


def reason(problem: str) -> str:
    """A reason as kept for the report: at most ``REASON`` characters."""
    return problem if len(problem) <= REASON else problem[: REASON - 1] + "\u2026"
