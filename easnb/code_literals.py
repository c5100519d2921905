"""Python source for values: the literals every code generator writes (``literal`` built on ``repr``).

>>> print(literal({"a": [1.5, float("nan")], "b": b"x"}))
{"a": [1.5, float('nan')], "b": b'x'}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import EasnbError

if TYPE_CHECKING:
    from .call_record import Call

NUMPY = {
    "BOOL": "bool_", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64", "INT8": "int8",
    "INT16": "int16", "INT32": "int32", "INT64": "int64", "FP16": "float16", "FP32": "float32", "FP64": "float64",
    "BF16": "float32",
}
#: the authorization header as Python source that reads a ``token`` variable
TOKEN_HEADER = 'f"Bearer {token}"'


def literal(value: Any) -> str:
    """Python source for ``value`` (JSON-like data, bytes, numpy scalars) that evaluates to an equal value.

    ``true``/``null`` from JSON become ``True``/``None``; NaN and infinities become ``float("nan")`` etc.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 10_000:
        return hex(value)  # repr refuses ints past 4300 digits (sys.int_info.default_max_str_digits); hex has no limit
    if value is None or isinstance(value, (bool, int, bytes)):
        return repr(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({repr(str(value))})"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise EasnbError(f"A {type(value).__name__} cannot be written as code.")


def _string(text: str) -> str:
    """``repr(text)``, in double quotes when ``text`` has none (repr then has no quote inside at all)."""
    quoted = repr(text)
    return f'"{quoted[1:-1]}"' if quoted[0] == "'" and '"' not in text else quoted


def array_literal(array: np.ndarray, datatype: str) -> str:
    """Python source for ``array`` as numpy builds it again, with ``datatype``'s dtype."""
    shape = literal(list(array.shape))
    if datatype == "BYTES":
        items = [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1)]
        return f"np.array({literal(items)}, dtype=object).reshape({shape})"
    return f"np.array({literal(array.reshape(-1).tolist())}, dtype=np.{NUMPY[datatype]}).reshape({shape})"


def call_headers(call: Call) -> dict[str, Any]:
    """The headers the call was made with (the connection's own; never the token)."""
    return dict(getattr(call, "headers", None) or {})


def connect_line(call: Call) -> str:
    """``conn = easnb.connect(...)`` for the call's target, the token read from ``EASNB_TOKEN``."""
    scheme = "https://" if call.tls else ""
    headers = call_headers(call)
    extra = f", headers={literal(headers)}" if headers else ""
    return f'conn = easnb.connect({literal(scheme + call.target)}, token=os.environ.get("EASNB_TOKEN"){extra})'
