"""The demo's V2 ``GRPCInferenceService``, as plain methods over the demo models (bytes or messages in,
messages out); ``server`` serves it over gRPC and ``streams`` adds its ``ModelStreamInfer``."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import grpc
import numpy as np

from .. import __version__, _proto, wire
from ..errors import EasnbError
from ..inference import decode_request
from ..parameters import to_python
from ..stream_wire import DECOUPLED_REFUSAL
from ..tensors import Tensor, decode_tensor, encode_tensor
from .model import Model
from .models import all_models
from .statistics import Clock, ModelStats, statistics_reply

SERVER_NAME = "easnb-demo"


class Abort(Exception):
    """A call to refuse with a status code and a message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class V2Service:
    """The V2 ``GRPCInferenceService`` over the demo models.

    A ``delay_ms`` request parameter makes any model wait that long before answering.
    Decoupled models answer only through ``ModelStreamInfer`` (see ``easnb.demo.streams``).
    """

    def __init__(self, models: Mapping[str, Model] | None = None) -> None:
        self.models = dict(all_models() if models is None else models)
        self.stats = {name: ModelStats() for name in self.models}  # Triton's statistics extension
        # a model with ``instances`` runs that many requests at once; the others queue
        self.slots = {name: threading.Semaphore(m.instances) for name, m in self.models.items() if m.instances}
        self.lock = threading.Lock()
        self.cancelled = 0  # streamed requests stopped early because their client cancelled

    def model(self, name: str, version: str) -> Model:
        model = self.models.get(name)
        if model is None:
            known = ", ".join(sorted(self.models))
            raise Abort(grpc.StatusCode.NOT_FOUND, f"unknown model {name!r}; this server has {known}")
        if version and version not in model.metadata.versions:
            raise Abort(
                grpc.StatusCode.NOT_FOUND,
                f"model {name!r} has no version {version!r}; versions: {', '.join(model.metadata.versions)}",
            )
        return model

    def server_live(self, request: Any) -> Any:
        return _proto.ServerLiveResponse(live=True)

    def server_ready(self, request: Any) -> Any:
        return _proto.ServerReadyResponse(ready=True)

    def model_ready(self, request: Any) -> Any:
        self.model(request.name, request.version)
        return _proto.ModelReadyResponse(ready=True)

    def server_metadata(self, request: Any) -> Any:
        return _proto.ServerMetadataResponse(name=SERVER_NAME, version=__version__, extensions=["statistics"])

    def model_metadata(self, request: Any) -> Any:
        meta = self.model(request.name, request.version).metadata
        reply = _proto.ModelMetadataResponse(
            name=meta.name, versions=list(meta.versions), platform=meta.platform, properties=dict(meta.properties)
        )
        for items, tensors in ((reply.inputs, meta.inputs), (reply.outputs, meta.outputs)):
            for t in tensors:
                items.add(name=t.name, datatype=t.datatype, shape=list(t.shape))
        return reply

    def repository_index(self, request: Any) -> Any:
        reply = _proto.RepositoryIndexResponse()
        for name in sorted(self.models):
            reply.models.add(name=name, version=self.models[name].metadata.versions[-1], state="READY")
        return reply

    def model_statistics(self, request: Any) -> Any:
        if request.name:
            self.model(request.name, request.version)  # NOT_FOUND for an unknown model or version
        names = [request.name] if request.name else sorted(self.models)
        return statistics_reply(self.stats, {n: self.models[n].metadata.versions[-1] for n in names}, names)

    def model_infer(self, data: bytes) -> bytes:
        clock = Clock()
        try:
            request, raws = decode_request(data)
        except EasnbError as exc:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message) from None
        model = self.model(request.model_name, request.model_version)
        if model.stream is not None:  # Triton's answer for a decoupled model
            raise Abort(grpc.StatusCode.UNIMPLEMENTED, DECOUPLED_REFUSAL)
        slot, ok = self.slots.get(request.model_name), False
        clock.lap("compute_input")
        if slot is not None:  # wait for a free instance of the model, as Triton's scheduler queue does
            slot.acquire()
        clock.lap("queue")
        try:
            reply = self._infer(model, request, raws, clock)
            ok = True
            return reply
        finally:
            if slot is not None:
                slot.release()
            clock.lap("compute_output")
            first = request.inputs[0].shape if request.inputs else ()
            self.stats[request.model_name].record(clock.stages, first[0] if first else 1, ok)

    def _infer(self, model: Model, request: Any, raws: list[memoryview], clock: Clock) -> bytes:
        arrays, datatypes = self.inputs_of(model, request, raws)
        clock.lap("compute_input")
        if "delay_ms" in request.parameters:  # for trying timeouts: wait before answering
            time.sleep(max(0.0, float(to_python(request.parameters["delay_ms"]) or 0)) / 1000)
        try:
            outputs = model.run(arrays, datatypes)
        except (ValueError, KeyError) as exc:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"model {model.metadata.name!r}: {exc}") from None
        clock.lap("compute_infer")
        wanted = [o.name for o in request.outputs] or list(outputs)
        unknown = [n for n in wanted if n not in outputs]
        if unknown:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"model {model.metadata.name!r} has no output {unknown[0]!r}; outputs: {', '.join(outputs)}",
            )
        reply = _proto.ModelInferResponse(
            model_name=model.metadata.name, model_version=model.metadata.versions[-1], id=request.id
        )
        use_raw = bool(raws) or any(outputs[n][0] in ("FP16", "BF16") for n in wanted)
        buffers = []
        for name in wanted:
            datatype, array = outputs[name]
            buffer, _ = encode_tensor(reply.outputs.add(), name, Tensor(array, datatype), raw=use_raw)
            if buffer is not None:
                buffers.append(buffer)
        head = reply.SerializeToString(deterministic=True)
        return wire.join(head, wire.RAW_OUTPUT_FIELD, buffers) if use_raw else head

    def inputs_of(self, model: Model, request: Any, raws: list[memoryview]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """A request's inputs as arrays, with their datatypes, checked against ``model``."""
        name = model.metadata.name
        if raws and len(raws) != len(request.inputs):
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{len(request.inputs)} inputs but {len(raws)} raw_input_contents; give one per input",
            )
        arrays: dict[str, np.ndarray] = {}
        datatypes: dict[str, str] = {}
        expected = {t.name: t for t in model.metadata.inputs}
        for i, tensor in enumerate(request.inputs):
            meta = expected.get(tensor.name)
            if meta is None and not model.any_inputs:
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"model {name!r} has no input {tensor.name!r}; its inputs are {', '.join(expected)}",
                )
            if meta is not None:
                _check_tensor(name, meta, tensor.datatype, list(tensor.shape))
            try:
                arrays[tensor.name] = decode_tensor(
                    tensor.name,
                    tensor.datatype,
                    tensor.shape,
                    raws[i] if raws else None,
                    tensor.contents if tensor.HasField("contents") else None,
                )
            except EasnbError as exc:
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message) from None
            datatypes[tensor.name] = tensor.datatype
        missing = [n for n in expected if n not in arrays and n not in model.optional]
        if missing:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"model {name!r} needs input {missing[0]!r}, which is missing")
        return arrays, datatypes


def _check_tensor(model: str, meta: Any, datatype: str, shape: list[int]) -> None:
    if datatype != meta.datatype:
        raise Abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"model {model!r} input {meta.name!r} takes {meta.datatype}, not {datatype}",
        )
    fits = len(shape) == len(meta.shape) and all(m < 0 or m == s for m, s in zip(meta.shape, shape))
    if not fits:
        want = "[" + ", ".join("-1" if d < 0 else str(d) for d in meta.shape) + "]"
        raise Abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"model {model!r} input {meta.name!r} takes shape {want} (-1 is any size), not {shape}",
        )
