"""What ``infer`` returns: ``InferResult``, with a short repr and an HTML repr.

The metadata values live in ``easnb.metadata`` and are importable from here too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import display
from .metadata import ModelMetadata, ServerMetadata, TensorMetadata

__all__ = ["InferResult", "ModelMetadata", "ServerMetadata", "TensorMetadata"]


def _json_data(array: np.ndarray, bytes_as: str) -> dict[str, Any]:
    """An output's values, flat, as JSON-safe Python values."""
    flat = array.reshape(-1)
    if array.dtype == object or array.dtype.kind in "SU":
        items = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in flat]
        if bytes_as == "text":
            try:
                return {"data": [v.decode("utf-8") for v in items]}
            except UnicodeDecodeError:
                pass
        import base64

        return {"encoding": "base64", "data": [base64.b64encode(v).decode("ascii") for v in items]}
    if array.dtype.kind == "f" or array.dtype.name == "bfloat16":
        values = flat.astype(np.float64).tolist()
        return {"data": [v if np.isfinite(v) else ("NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")) for v in values]}
    return {"data": flat.tolist()}


@dataclass(frozen=True, repr=False, eq=False)
class InferResult(Mapping[str, np.ndarray]):
    """The answer of ``infer``: ``result["NAME"]`` is a numpy array.

    Arrays decoded from raw contents are read-only views of the reply.
    """

    model_name: str
    model_version: str
    id: str
    outputs: Mapping[str, np.ndarray]
    datatypes: Mapping[str, str]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    output_parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.outputs[name]
        except KeyError:
            known = ", ".join(repr(n) for n in self.outputs) or "none"
            raise KeyError(f"No output {name!r} in this result. Available outputs are {known}.") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.outputs)

    def __len__(self) -> int:
        return len(self.outputs)

    def to_frame(self, long: bool = False, arrays: bool = False) -> Any:
        """The outputs as a pandas DataFrame (see ``easnb.frames.result_to_frame``)."""
        from .arguments import flag
        from .frames import result_to_frame

        return result_to_frame(self, long=flag(long, "long"), arrays=flag(arrays, "arrays"))

    def to_dict(self, bytes_as: str = "text") -> dict[str, Any]:
        """The result as plain Python values, ready for ``json.dumps``; nothing rounded.

        - INT64 and UINT64 are Python ints, so JSON writes them exactly (no strings,
          unlike tritonclient's ``as_json``); FP16 and BF16 become floats.
        - BYTES: ``bytes_as="text"`` gives UTF-8 text where every element decodes, else
          base64 for that output (its ``"encoding"`` says which); ``"base64"`` always base64.
        - NaN and infinities, which JSON has no numbers for, are the strings ``"NaN"``,
          ``"Infinity"`` and ``"-Infinity"``, as proto3's JSON mapping writes them.
        """
        from .arguments import choice

        bytes_as = choice(bytes_as, "bytes_as", ("text", "base64"))
        outputs = []
        for name, array in self.outputs.items():
            entry: dict[str, Any] = {"name": name, "datatype": self.datatypes.get(name, ""), "shape": list(array.shape)}
            entry.update(_json_data(array, bytes_as))
            if self.output_parameters.get(name):
                entry["parameters"] = dict(self.output_parameters[name])
            outputs.append(entry)
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "id": self.id,
            "parameters": dict(self.parameters),
            "outputs": outputs,
        }

    def to_json(self, bytes_as: str = "text", indent: int | None = None) -> str:
        """``to_dict()`` as JSON text (strict JSON: no NaN literals)."""
        import json

        from .arguments import count

        indent = indent if indent is None or isinstance(indent, str) else count(indent, "indent")
        return json.dumps(self.to_dict(bytes_as), indent=indent, allow_nan=False, ensure_ascii=False)

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{n} {self.datatypes.get(n, '?')} {list(a.shape)}" for n, a in self.outputs.items()
        )
        version = f" v{self.model_version}" if self.model_version else ""
        return f"<InferResult {self.model_name}{version}: {parts or 'no outputs'}>"

    def _repr_html_(self) -> str:
        return display.result_html(self)
