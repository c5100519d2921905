"""Token-sized stream replies read from a layout learned once: a few byte comparisons per token.

A streaming model's responses differ only in their tensor bytes: the model name, version,
parameters (``triton_final_response: false``) and the outputs' names, datatypes and
shapes repeat; the id is each request's own. Protobuf writes fields in number order, so the
raw output contents (field 6) come last. The first reply of a kind is decoded in full and
checked; its bytes before the raw fields (the head) are kept with what they decode to, the
id's field cut out (a head with an id's field anywhere but right after the name and version
is not learned: protobuf keeps the last one). A later reply is read from the plan only if it
starts with the very same head (any UTF-8 id in the id's place) and the rest is exactly one raw
field per output, each holding what its datatype and shape need (BYTES: the length prefixes
add up); that proves it parses to the same message with new tensor bytes. Anything else goes
to the full decoder, which says what is wrong. A connection keeps the layouts its streams
learned, ``PLANS`` per model for up to ``MODELS`` models (``Plans(shared, model)``), so a
request's first reply is read from one too. Such a reply's arrays are made when first asked
for (``StreamOutputs``): a token's cost on arrival is the byte checks, as tritonclient's
``InferResult`` makes its arrays in ``as_numpy``.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass, field
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from . import wire
from ._proto import ModelInferResponse
from .bytes_wire import decode_bytes
from .dtypes import DATATYPES
from .results import InferResult
from .tensors import element_count

#: How many layouts a stream, and its connection per model, keeps (a token reply, the final one, an odd one or two).
PLANS = 4
#: How many models' layouts a connection keeps before it starts again.
MODELS = 64
_RAW_TAG = wire.RAW_OUTPUT_FIELD << 3 | 2
_ID_TAG = 3 << 3 | 2  # ModelInferResponse.id
_new = object.__new__
_new_dict = dict.__new__
_update = dict.update
_u32 = struct.Struct("<I").unpack_from
ONE_TEXT, TEXTS = -1, -2  # StreamPlan.sizes for a one-element BYTES output and for one of several elements
_OBJECT = np.dtype(object)
_NUMERIC = {d.name: d.dtype for d in DATATYPES.values() if d.name not in ("BYTES", "BF16")}


@dataclass(frozen=True)
class StreamPlan:
    """What replies starting with ``prefix``, an id, then ``suffix`` decode to, apart from the id and their raw
    tensor bytes."""

    prefix: bytes  # the model's name and version
    suffix: bytes  # the parameters and the outputs' names, datatypes and shapes
    model_name: str
    model_version: str
    parameters: dict[str, Any]
    outputs: tuple[tuple[str, str, Any, tuple[int, ...], int], ...]  # name, datatype, numpy dtype or None (BYTES), shape, count
    datatypes: dict[str, str]
    #: the fields every result of this layout shares as they are (strings), set once
    names: dict[str, str] = field(init=False, repr=False, compare=False)
    #: per output, what ``decode`` checks: a numeric output's byte count, ``ONE_TEXT``, or ``TEXTS`` (several BYTES elements)
    sizes: tuple[int, ...] = field(init=False, repr=False, compare=False)
    #: every output numeric or one BYTES element: ``decode`` checks it in full and its arrays are made when asked for
    simple: bool = field(init=False, repr=False, compare=False)
    #: some output is numeric: its array is a view of the reply's bytes unless copied
    views: bool = field(init=False, repr=False, compare=False)
    #: each one-element BYTES output's place in ``StreamOutputs.spans``
    texts: dict[str, int] = field(init=False, repr=False, compare=False)
    #: each output's name with None: a StreamOutputs before its arrays are made
    unmade: dict[str, None] = field(init=False, repr=False, compare=False)
    #: held while a StreamOutputs of this layout makes its arrays (two threads asking at once get the same ones)
    making: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sizes = tuple(count * dtype.itemsize if dtype is not None else ONE_TEXT if count == 1 else TEXTS
                      for _, _, dtype, _, count in self.outputs)
        derived = {
            "names": {"model_name": self.model_name, "model_version": self.model_version},
            "sizes": sizes, "simple": TEXTS not in sizes, "views": any(size >= 0 for size in sizes),
            "texts": {o[0]: 2 * i for i, (o, size) in enumerate(zip(self.outputs, sizes)) if size == ONE_TEXT},
            "unmade": dict.fromkeys(o[0] for o in self.outputs), "making": threading.Lock(),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def decode(self, data: bytes, start: int, copy: bool, bytes_as_str: bool) -> InferResult | None:
        """The result of the reply in ``data`` from ``start`` on, or None when it does not have this layout (the
        caller decodes it in full).

        The bytes are checked here, on arrival; the arrays are made when first asked for (``StreamOutputs``),
        unless an output is BYTES of several elements, whose length prefixes are walked (and the arrays
        made) now."""
        prefix = self.prefix
        if not data.startswith(prefix, start):
            return None
        pos, end = start + len(prefix), len(data)
        request_id = ""
        # the id's field and the raw fields below are read inline, not by one helper: a call per field costs every token
        if data[pos] == _ID_TAG:  # a byte past the end raises IndexError: not this layout (Plans.decode)
            length = data[pos + 1]
            if length < 0x80:
                pos += 2
            else:
                length, pos = _varint(data, pos + 1)
            stop = pos + length
            if length < 0 or stop > end:
                return None
            try:
                request_id = data[pos:stop].decode()
            except UnicodeDecodeError:  # protobuf refuses it: the full decoder says so
                return None
            pos = stop
        suffix = self.suffix
        if not data.startswith(suffix, pos):
            return None
        pos += len(suffix)
        spans: list[int] = []
        for need in self.sizes:  # a byte past the end raises IndexError: not this layout (Plans.decode)
            if data[pos] != _RAW_TAG:
                return None
            length = data[pos + 1]
            if length < 0x80:  # a one-byte length, as a token's is
                pos += 2
            else:
                length, pos = _varint(data, pos + 1)
            stop = pos + length
            if length < 0 or stop > end:
                return None
            if need >= 0:  # numeric: exactly its bytes
                if length != need:
                    return None
            elif need == ONE_TEXT and (length < 4 or _u32(data, pos)[0] != length - 4):  # one prefix, that many bytes
                return None
            spans.append(pos)
            spans.append(stop)
            pos = stop
        if pos != end:
            return None
        outputs: Mapping[str, np.ndarray]
        if self.simple:
            lazy = _new_dict(StreamOutputs)
            lazy.plan, lazy.data, lazy.spans, lazy.options, lazy.made = self, data, spans, (copy, bytes_as_str), False
            _update(lazy, self.unmade)
            outputs = lazy
        else:
            try:
                outputs = self.arrays(data, spans, copy, bytes_as_str)
            except Exception:  # the full decoder raises the typed error
                return None
        result = _new(InferResult)  # the frozen dataclass's __init__ sets each field through object.__setattr__
        fields = result.__dict__
        fields.update(self.names)
        fields["id"], fields["outputs"], fields["datatypes"] = request_id, outputs, self.datatypes.copy()
        fields["parameters"], fields["output_parameters"] = self.parameters.copy(), {}
        return result

    def arrays(self, data: bytes, spans: list[int], copy: bool, bytes_as_str: bool) -> dict[str, np.ndarray]:
        """The outputs of ``data``, checked by ``decode``; ``spans``: each output's start and stop in ``data``, in turn."""
        arrays = {}
        for i, (name, _, dtype, shape, count) in enumerate(self.outputs):
            start, stop = spans[2 * i], spans[2 * i + 1]
            if dtype is None:  # BYTES
                if count == 1:
                    value = data[start + 4 : stop]
                    array: np.ndarray = np.empty(1, _OBJECT)
                    array[0] = value.decode("utf-8", "replace") if bytes_as_str else value
                    if shape != (1,):
                        array = array.reshape(shape)
                else:
                    array = decode_bytes(memoryview(data)[start:stop], count, name)
                    if bytes_as_str:
                        array = np.array([v.decode("utf-8", "replace") for v in array], dtype=object)
                    array = array.reshape(shape)
            else:
                array = np.frombuffer(data, dtype, count, start).reshape(shape)
                if copy:
                    array = array.copy()
            arrays[name] = array
        return arrays


