"""The demo's gRPC server: every V2 RPC, the hello-world GreeterService, and the EAS token check.

>>> with DemoServer(token="secret") as server:   # doctest: +SKIP
...     easnb.connect(server.endpoint, token=server.token).live()
True
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from concurrent import futures
from typing import Any, TypeVar

import grpc

from .. import _proto
from .._proto import GREETER_SERVICE, HEALTH_SERVICE, V2_SERVICE
from ..errors import EasnbError
from .auth import check_authorization
from .introspection import health_handler, reflection_handlers
from .model import Model
from .service import SERVER_NAME, Abort, V2Service  # noqa: F401 - re-exported
from .streams import stream_infer

OFFERED = (V2_SERVICE, GREETER_SERVICE)
SERVER_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    # Like a gateway configured for keepalive: accept client pings, idle ones too, as often as
    # every half second, instead of gRPC's default GOAWAY "too_many_pings".
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 500),
]


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


class TokenInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]  # grpcio ships no type hints
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


S = TypeVar("S", bound="Served")


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

    def start(self: S) -> S:
        if not self._started:
            self._server.start()
            self._started = True
        return self

    def stop(self, grace: float | None = None) -> None:
        self._server.stop(grace).wait()

    def wait(self) -> None:
        """Block until the server stops."""
        self._server.wait_for_termination()

    def __enter__(self: S) -> S:
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
