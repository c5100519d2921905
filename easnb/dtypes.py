"""What numpy 2 and pandas hand over, as arrays the codec's table knows; fitting hints for the rest.

The choices, one per family (missing values are never guessed into a number):

- numpy 2 ``StringDType``: BYTES (UTF-8), like ``str`` arrays; a missing value (its ``na_object``) is
  refused, naming the tensor.
- pandas nullable integers and booleans (``Int64``, ``UInt8``, ``boolean``, ``int64[pyarrow]``,
  ``bool[pyarrow]``): their numpy dtype; missing values are refused (no integer or boolean holds
  them), except into a tensor sent as a float datatype, where they are NaN.
- nullable floats (``Float32``, ``Float64``, ``double[pyarrow]``): their numpy dtype, missing values
  as NaN (refused when the tensor is sent as an integer or boolean datatype).
- text (``string[python]``, ``string[pyarrow]``, pandas 3's ``str``, ``large_string[pyarrow]``,
  ``binary[pyarrow]``): BYTES; missing values are refused.
- categorical: its categories' values (``.cat.codes`` sends the codes instead); missing values as
  the categories' own type allows (NaN for float categories, refused otherwise).
- dates, durations, periods, intervals, complex and structured values: refused, with a hint for each.

>>> import pandas as pd
>>> from_pandas(pd.Series([1, 2], dtype="Int64"), "x").dtype
dtype('int64')
"""

from __future__ import annotations

import datetime
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import TensorError

_FILL = "Fill them (.fillna(...)) or drop those rows (.dropna()) first."
_DATES = (
    "V2 has no date or time datatype: send a number (x.astype('int64') gives nanoseconds since 1970, "
    "or seconds as FP64) or text (x.astype(str))."
)
_HINTS = {
    "M": _DATES,
    "m": "V2 has no duration datatype: send a number of a unit, e.g. x / np.timedelta64(1, 's') for FP64 seconds.",
    "c": "V2 has no complex datatype: send the real and imaginary parts (x.real, x.imag) as two tensors.",
}



@dataclass(frozen=True)
class Datatype:
    """A V2 datatype: its name, the numpy dtype on the wire, and its typed-contents field."""

    name: str
    dtype: np.dtype
    contents: str | None


DATATYPES: dict[str, Datatype] = {
    d.name: d
    for d in (
        Datatype("BOOL", np.dtype("?"), "bool_contents"),
        Datatype("UINT8", np.dtype("u1"), "uint_contents"),
        Datatype("UINT16", np.dtype("<u2"), "uint_contents"),
        Datatype("UINT32", np.dtype("<u4"), "uint_contents"),
        Datatype("UINT64", np.dtype("<u8"), "uint64_contents"),
        Datatype("INT8", np.dtype("i1"), "int_contents"),
        Datatype("INT16", np.dtype("<i2"), "int_contents"),
        Datatype("INT32", np.dtype("<i4"), "int_contents"),
        Datatype("INT64", np.dtype("<i8"), "int64_contents"),
        Datatype("FP16", np.dtype("<f2"), None),
        Datatype("FP32", np.dtype("<f4"), "fp32_contents"),
        Datatype("FP64", np.dtype("<f8"), "fp64_contents"),
        # BF16 travels as raw 16-bit words; easnb hands back float32 (or ml_dtypes.bfloat16).
        Datatype("BF16", np.dtype("<u2"), None),
        Datatype("BYTES", np.dtype(object), "bytes_contents"),
    )
}


def is_text(dtype: Any) -> bool:
    """Whether a numpy or pandas dtype holds text or bytes (BYTES on the wire)."""
    kind = getattr(dtype, "kind", "")
    return kind in "OSUT" and kind != "" and not _named(dtype, "Categorical", "Interval", "Period")


def _named(dtype: Any, *names: str) -> bool:
    return any(type(dtype).__name__.startswith(n) for n in names)


def missing_error(what: str, name: str, count: int, datatype: str = "") -> TensorError:
    holder = f"{datatype} tensors" if datatype else "this tensor"
    return TensorError(f"{what} {name!r} has {count} missing values, which {holder} cannot hold.", hint=_FILL)