class StreamOutputs(dict[str, np.ndarray]):
    """A streamed reply's outputs: a ``dict`` of name to numpy array like any result's (``pandas.DataFrame(...)``,
    ``json``, ``**``, ``|`` and changes all see the arrays). The reply's bytes were checked against its layout on
    arrival; the arrays are made the first time anything reads the dict (once, whichever thread asks first), so a
    token nobody looks at (``conn.generate`` reads its text straight from the bytes) costs no numpy work. Pickled
    or copied, it is the plain dict it stands for. Until then the dict holds each name with None (so its length,
    ``in`` and json's C encoder, which asks the length first, are right without making anything). Once the arrays
    are made, the reply's bytes are let go unless an array is a view of them."""

    __slots__ = ("plan", "data", "spans", "options", "made")
    plan: StreamPlan
    data: bytes | None  # None once the arrays are made and none of them is a view of it
    spans: list[int]  # each output's start and stop in ``data``, in turn
    options: tuple[bool, bool]  # copy, bytes_as_str
    made: bool

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # type(outputs)(...), as dataclasses.asdict calls it: a dict
        return dict(*args, **kwargs)

    def arrays(self) -> dict[str, np.ndarray]:
        """The outputs, made now if they were not yet (the dict itself)."""
        if not self.made:
            with self.plan.making:  # two threads asking at once get the same arrays
                if not self.made:
                    data = self.data
                    assert data is not None
                    dict.update(self, self.plan.arrays(data, self.spans, *self.options))
                    self.made = True
                    if self.options[0] or not self.plan.views:
                        self.data = None
        return self

    def text(self, name: str) -> str | None:
        """Output ``name``'s one element as the reply's text; None unless it is one BYTES element."""
        at = self.plan.texts.get(name)
        if at is None:
            return None
        data = self.data
        if data is None:  # let go of once the arrays were made: read from them
            array = dict.get(self, name)
            if array is None or array.size != 1:
                return None
            value = array.item()
            return value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")
        return data[self.spans[at] + 4 : self.spans[at + 1]].decode("utf-8", "replace")

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self.arrays(), name, default) if dict.__contains__(self, name) else default

    def __iter__(self) -> Iterator[str]:  # the names are there already; defined here, dict(...) and ** read through it
        return dict.__iter__(self)

    def __eq__(self, other: object) -> bool:
        if type(other) is StreamOutputs:
            other.arrays()
        return dict.__eq__(self.arrays(), other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __reduce__(self) -> tuple[Any, ...]:
        return dict, (dict(self.arrays()),)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython shows it as the dict it stands for
        printer.pretty(dict(self.arrays()))

    @classmethod
    def fromkeys(cls, *args: Any) -> Any:
        return dict.fromkeys(*args)


def _made_first(name: str) -> Any:
    method = getattr(dict, name)

    def made_first(self: StreamOutputs, *args: Any, **kwargs: Any) -> Any:
        return method(self.arrays(), *args, **kwargs)

    made_first.__name__ = made_first.__qualname__ = name
    return made_first


# Every other way of reading a value or changing the dict makes the arrays first.
for _name in ("__getitem__", "__repr__", "__or__", "__ror__", "__ior__", "values",
              "items", "copy", "__setitem__", "__delitem__", "pop", "popitem", "setdefault", "update", "clear"):
    setattr(StreamOutputs, _name, _made_first(_name))


def learn(data: bytes | memoryview, result: InferResult) -> StreamPlan | None:
    """The layout of ``data``, already decoded in full (and checked) as ``result``; None if it is not plain."""
    if result.output_parameters:
        return None
    try:
        message = ModelInferResponse.FromString(bytes(data))
    except DecodeError:
        return None
    raws = list(message.raw_output_contents)
    if len(raws) != len(message.outputs):
        return None
    outputs = []
    for tensor in message.outputs:
        if tensor.parameters or tensor.HasField("contents") or tensor.datatype not in (*_NUMERIC, "BYTES"):
            return None
        shape = tuple(tensor.shape)
        outputs.append((tensor.name, tensor.datatype, _NUMERIC.get(tensor.datatype), shape, element_count(shape, tensor.name)))
    tail = b"".join(bytes([_RAW_TAG]) + wire.varint(len(raw)) + raw for raw in raws)
    data = bytes(data)
    if not data.endswith(tail):
        return None  # the raw fields are not all at the end, in order
    head = data[: len(data) - len(tail)]
    del message.raw_output_contents[:]
    try:
        if ModelInferResponse.FromString(head) != message:  # the head alone is the rest of the reply
            return None
    except DecodeError:
        return None
    parts = _without_id(head, message)
    if parts is None:
        return None
    names = [o[0] for o in outputs]
    if len(set(names)) != len(names) or set(names) != set(result.outputs):
        return None
    return StreamPlan(*parts, result.model_name, result.model_version, dict(result.parameters),
                      tuple(outputs), dict(result.datatypes))


def _without_id(head: bytes, message: Any) -> tuple[bytes, bytes] | None:
    """``(prefix, suffix)``: ``head`` is the prefix (the name's and version's fields), the id's field if any,
    then the suffix, which holds no id's field; None otherwise."""
    prefix = ModelInferResponse(model_name=message.model_name, model_version=message.model_version).SerializeToString()
    if not head.startswith(prefix):
        return None
    pos = len(prefix)
    if head[pos : pos + 1] == bytes([_ID_TAG]):
        try:
            length, start = _varint(head, pos + 1)
        except IndexError:
            return None
        if length < 0 or head[start : start + length] != message.id.encode():
            return None
        pos = start + length
    suffix = head[pos:]
    idless = ModelInferResponse()
    idless.CopyFrom(message)
    idless.id = ""
    if ModelInferResponse.FromString(prefix + suffix) != idless:
        return None
    # an id's field in the suffix (even ``1a 00``) would win over the id's place, as protobuf keeps the last one
    if ModelInferResponse.FromString(prefix + b"\x1a\x01?" + suffix).id != "?":
        return None
    return prefix, suffix


class Plans:
    """One stream's learned layouts, tried in turn; a reply no layout fits is decoded in full and learned.

    ``shared`` (a connection's dict, by ``key``, the model) gives a new stream the layouts earlier streams
    learned, and gets the ones this stream learns."""

    def __init__(self, shared: dict[Any, tuple[StreamPlan, ...]] | None = None, key: Any = None) -> None:
        self.shared, self.key = shared, key
        self.known: list[StreamPlan] = list(shared.get(key, ())) if shared is not None else []
        self.misses = self.learned = 0  # tries, and layouts this stream learned: at most 4 * PLANS and PLANS

    def decode(self, data: bytes, start: int, copy: bool, bytes_as_str: bool) -> InferResult | None:
        for plan in self.known:
            try:
                result = plan.decode(data, start, copy, bytes_as_str)
            except IndexError:  # a varint running off the end: not this layout
                continue
            if result is not None:
                return result
        return None

    def learn(self, data: bytes | memoryview, result: InferResult) -> None:
        if self.misses < 4 * PLANS and self.learned < PLANS:
            self.misses += 1
            plan = learn(data, result)
            if plan is not None:
                self.learned += 1
                self.known = [*self.known[-(PLANS - 1):], plan]  # the oldest goes
                shared = self.shared
                if shared is not None:
                    if len(shared) >= MODELS and self.key not in shared:
                        shared.clear()
                    shared[self.key] = tuple(self.known)


def inner_start(data: bytes) -> int:
    """Where the ModelInferResponse inside a ModelStreamInferResponse that holds nothing else starts, or -1."""
    end = len(data)
    if end < 2 or data[0] != 0x12:
        return -1
    length = data[1]
    if length < 0x80:  # a token's reply: a one-byte length
        pos = 2
    else:
        try:
            length, pos = _varint(data, 1)
        except IndexError:
            return -1
    return pos if pos + length == end else -1


def inner_reply(data: bytes) -> bytes | None:
    """The ModelInferResponse inside a ModelStreamInferResponse that holds nothing else, or None."""
    start = inner_start(data)
    return None if start < 0 else data[start:]


def _varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while shift < 64:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    return -1, pos
