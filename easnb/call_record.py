"""One call made through an inspector, kept with what it takes to make it again or write it as code.

The record is the value both the ``History`` and the code generators read; it holds the
connection's own headers, never the token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Call:
    """One call made through an inspector, with what it takes to make it again."""

    when: datetime
    kind: str  # "infer", "metadata" (a model's, from the Model tab) or "service"
    target: str
    tls: bool
    name: str  # the model, or the method's path
    summary: str
    status: str
    latency_ms: float
    request: dict[str, Any] = field(repr=False)
    headers: dict[str, Any] = field(default_factory=dict, repr=False)  # the connection's own (never the token)


def summarize_inputs(saved: dict[str, dict[str, Any]]) -> str:
    """``features FP32 [1, 4]; mask BOOL [1]``, from what ``saved_inputs`` kept."""
    return "; ".join(f"{name} {t['datatype']} {list(t['array'].shape)}" for name, t in saved.items())


def saved_inputs(inputs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Inputs as arrays (copies) with their datatypes, to replay or to write as code."""
    from .tensors import Tensor, as_array, datatype_of

    saved = {}
    for name, value in inputs.items():
        datatype = value.datatype if isinstance(value, Tensor) else None
        array = np.array(as_array(value.data if isinstance(value, Tensor) else value, name), copy=True)
        saved[name] = {"datatype": datatype or datatype_of(array, name), "array": array}
    return saved
