"""The lowest argument checks, shared by ``arguments`` and the modules it builds on (``endpoint``):
the error for a value of the wrong type, shown only when it is a number (text may be a token), and
``flag`` for True/False options."""

from __future__ import annotations

import reprlib
from typing import Any

import numpy as np

from .errors import ArgumentError

_SHORT = reprlib.Repr()  # values are shown only when they are numbers: text may be a token
_SHORT.maxstring = _SHORT.maxother = 60


def shown(value: Any) -> str:
    """`` (value)`` for a number, bool or None; nothing for text and containers, which may hold a token."""
    if value is None or isinstance(value, (bool, int, float, np.number, np.bool_)):
        return f" ({_SHORT.repr(value)})"
    return ""


def refuse(argument: str, wants: str, value: Any, example: str) -> ArgumentError:
    """The ``ArgumentError`` for ``value`` given as ``argument``: what it takes and an example."""
    return ArgumentError(
        f"{argument} must be {wants}, not {type(value).__name__}{shown(value)}.",
        hint=f"For example {example}.",
        argument=argument,
    )


def flag(value: Any, argument: str) -> bool:
    """True or False (numpy's bools and the ints 0 and 1 too)."""
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    raise refuse(argument, "True or False", value, f"{argument}=True")
