"""The codec between numpy arrays and V2 tensors, for every V2 datatype.

One table maps a V2 datatype to its little-endian numpy dtype and its typed-contents
field. Raw contents are the default: an array that is already C-contiguous and
little-endian is sent without a copy of ours, and a raw reply is returned as a
read-only ``numpy.frombuffer`` view of the received message.

>>> encode_tensor(ModelInferRequest().inputs.add(), "x", np.arange(3, dtype="<f4"))[0].nbytes
12
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.message import Message

from ._proto import ModelInferRequest  # noqa: F401  (used by the doctest)
from .bytes_wire import as_bytes_list, decode_bytes, encode_bytes
from .dtypes import DATATYPES, Datatype, bytes_refusal, from_pandas, from_string_dtype, object_numbers, refusal  # noqa: F401 - Datatype re-exported
from .errors import FrameInput, TensorError


_BY_DTYPE = {d.dtype: d.name for d in DATATYPES.values() if d.name not in ("BF16", "BYTES")}
#: numpy dtypes sent as they are: little-endian (or byte-order-free) numbers and bools
PLAIN_DTYPES = {dtype: name for dtype, name in _BY_DTYPE.items() if dtype.byteorder in "<|="}
_BY_DTYPE.update({d.newbyteorder("="): n for d, n in list(_BY_DTYPE.items())})
_BY_KIND_SIZE = {
    (d.dtype.kind, d.dtype.itemsize): d.name for d in DATATYPES.values() if d.name not in ("BF16", "BYTES")
}


@dataclass(frozen=True)
class Tensor:
    """An array with an explicit V2 datatype, e.g. ``Tensor(x, "BF16")`` for a float32 ``x``."""

    data: Any
    datatype: str | None = None
    parameters: dict[str, Any] | None = None


def datatype_of(array: np.ndarray, name: str = "tensor") -> str:
    """The V2 datatype that matches a numpy array's dtype."""
    dtype = array.dtype
    known = _BY_DTYPE.get(dtype)
    if known is not None:
        return known
    if dtype.kind in "OSUT":  # T: numpy 2's StringDType
        return "BYTES"
    if dtype.name == "bfloat16":
        return "BF16"
    try:
        return _BY_KIND_SIZE[(dtype.kind, dtype.itemsize)]
    except KeyError:
        raise refusal(dtype, name) from None


def lookup(datatype: str, name: str = "tensor") -> Datatype:
    """The table row for a datatype name; ``TensorError`` for an unknown one."""
    try:
        return DATATYPES[datatype]
    except (KeyError, TypeError):
        raise TensorError(
            f"Tensor {name!r} has unknown datatype {datatype!r}.",
            hint=f"Known datatypes: {', '.join(DATATYPES)}.",
        ) from None


def as_array(value: Any, name: str = "tensor", datatype: str = "") -> np.ndarray:
    """A numpy array from an array, a pandas Series, Index or extension array, a list or a scalar.

    Strings become objects; numpy 2 ``StringDType``, nullable, Arrow-backed and categorical
    values are converted as ``easnb.dtypes`` says (missing values refused where they cannot go).
    """
    if isinstance(value, np.ndarray):
        return from_string_dtype(value, name) if value.dtype.kind == "T" else value
    if hasattr(value, "columns") and hasattr(value, "iloc"):
        raise FrameInput(
            f"Input {name!r} is a DataFrame, whose columns may be in another order than the model's features.",
            hint=f"Pass the frame itself (conn.infer(model, df)) to match its columns by name, or "
            f"{{{name!r}: df.to_numpy()}} to send them by position.",
        )
    if hasattr(value, "to_numpy") and hasattr(value, "dtype") and type(value).__module__.startswith("pandas"):
        return from_pandas(value, name, datatype or "")
    if hasattr(value, "to_numpy"):
        return np.asarray(value.to_numpy())
    try:
        array = np.asarray(value)
    except ValueError as exc:
        raise TensorError(f"Tensor {name!r} cannot be made into an array: {exc}.") from None
    if array.dtype.kind in "SU":  # keep every byte: numpy's S strips trailing NULs
        array = np.asarray(value, dtype=object)
    return array


def _bf16_words(array: np.ndarray) -> np.ndarray:
    """float values rounded to nearest even bfloat16, as little-endian uint16 words."""
    bits = np.ascontiguousarray(array, dtype="<f4").view("<u4")
    rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) >> 16
    nan = (bits & 0x7FFFFFFF) > 0x7F800000
    rounded = np.where(nan, (bits >> 16) | 0x0040, rounded)  # keep NaN a (quiet) NaN
    return rounded.astype("<u2")


