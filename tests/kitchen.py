"""The kitchen test server: every field kind and every streaming kind, with reflection and health."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format, message_factory

from easnb._proto import load_pool
from easnb.demo.introspection import health_handler
from easnb.protoc import compile_descriptor_set

PROTO = Path(__file__).parent / "protos" / "kitchen.proto"
SERVICE = "kitchen.Kitchen"


class Kitchen:
    """Serves ``kitchen.Kitchen`` and records each request as proto3 JSON (``json_format`` on the server side)."""

    def __init__(self, reflection: bool = True, health: bool = True) -> None:
        self.pool = load_pool(compile_descriptor_set(PROTO))
        self.service = self.pool.FindServiceByName(SERVICE)
        self.Everything = self._class("kitchen.Everything")
        self.Inner = self._class("kitchen.Inner")
        self.received: list[dict[str, Any]] = []
        handlers = [self._handler()]
        if health:
            handlers.append(health_handler([SERVICE]))
        self.server = grpc.server(futures.ThreadPoolExecutor(8), handlers=handlers)
        if reflection:
            from grpc_reflection.v1alpha import reflection as grpc_reflection

            grpc_reflection.enable_server_reflection([SERVICE, "grpc.health.v1.Health"], self.server, pool=self.pool)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _class(self, name: str) -> Any:
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(name))

    def _record(self, message: Any) -> None:
        self.received.append(json_format.MessageToDict(message, preserving_proto_field_name=True))

    def echo(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._record(request)
        return request

    def count(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self._record(request)
        for i, value in enumerate(request.values):
            if request.label == "slow":
                time.sleep(0.3)
            yield self.Inner(label=f"{request.label}-{i}", values=[value])

    def sum(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        total = 0
        for request in requests:
            self._record(request)
            total += sum(request.values)
        return self.Inner(label="sum", values=[total])

    def chat(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        for request in requests:
            self._record(request)
            yield self.Inner(label=request.label, values=[2 * v for v in request.values])

    def _handler(self) -> grpc.GenericRpcHandler:
        E, I = self.Everything, self.Inner

        def h(kind: Any, fn: Any, req: Any, resp: Any) -> Any:
            return kind(fn, request_deserializer=req.FromString, response_serializer=resp.SerializeToString)

        return grpc.method_handlers_generic_handler(SERVICE, {
            "Echo": h(grpc.unary_unary_rpc_method_handler, self.echo, E, E),
            "Count": h(grpc.unary_stream_rpc_method_handler, self.count, I, I),
            "Sum": h(grpc.stream_unary_rpc_method_handler, self.sum, I, I),
            "Chat": h(grpc.stream_stream_rpc_method_handler, self.chat, I, I),
        })

    def stop(self) -> None:
        self.server.stop(None)


#: One request that sets every field, extremes included, as proto3 JSON.
EVERYTHING = {
    "f_double": 1.5, "f_float": -2.25, "f_int32": -2147483648, "f_int64": "-9223372036854775808",
    "f_uint32": 4294967295, "f_uint64": "18446744073709551615", "f_sint32": -7, "f_sint64": "-9223372036854775807",
    "f_fixed32": 7, "f_fixed64": "18446744073709551614", "f_sfixed32": -8, "f_sfixed64": "9223372036854775807",
    "f_bool": True, "f_string": "h\u00e9llo", "f_bytes": "AAEC/w==", "colour": "GREEN",
    "inner": {"label": "in", "values": [1, 2, 3]}, "tags": ["a", "b"], "counts": {"x": "9007199254740993"},
    "number": 42, "when": "2026-11-23T12:00:00Z",
}
