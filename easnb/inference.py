"""ModelInfer requests and replies as bytes: shared by the sync and async connections.

>>> import numpy as np
>>> data = encode_request("m", {"x": np.zeros(2, "<f4")})
>>> decode_request(data)[1][0].nbytes
8
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from . import reply_plans, wire
from ._proto import ModelInferRequest, ModelInferResponse
from .errors import InvalidArgumentError, TensorError
from .parameters import set_parameters, to_dict
from .reply_plans import ReplyPlan
from .results import InferResult
from .tensors import PLAIN_DTYPES, Tensor, decode_tensor, encode_tensor

Inputs = Mapping[str, Any] | Iterable[tuple[str, Any]]
Outputs = Iterable[str] | Mapping[str, Mapping[str, Any]] | None


#: How many request heads a cache keeps before it starts again (a model's inputs rarely change shape).
HEADS = 256


def encode_request(
    model: str,
    inputs: Inputs,
    outputs: Outputs = None,
    version: str = "",
    parameters: Mapping[str, Any] | None = None,
    request_id: str = "",
    raw: bool = True,
    heads: dict[Any, bytes] | None = None,
) -> bytes:
    """The serialized ModelInferRequest; raw buffers are copied once, into the message.

    ``heads`` (a dict a connection keeps) caches the request without its raw contents for plain,
    contiguous numeric arrays, keyed by model, version and each input's name, datatype and shape:
    the usual call then costs one dict look-up and one join.
    """
    try:
        if heads is not None and raw and outputs is None and not parameters and not request_id:
            plain = _plain_inputs(inputs)
            if plain is not None:
                specs, plain_buffers = plain
                key = (model, version, specs)
                head = heads.get(key)
                if head is None:
                    if len(heads) >= HEADS:
                        heads.clear()
                    request = ModelInferRequest(model_name=model, model_version=version)
                    for name, datatype, shape in specs:
                        request.inputs.add(name=name, datatype=datatype, shape=shape)
                    head = heads[key] = request.SerializeToString(deterministic=True)
                return wire.join(head, wire.RAW_INPUT_FIELD, plain_buffers)
        request = ModelInferRequest(model_name=model, model_version=version, id=request_id)
        if parameters:
            set_parameters(request.parameters, parameters)
        items = inputs.items() if isinstance(inputs, Mapping) else inputs
        buffers: list[Any] = []
        for name, value in items:
            try:
                buffer, _ = encode_tensor(request.inputs.add(), str(name), value, raw=raw)
            except UnicodeEncodeError as exc:
                raise not_unicode(exc, f"Input {reprlib.repr(str(name))}") from None
            if buffer is not None:
                buffers.append(buffer)
        if not request.inputs:
            raise TensorError(f"No inputs were given for model {model!r}.", hint="Pass a dict of input name -> array.")
        if outputs is not None:
            if isinstance(outputs, str):  # one output's name, not its letters
                outputs = (outputs,)
            named = outputs.items() if isinstance(outputs, Mapping) else ((o, None) for o in outputs)
            for name, params in named:
                requested = request.outputs.add(name=str(name))
                if params:
                    set_parameters(requested.parameters, params)
        if sum(memoryview(b).nbytes for b in buffers) < wire.SMALL:  # small: protobuf's copy is cheaper
            request.raw_input_contents.extend(memoryview(b).tobytes() for b in buffers)
            small: bytes = request.SerializeToString(deterministic=True)
            return small
        head = request.SerializeToString(deterministic=True)
        return wire.join(head, wire.RAW_INPUT_FIELD, buffers)
    except UnicodeEncodeError as exc:  # in a name: protobuf strings are UTF-8
        given = {"model": model, "version": version, "request_id": request_id}
        what = next((f"{k}={reprlib.repr(v)}" for k, v in given.items() if v == exc.object), "An input's or output's name")
        raise not_unicode(exc, what) from None


def not_unicode(exc: UnicodeEncodeError, what: str) -> InvalidArgumentError:
    """The error for text holding a lone surrogate (JSON's ``"\\ud800"``, a non-UTF-8 command line)."""
    return InvalidArgumentError(
        f"{what} holds a lone surrogate "
        f"({exc.object[exc.start:min(exc.end, exc.start + 4)]!r} at position {exc.start}), which is not text UTF-8 can carry.",
        hint="Fix the text (text.encode('utf-8', 'replace').decode() shows where), or send bytes.")


def _plain_inputs(inputs: Any) -> tuple[tuple[tuple[str, str, tuple[int, ...]], ...], list[np.ndarray]] | None:
    """``(specs, buffers)`` when every input is a contiguous little-endian numeric ndarray (or a Tensor
    of one whose datatype is its own), else ``None``: the general path then checks and converts."""
    if not isinstance(inputs, Mapping) or not inputs:
        return None
    specs, buffers = [], []
    for name, value in inputs.items():
        datatype = None
        if isinstance(value, Tensor):
            if value.parameters:
                return None
            value, datatype = value.data, value.datatype
        if type(value) is not np.ndarray or not value.flags.c_contiguous or type(name) is not str:
            return None
        own = PLAIN_DTYPES.get(value.dtype)
        if own is None or (datatype is not None and datatype != own):
            return None
        specs.append((name, own, value.shape))
        buffers.append(value)
    return tuple(specs), buffers


def decode_response(
    data: bytes,
    *,
    copy: bool = False,
    bytes_as_str: bool = False,
    plans: dict[int, ReplyPlan | None] | None = None,
) -> InferResult:
    """An ``InferResult`` from a serialized ModelInferResponse, every tensor validated.

    ``plans`` (a dict a connection keeps) holds reply layouts by length: a reply with a known
    layout is read from it (see ``easnb.reply_plans``), any other is decoded in full.
    """
    if plans is not None:
        plan = plans.get(len(data))
        if plan is not None:
            known = plan.decode(data, copy)
            if known is not None:
                return known
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
        name, datatype = tensor.name, tensor.datatype  # each field read from the message costs a call
        if name in outputs:
            raise TensorError(
                f"The reply has two outputs called {name!r}.",
                hint="The server sent a malformed reply: each output name must appear once.",
            )
        params = tensor.parameters
        outputs[name] = decode_tensor(
            name,
            datatype,
            tensor.shape,
            raws[i] if raws else None,
            tensor.contents if tensor.HasField("contents") else None,
            copy=copy,
            # MLServer marks text outputs with the parameter content_type: str
            bytes_as_str=bytes_as_str or (bool(params) and datatype == "BYTES" and _says_text(params)),
        )
        datatypes[name] = datatype
        if params:
            output_parameters[name] = to_dict(params)
    result = InferResult(
        model_name=response.model_name,
        model_version=response.model_version,
        id=response.id,
        outputs=outputs,
        datatypes=datatypes,
        parameters=to_dict(response.parameters) if response.parameters else {},
        output_parameters=output_parameters,
    )
    if plans is not None and len(data) < wire.SMALL and len(data) not in plans:
        if len(plans) >= reply_plans.PLANS:
            plans.clear()
        # one try per length (None: not plain), so replies that differ in more than their tensor
        # bytes (an echoed request id) cost a failed look-up, not a failed learning, each time
        plans[len(data)] = reply_plans.learn(data, response, raws, result)
    return result


def _says_text(parameters: Any) -> bool:
    content_type = parameters.get("content_type")
    return content_type is not None and content_type.string_param == "str"


def decode_request(data: bytes) -> tuple[Any, list[memoryview]]:
    """A server's view of a request: the message without raw contents, and the raw buffers."""
    return wire.split(data, ModelInferRequest, wire.RAW_INPUT_FIELD)