def _bf16_to_float32(words: np.ndarray) -> np.ndarray:
    return (words.astype("<u4") << 16).view("<f4")


def _convert(array: np.ndarray, dt: Datatype, name: str) -> np.ndarray:
    """``array`` as ``dt``'s numpy dtype, refusing conversions that would lose information."""
    target = dt.dtype
    src = array.dtype
    if dt.name == "BF16":
        if src.name == "bfloat16":
            return array.view("<u2") if src.byteorder in "=<|" else array.astype("<u2")
        if src.kind not in "fiub":
            raise _mismatch(name, src, dt)
        words = _bf16_words(array)
        _refuse_overflow(array, _bf16_to_float32(words), dt, name)
        return words
    if src == target:
        return array
    if src.kind in "OSU" and target.kind in "biuf":  # an object column of numbers; text or None named
        return _convert(object_numbers(array, name, dt.name), dt, name)
    if src.kind in "OSU" or target.kind == "O":
        raise _mismatch(name, src, dt)
    if src.kind == target.kind and src.itemsize <= target.itemsize:
        return array.astype(target)
    if target.kind == "f":
        if src.kind in "biuf":
            with np.errstate(over="ignore"):
                converted = array.astype(target)
            _refuse_overflow(array, converted, dt, name)
            return converted
        raise _mismatch(name, src, dt)
    if src.kind == "f":
        finite = np.isfinite(array).all() if array.size else True
        if not finite or not np.array_equal(np.round(array), array):
            raise TensorError(
                f"Tensor {name!r}: converting {src} to {dt.name} would lose the fractional part or a NaN/inf.",
                hint="Round the values yourself, or send the tensor as a float datatype.",
            )
    if target.kind == "b":
        if array.size and not np.isin(array, (0, 1)).all():
            raise TensorError(f"Tensor {name!r}: only 0 and 1 convert to BOOL.")
        return array.astype(target)
    if array.size and src.kind in "iuf":
        info = np.iinfo(target)
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            raise TensorError(
                f"Tensor {name!r}: values from {low} to {high} do not fit {dt.name} "
                f"({info.min} to {info.max}).",
                hint="Send a wider datatype, or clip the values.",
            )
    return array.astype(target)


def _refuse_overflow(array: np.ndarray, converted: np.ndarray, dt: Datatype, name: str) -> None:
    """Refuse finite values that became infinite in a narrower float (1e39 as FP32, 70000 as FP16)."""
    if not array.size or array.dtype.kind == "b":
        return
    lost = np.isinf(converted) & ~np.isinf(array) if array.dtype.kind == "f" else np.isinf(converted)
    if lost.any():
        value = array[lost].reshape(-1)[0].item()
        raise TensorError(
            f"Tensor {name!r}: {lost.sum()} value(s) such as {value!r} are too large for {dt.name} and would become infinite.",
            hint="Scale or clip the values, or send a wider datatype (FP32 or FP64).",
        )


def _mismatch(name: str, src: np.dtype, dt: Datatype) -> TensorError:
    fitting = refusal(src, name).hint if src.kind in "MmcV" else "Convert the array to a matching dtype first."
    return TensorError(f"Tensor {name!r} has dtype {src}, which cannot be sent as {dt.name}.", hint=fitting)


def _flat_items(array: np.ndarray) -> list[object]:
    flat = array.reshape(-1)
    if flat.dtype.kind == "U":
        flat = np.char.encode(flat, "utf-8")
    items: list[object] = flat.tolist()
    return items


def encode_tensor(
    tensor: Message, name: str, value: Any, raw: bool = True
) -> tuple[Any, str]:
    """Fill ``tensor`` (an input or output tensor message) from ``value``; return (raw buffer or None, datatype).

    The raw buffer is the array itself when it is already contiguous and little-endian.
    """
    datatype = None
    parameters = None
    if isinstance(value, Tensor):
        value, datatype, parameters = value.data, value.datatype, value.parameters
    array = as_array(value, name, datatype or "")
    if datatype is None:
        datatype = datatype_of(array, name)
    elif datatype not in DATATYPES and isinstance(datatype, str) and datatype.strip().upper() in DATATYPES:
        datatype = datatype.strip().upper()  # the user's "fp32" means FP32 (a server's reply is not guessed at)
    dt = lookup(datatype, name)
    tensor.name = name
    tensor.datatype = dt.name
    tensor.shape.extend(array.shape)
    if parameters:
        from .arguments import mapping
        from .parameters import set_parameters

        set_parameters(tensor.parameters, mapping(parameters, "Tensor.parameters", "Tensor(x, 'FP32', {'content_type': 'np'})") or {})
    if dt.name == "BYTES":
        if array.dtype.kind not in "OSU":
            raise _mismatch(name, array.dtype, dt)
        try:
            if raw:
                return encode_bytes(_flat_items(array), name), dt.name
            tensor.contents.bytes_contents.extend(as_bytes_list(_flat_items(array), name))
        except TensorError as exc:
            raise bytes_refusal(array, name, exc) from None
        return None, dt.name
    wire = np.ascontiguousarray(_convert(array, dt, name))
    if raw:
        return wire, dt.name
    if dt.contents is None:
        raise TensorError(
            f"Tensor {name!r} is {dt.name}, which has no typed contents in V2.",
            hint="Send it as raw contents (the default, raw=True).",
        )
    getattr(tensor.contents, dt.contents).extend(wire.reshape(-1).tolist())
    return None, dt.name


