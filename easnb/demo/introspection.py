"""The demo's health service and server reflection, so tools can ask it what it is.

Health answers from easnb's private pool (SERVING for the server and each service
it offers); reflection is grpcio-reflection's servicer over that same pool, under
both the v1 and the v1alpha name (the messages are the same). Reflection is offered
when grpcio-reflection is installed (``pip install 'easnb[proto]'``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import grpc

from .. import _proto
from .._proto import HEALTH_SERVICE

SERVING, SERVICE_UNKNOWN = 1, 3


def health_handler(services: Sequence[str]) -> grpc.GenericRpcHandler:
    """``grpc.health.v1.Health``: SERVING for "" and for each of ``services``."""
    known = {"", *services}

    def status(request: Any, context: grpc.ServicerContext) -> Any:
        if request.service not in known:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return _proto.HealthCheckResponse(status=SERVING)

    def watch(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        # the demo never changes state, so the stream ends after the current status
        state = SERVING if request.service in known else SERVICE_UNKNOWN
        yield _proto.HealthCheckResponse(status=state)

    request, response = _proto.HealthCheckRequest, _proto.HealthCheckResponse
    return grpc.method_handlers_generic_handler(
        HEALTH_SERVICE,
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                status, request.FromString, response.SerializeToString
            ),
            "Watch": grpc.unary_stream_rpc_method_handler(
                watch, request.FromString, response.SerializeToString
            ),
        },
    )


def reflection_handlers(services: Sequence[str]) -> list[grpc.GenericRpcHandler]:
    """Reflection (v1 and v1alpha) over easnb's pool, or none without grpcio-reflection."""
    try:
        from grpc_reflection.v1alpha import reflection, reflection_pb2
    except ImportError:
        return []
    names = [*services, "grpc.reflection.v1.ServerReflection", reflection.SERVICE_NAME]
    servicer = reflection.ReflectionServicer(names, pool=_proto.POOL)
    method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        reflection_pb2.ServerReflectionRequest.FromString,
        reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    return [
        grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": method})
        for name in ("grpc.reflection.v1.ServerReflection", reflection.SERVICE_NAME)
    ]
