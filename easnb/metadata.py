"""What the metadata calls return: small typed values with a short repr and an HTML repr.

>>> TensorMetadata("x", "FP32", (-1, 4))
TensorMetadata(name='x', datatype='FP32', shape=(-1, 4))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from . import display
from .errors import TensorError


@dataclass(frozen=True)
class ServerMetadata:
    """The server's name, version and extensions."""

    name: str
    version: str
    extensions: tuple[str, ...] = ()

    def _repr_html_(self) -> str:
        return display.server_html(self)


@dataclass(frozen=True)
class TensorMetadata:
    """A model input or output: name, datatype, and shape (-1 for a variable dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelMetadata:
    """A model's versions, platform, properties, inputs and outputs."""

    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorMetadata, ...]
    outputs: tuple[TensorMetadata, ...]
    properties: Mapping[str, str] = field(default_factory=dict)
    #: what was already said about this model (a connection keeps one ModelMetadata per model)
    notes: set[str] = field(default_factory=set, init=False, compare=False, repr=False)

    def input(self, name: str) -> TensorMetadata:
        """The input called ``name``; the error lists the known ones."""
        return _find(self.inputs, name, "input", self.name)

    def output(self, name: str) -> TensorMetadata:
        """The output called ``name``; the error lists the known ones."""
        return _find(self.outputs, name, "output", self.name)

    def example_inputs(self, rows: int = 1) -> dict[str, np.ndarray]:
        """Zeros (empty strings for BYTES) shaped like each input, ``rows`` for a variable dimension."""
        from .arguments import count
        from .tensors import lookup

        rows = count(rows, "rows")
        examples = {}
        for tensor in self.inputs:
            shape = [rows if d < 0 else d for d in tensor.shape]
            dtype = lookup(tensor.datatype, tensor.name).dtype
            if tensor.datatype == "BYTES":
                examples[tensor.name] = np.full(shape, b"", dtype=object)
            elif tensor.datatype == "BF16":
                examples[tensor.name] = np.zeros(shape, np.float32)
            else:
                examples[tensor.name] = np.zeros(shape, dtype)
        return examples

    def _repr_html_(self) -> str:
        return display.model_html(self)


def _find(tensors: tuple[TensorMetadata, ...], name: str, kind: str, model: str) -> TensorMetadata:
    for tensor in tensors:
        if tensor.name == name:
            return tensor
    known = listed([repr(short(t.name)) for t in tensors], f"{kind}s", "none")  # was: every one, a server's 1 MB of names
    raise TensorError(f"Model {short(model)!r} has no {kind} {short(name)!r}. Available {kind}s are {known}.")


def short(name: str, most: int = 60) -> str:
    """``name`` cut to ``most`` characters (a server's names can be any length)."""
    return name if len(name) <= most else name[: most - 3] + "..."


def listed(items: list[str], what: str, empty: str = "", shown: int = 12) -> str:
    """The first ``shown`` of ``items``, joined, and how many there are; ``empty`` (else "no {what}") for none."""
    if len(items) <= shown:
        return ", ".join(items) or empty or f"no {what}"
    return ", ".join(items[:shown]) + f", ... ({len(items)} {what})"
