"""The demo's gRPC server: every V2 RPC, the hello-world GreeterService, and the EAS token check.

>>> with DemoServer(token="secret") as server:   # doctest: +SKIP
...     easnb.connect(server.endpoint, token=server.token).live()
True
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from typing import Any

import grpc
import numpy as np

from .. import __version__, _proto, wire
from .._proto import GREETER_SERVICE, HEALTH_SERVICE, V2_SERVICE
from ..errors import EasnbError
from ..inference import decode_request
from ..parameters import to_python
from ..stream_wire import DECOUPLED_REFUSAL
from ..tensors import Tensor, decode_tensor, encode_tensor
from .auth import check_authorization
from .introspection import health_handler, reflection_handlers
from .models import Model, all_models
from .statistics import Clock, ModelStats, statistics_reply

SERVER_NAME = "easnb-demo"
OFFERED = (V2_SERVICE, GREETER_SERVICE)
SERVER_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    # Like a gateway configured for keepalive: accept client pings, idle ones too, as often as
    # every half second, instead of gRPC's default GOAWAY "too_many_pings".
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 500),
]


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
        arrays, datatypes = self._inputs(model, request, raws)
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

    def _inputs(self, model: Model, request: Any, raws: list[memoryview]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
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


def _unary(behaviour: Callable[[Any], Any], request_class: Any = None, response_class: Any = None) -> grpc.RpcMethodHandler:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behaviour(request)
        except Abort as exc:
            context.abort(exc.code, exc.message)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=request_class.FromString if request_class else None,
        response_serializer=response_class.SerializeToString if response_class else None,
    )


def v2_handler(service: V2Service, index: bool = True) -> grpc.GenericRpcHandler:
    """The generic handler serving ``service`` at the standard V2 method paths (and Triton's index)."""
    p = _proto
    methods = {
        "ServerLive": _unary(service.server_live, p.ServerLiveRequest, p.ServerLiveResponse),
        "ServerReady": _unary(service.server_ready, p.ServerReadyRequest, p.ServerReadyResponse),
        "ModelReady": _unary(service.model_ready, p.ModelReadyRequest, p.ModelReadyResponse),
        "ServerMetadata": _unary(service.server_metadata, p.ServerMetadataRequest, p.ServerMetadataResponse),
        "ModelMetadata": _unary(service.model_metadata, p.ModelMetadataRequest, p.ModelMetadataResponse),
        "ModelInfer": _unary(service.model_infer),  # bytes in, bytes out: easnb's codec
    }
    from .streams import stream_infer

    methods["ModelStreamInfer"] = stream_infer(service)
    if index:  # Triton's extension: which models the server has
        methods["RepositoryIndex"] = _unary(service.repository_index, p.RepositoryIndexRequest, p.RepositoryIndexResponse)
    # Triton's statistics extension: counts and cumulative nanoseconds per model and stage
    methods["ModelStatistics"] = _unary(service.model_statistics, p.ModelStatisticsRequest, p.ModelStatisticsResponse)
    return grpc.method_handlers_generic_handler(V2_SERVICE, methods)


def greeter_handler() -> grpc.GenericRpcHandler:
    """The hello-world ``GreeterService``, answering as the EAS seed's server.py does."""

    def say_hello(request: Any) -> Any:
        return _proto.HelloResponse(message=f"Hello, {request.name}!")

    return grpc.method_handlers_generic_handler(
        GREETER_SERVICE, {"SayHello": _unary(say_hello, _proto.HelloRequest, _proto.HelloResponse)}
    )


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses every call whose metadata lacks ``authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._token = token

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        problem = check_authorization(details.invocation_metadata, self._token)
        if problem is None:
            return continuation(details)

        def deny(requests: Any, context: grpc.ServicerContext) -> None:
            # a streaming handler is called before any request message arrives, so a caller
            # that sends headers and never a message cannot hold a worker
            context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)

        return grpc.stream_stream_rpc_method_handler(deny)

    def __repr__(self) -> str:
        return "<TokenInterceptor>"


def format_endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Served:
    """A gRPC server bound to ``host``: token, endpoint, start, stop, wait, and ``with``."""

    _server: grpc.Server
    _token: str
    host: str
    port: int

    def _listen(self, host: str, port: int, what: str) -> None:
        self.host = host
        self.port = self._server.add_insecure_port(format_endpoint(host, port))
        if not self.port:
            raise EasnbError(f"The {what} could not listen on {format_endpoint(host, port)}.", hint="Pick another port.")
        self._started = False

    @property
    def token(self) -> str:
        """The token clients must send (empty when none is checked)."""
        return self._token

    @property
    def endpoint(self) -> str:
        """``host:port`` to give ``easnb.connect``."""
        return format_endpoint(self.host, self.port)

    def start(self) -> Served:
        if not self._started:
            self._server.start()
            self._started = True
        return self

    def stop(self, grace: float | None = None) -> None:
        self._server.stop(grace).wait()

    def wait(self) -> None:
        """Block until the server stops."""
        self._server.wait_for_termination()

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class DemoServer(Served):
    """The demo on ``host`` (loopback unless told otherwise), token-checked like an EAS gateway.

    ``token=None`` makes a random token; ``token=""`` serves without any check.
    """

    def __init__(
        self,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_workers: int = 32,
        models: Mapping[str, Model] | None = None,
    ) -> None:
        self._token = secrets.token_urlsafe(24) if token is None else token
        interceptors = [TokenInterceptor(self._token)] if self._token else []
        self.service = V2Service(models)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="easnb-demo"),
            handlers=[
                v2_handler(self.service),
                greeter_handler(),
                health_handler(OFFERED),
                *reflection_handlers([*OFFERED, HEALTH_SERVICE]),
            ],
            interceptors=interceptors,
            options=SERVER_OPTIONS,
            # past this, calls are refused with RESOURCE_EXHAUSTED instead of queueing without end
            maximum_concurrent_rpcs=max_workers * 4,
        )
        self._listen(host, port, "demo")

    def __repr__(self) -> str:
        check = "token checked" if self._token else "no token check"
        return f"<DemoServer {self.endpoint}, {check}>"