def element_count(shape: Sequence[int], name: str) -> int:
    """The number of elements of a shape; ``TensorError`` for a negative dimension."""
    count = 1
    for dim in shape:
        if dim < 0:
            raise TensorError(f"Tensor {name!r} has shape {list(shape)} with a negative dimension.")
        count *= dim
    return count


def decode_tensor(
    name: str,
    datatype: str,
    shape: Sequence[int],
    raw: bytes | memoryview | None = None,
    contents: Message | None = None,
    *,
    copy: bool = False,
    bytes_as_str: bool = False,
) -> np.ndarray:
    """A numpy array from a V2 tensor's raw buffer or typed contents, validated.

    Raw numeric data comes back as a read-only view of the buffer unless ``copy``; BF16 comes back
    as float32 (exact: every bfloat16 is a float32), as tritonclient's ``as_numpy`` gives it.
    """
    dt = lookup(datatype, name)
    shape = tuple(shape)
    count = element_count(shape, name)
    has_typed = contents is not None and any(
        len(getattr(contents, f.name)) for f in contents.DESCRIPTOR.fields
    )
    if raw is not None and has_typed:
        raise TensorError(f"Tensor {name!r} has both raw and typed contents; V2 allows one.")
    if dt.name == "BYTES":
        if raw is not None:
            array = decode_bytes(raw, count, name)
        else:
            found = list(contents.bytes_contents) if has_typed and contents is not None else []
            _check_count(name, len(found), count)
            array = np.empty(count, dtype=object)
            array[:] = found
        if bytes_as_str:
            array = np.array([v.decode("utf-8", "replace") for v in array], dtype=object)
        return _reshape(array, shape, name)
    if raw is not None:
        expected = count * dt.dtype.itemsize
        size = memoryview(raw).nbytes
        if size != expected:
            raise TensorError(
                f"Tensor {name!r} ({dt.name}, shape {list(shape)}) needs {expected} bytes of raw "
                f"contents but the reply has {size}.",
                hint="The server's shape, datatype and data disagree.",
            )
        array = np.frombuffer(raw, dtype=dt.dtype, count=count)
        if copy:
            array = array.copy()
    else:
        if count and not has_typed:
            raise TensorError(f"Tensor {name!r} has shape {list(shape)} but no contents.")
        if dt.contents is None:
            if count:
                raise TensorError(f"Tensor {name!r} is {dt.name}, which V2 sends only as raw contents.")
            values: Sequence[Any] = []
        else:
            values = getattr(contents, dt.contents) if contents is not None else []
        _check_count(name, len(values), count)
        narrow = dt.dtype.kind in "iu" and dt.dtype.itemsize < 4  # INT8/16, UINT8/16 travel as 32-bit
        array = np.array(values, dtype="<i8" if narrow else dt.dtype)
        if narrow:
            info = np.iinfo(dt.dtype)
            if array.size and (array.min() < info.min or array.max() > info.max):
                raise TensorError(f"Tensor {name!r} has typed values out of range for {dt.name}.")
            array = array.astype(dt.dtype)
    if dt.name == "BF16":
        array = _bf16_to_float32(array)
    return _reshape(array, shape, name)


def _reshape(array: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    try:
        return array.reshape(shape)
    except ValueError:  # e.g. [0, 2**60]: no elements, but no array can have that shape
        raise TensorError(f"Tensor {name!r} has shape {list(shape)}, which no array can have.") from None


def _check_count(name: str, got: int, expected: int) -> None:
    if got != expected:
        raise TensorError(
            f"Tensor {name!r} has {got} elements but its shape says {expected}.",
            hint="The server's shape and data disagree.",
        )
