"""V2 ``InferParameter`` values to and from plain Python values.

>>> to_python(from_python(True))
True
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

import numpy as np
from google.protobuf.message import Message

from ._proto import InferParameter
from .errors import InvalidArgumentError

_INT64 = (-(2**63), 2**63 - 1)


def from_python(value: Any) -> Message:
    """An ``InferParameter`` for a bool, int, float or str."""
    if isinstance(value, (bool, np.bool_)):
        return InferParameter(bool_param=bool(value))
    if isinstance(value, (int, np.integer)):
        value = int(value)
        if _INT64[0] <= value <= _INT64[1]:
            return InferParameter(int64_param=value)
        if 0 <= value < 2**64:
            return InferParameter(uint64_param=value)
        raise InvalidArgumentError(f"Parameter value {value} does not fit int64 or uint64.")
    if isinstance(value, (float, np.floating)):
        return InferParameter(double_param=float(value))
    if isinstance(value, str):
        try:
            return InferParameter(string_param=value)
        except (UnicodeEncodeError, ValueError):  # a lone surrogate (from JSON's "\ud800"): protobuf strings are UTF-8
            raise InvalidArgumentError(f"Parameter value {value!r} is not valid Unicode text (it holds a lone surrogate).",
                                       hint="Send it as text without lone surrogates, or as bytes encoded in a string.") from None
    raise InvalidArgumentError(
        f"A parameter value must be bool, int, float or str, not {type(value).__name__}.",
        hint="V2 parameters carry only these; encode anything else as a string (e.g. JSON).",
    )


def to_python(parameter: Message) -> bool | int | float | str | None:
    """The Python value of an ``InferParameter`` (``None`` when unset)."""
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def set_parameters(target: MutableMapping[str, Any], values: Mapping[str, Any]) -> None:
    """Copy plain values into a protobuf ``map<string, InferParameter>`` field."""
    for key, value in values.items():
        target[str(key)].CopyFrom(from_python(value))


def to_dict(source: Mapping[str, Message]) -> dict[str, Any]:
    """A plain dict from a protobuf ``map<string, InferParameter>`` field."""
    return {key: to_python(value) for key, value in sorted(source.items())}
