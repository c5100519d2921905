"""ModelInfer requests and replies as bytes: shared by the sync and async connections.

>>> import numpy as np
>>> data = encode_request("m", {"x": np.zeros(2, "<f4")})
>>> decode_request(data)[1][0].nbytes
8
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from . import wire
from ._proto import ModelInferRequest, ModelInferResponse
from .errors import TensorError
from .parameters import set_parameters, to_dict
from .results import InferResult
from .tensors import decode_tensor, encode_tensor

Inputs = Mapping[str, Any] | Iterable[tuple[str, Any]]
Outputs = Iterable[str] | Mapping[str, Mapping[str, Any]] | None


def encode_request(
    model: str,
    inputs: Inputs,
    outputs: Outputs = None,
    version: str = "",
    parameters: Mapping[str, Any] | None = None,
    request_id: str = "",
    raw: bool = True,
) -> bytes:
    """The serialized ModelInferRequest; raw buffers are copied once, into the message."""
    request = ModelInferRequest(model_name=model, model_version=version, id=request_id)
    if parameters:
        set_parameters(request.parameters, parameters)
    items = inputs.items() if isinstance(inputs, Mapping) else inputs
    buffers = []
    for name, value in items:
        buffer, _ = encode_tensor(request.inputs.add(), str(name), value, raw=raw)
        if buffer is not None:
            buffers.append(buffer)
    if not request.inputs:
        raise TensorError(f"No inputs were given for model {model!r}.", hint="Pass a dict of input name -> array.")
    if outputs is not None:
        named = outputs.items() if isinstance(outputs, Mapping) else ((o, None) for o in outputs)
        for name, params in named:
            requested = request.outputs.add(name=str(name))
            if params:
                set_parameters(requested.parameters, params)
    if sum(memoryview(b).nbytes for b in buffers) < wire.SMALL:  # small: protobuf's copy is cheaper
        request.raw_input_contents.extend(memoryview(b).tobytes() for b in buffers)
        return request.SerializeToString(deterministic=True)
    head = request.SerializeToString(deterministic=True)
    return wire.join(head, wire.RAW_INPUT_FIELD, buffers)


def decode_response(
    data: bytes, *, copy: bool = False, bytes_as_str: bool = False, bf16_as_ml_dtypes: bool = False
) -> InferResult:
    """An ``InferResult`` from a serialized ModelInferResponse, every tensor validated."""
    response, raws = wire.split(data, ModelInferResponse, wire.RAW_OUTPUT_FIELD)
    if raws and len(raws) != len(response.outputs):
        raise TensorError(
            f"The reply has {len(response.outputs)} outputs but {len(raws)} raw buffers; V2 needs one per output.",
            hint="The server sent a malformed reply.",
        )
    outputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    output_parameters: dict[str, dict[str, Any]] = {}
    for i, tensor in enumerate(response.outputs):
        if tensor.name in outputs:
            raise TensorError(
                f"The reply has two outputs called {tensor.name!r}.",
                hint="The server sent a malformed reply: each output name must appear once.",
            )
        outputs[tensor.name] = decode_tensor(
            tensor.name,
            tensor.datatype,
            tensor.shape,
            raws[i] if raws else None,
            tensor.contents if tensor.HasField("contents") else None,
            copy=copy,
            bytes_as_str=bytes_as_str,
            bf16_as_ml_dtypes=bf16_as_ml_dtypes,
        )
        datatypes[tensor.name] = tensor.datatype
        if tensor.parameters:
            output_parameters[tensor.name] = to_dict(tensor.parameters)
    return InferResult(
        model_name=response.model_name,
        model_version=response.model_version,
        id=response.id,
        outputs=outputs,
        datatypes=datatypes,
        parameters=to_dict(response.parameters) if response.parameters else {},
        output_parameters=output_parameters,
    )


def decode_request(data: bytes) -> tuple[Any, list[memoryview]]:
    """A server's view of a request: the message without raw contents, and the raw buffers."""
    return wire.split(data, ModelInferRequest, wire.RAW_INPUT_FIELD)