def from_string_dtype(array: np.ndarray, name: str, what: str = "Tensor") -> np.ndarray:
    """A numpy 2 ``StringDType`` array as an object array of str (BYTES); a missing value is refused."""
    values = array.astype(object)
    if hasattr(array.dtype, "na_object"):
        na = array.dtype.na_object
        count = sum(1 for v in values.reshape(-1) if v is na or (v != v))
        if count:
            raise missing_error(what, name, count)
    return values


def from_pandas(value: Any, name: str, datatype: str = "", what: str = "Tensor") -> np.ndarray:
    """A pandas Series, Index or extension array as a plain numpy array, by the choices above.

    ``datatype`` is the V2 datatype it will be sent as, when known (a float column with missing
    values cannot become an integer one).
    """
    dtype = value.dtype
    if isinstance(dtype, np.dtype):
        array = np.asarray(value.to_numpy())
        return from_string_dtype(array, name, what) if dtype.kind == "T" else array
    if _named(dtype, "Categorical"):
        return _categorical(value, name, datatype, what)
    kind = getattr(dtype, "kind", "O")
    if kind in "Mm" or _named(dtype, "Period", "Interval", "DatetimeTZ"):
        raise refusal(dtype, name, what)
    numpy_dtype = getattr(dtype, "numpy_dtype", None)
    if kind in "iub" and datatype[:2] in ("FP", "BF"):  # into a float tensor, where NaN says "missing"
        return np.asarray(value.to_numpy(dtype=np.float64, na_value=np.nan))
    if kind in "iub" or (kind == "f" and datatype[:1] in ("I", "U", "B") and datatype != "BYTES"):
        count = int(np.asarray(value.isna()).sum())
        if count:
            raise missing_error(what, name, count, datatype or {"i": "integer", "u": "integer", "b": "boolean"}.get(kind, ""))
        return np.asarray(value.to_numpy(dtype=numpy_dtype))
    if kind == "f":
        return np.asarray(value.to_numpy(dtype=numpy_dtype, na_value=np.nan))
    if is_text(dtype):
        count = int(np.asarray(value.isna()).sum())
        if count:
            raise missing_error(what, name, count, "BYTES")
        return np.asarray(value.to_numpy(dtype=object))
    return np.asarray(value.to_numpy())  # lists (Arrow list columns), decimals...: the codec decides


def _categorical(value: Any, name: str, datatype: str, what: str) -> np.ndarray:
    categories = value.dtype.categories
    codes = np.asarray(value.cat.codes if hasattr(value, "cat") else value.codes)
    values = from_pandas(categories, name, datatype, what)
    if (codes < 0).any():
        if values.dtype.kind != "f":
            raise missing_error(what, name, int((codes < 0).sum()), datatype)
        return np.where(codes < 0, np.nan, values[np.maximum(codes, 0)]).astype(values.dtype)
    picked: np.ndarray = values[codes]
    return picked


def refusal(dtype: Any, name: str, what: str = "Tensor") -> TensorError:
    """The error for a dtype no V2 datatype carries, with the hint that fits it."""
    kind = getattr(dtype, "kind", "")
    if _named(dtype, "Period"):
        hint = "V2 has no period datatype: send x.dt.to_timestamp().astype('int64') or text (x.astype(str))."
    elif _named(dtype, "Interval"):
        hint = "V2 has no interval datatype: send the ends as two tensors (x.array.left, x.array.right)."
    elif kind in _HINTS:
        hint = _HINTS[kind]
    elif getattr(dtype, "names", None):
        hint = "Send each field of the structured array as its own input: {f: x[f] for f in x.dtype.names}."
    elif kind == "f":
        hint = "V2's widest float is FP64: x.astype(np.float64)."
    elif kind == "V":
        hint = "Convert it to a V2 type first, e.g. x.astype(np.float32); raw bytes go as BYTES (x.tobytes())."
    else:
        hint = f"Convert it first, e.g. to float32 or int64. V2 datatypes: {', '.join(DATATYPES)}."
    return TensorError(f"{what} {name!r} has dtype {dtype}, which no V2 datatype carries.", hint=hint)


def bytes_refusal(array: np.ndarray, name: str, error: TensorError) -> TensorError:
    """A clearer error for an object array that cannot be BYTES: missing values, or numbers."""
    for index, item in enumerate(array.reshape(-1)):
        if isinstance(item, (bytes, bytearray, memoryview, str)):
            continue
        if item is None or (isinstance(item, float) and item != item) or type(item).__name__ in ("NAType", "NaTType"):
            return TensorError(
                f"BYTES tensor {name!r} has a missing value ({item!r}) at flat index {index}.", hint=_FILL
            )
        what = f"Tensor {name!r} is an object array holding {type(item).__name__} values (flat index {index}), not text"
        if isinstance(item, (datetime.date, datetime.time, np.datetime64)):  # pandas' Timestamp is a datetime
            return TensorError(f"{what}.", hint=_DATES)
        if isinstance(item, (datetime.timedelta, np.timedelta64)):
            return TensorError(f"{what}.", hint=_HINTS["m"])
        if isinstance(item, (complex, np.complexfloating)):
            return TensorError(f"{what}.", hint=_HINTS["c"])
        if isinstance(item, (numbers.Number, np.bool_)):
            return TensorError(
                f"Tensor {name!r} is an object array holding numbers ({str(item)[:40]} at flat index {index}), so it "
                "would be sent as BYTES.",
                hint="Give it a numeric dtype first: np.asarray(x, dtype=np.float64) (or int64).",
            )
        if isinstance(item, (list, tuple, np.ndarray)):
            return TensorError(f"{what}.", hint="Stack them into one array first: np.stack(list(x)) (they must share a shape).")
        return error
    return error


def object_numbers(array: np.ndarray, name: str, datatype: str) -> np.ndarray:
    """An object (or text) array bound for a numeric ``datatype`` as numbers: Python and numpy
    numbers (a DataFrame's object column, ``np.array([1.0, 2], dtype=object)``) become float64,
    or int64 when all are whole-number types; a missing value becomes NaN for a float datatype
    (as in a float column); a missing value for an integer one, text or anything else is a
    ``TensorError`` naming the first one and how to fix it."""
    flat = array.reshape(-1)
    items = flat.tolist() if flat.dtype.kind == "O" else list(flat)
    whole, floats = True, datatype.startswith(("FP", "BF"))
    for index, item in enumerate(items):
        if isinstance(item, (bool, np.bool_, numbers.Integral)):
            continue
        if isinstance(item, numbers.Real) and not (isinstance(item, float) and item != item):
            whole = False
            continue
        where = f"Tensor {name!r} (sent as {datatype})"
        if item is None or (isinstance(item, float) and item != item) or type(item).__name__ in ("NAType", "NaTType"):
            if floats:  # missing as NaN, as a float column holds it
                items[index], whole = float("nan"), False
                continue
            raise TensorError(f"{where} has a missing value ({item!r}) at flat index {index}.", hint=_FILL)
        if isinstance(item, (str, bytes, np.str_, np.bytes_)):
            raise TensorError(
                f"{where} holds text ({str(item)[:40]!r} at flat index {index}), not numbers.",
                hint="Parse it first: df.astype('float32'), pd.to_numeric(df[column]), or read the CSV with "
                "numeric columns (pd.read_csv(..., na_values=[...]) if a marker such as 'NA' made them text).",
            )
        raise TensorError(
            f"{where} holds {type(item).__name__} values (flat index {index}), not numbers.",
            hint="Give it a numeric dtype first: np.asarray(x, dtype=np.float64) (or int64).",
        )
    try:
        return np.asarray(items, dtype=np.int64 if whole else np.float64).reshape(array.shape)
    except OverflowError:  # whole numbers beyond int64: the range check that follows names them
        return np.asarray(items, dtype=np.float64).reshape(array.shape)
