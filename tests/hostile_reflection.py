"""A small reflection server that says whatever a test wants: raw FileDescriptorProto bytes, errors, stalls.

Run it in-process (``HostileReflection(...)`` is a context manager) or as a process of its own,
``python -m tests.hostile_reflection SCENARIO`` printing its port, so a client that crashes is
seen as a failed check and not a dead test run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

V1 = "grpc.reflection.v1.ServerReflection"
V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"


def file(name: str, package: str = "", deps: tuple[str, ...] = (), **parts: Any) -> bytes:
    """A serialized FileDescriptorProto."""
    return descriptor_pb2.FileDescriptorProto(name=name, package=package, dependency=list(deps), syntax="proto3", **parts).SerializeToString()


def service_file(name: str, package: str, service: str, request: str = ".google.protobuf.Empty", response: str | None = None,
                 deps: tuple[str, ...] = ("google/protobuf/empty.proto",), messages: tuple[Any, ...] = ()) -> bytes:
    """A file declaring ``package.service`` with one method ``Get(request) returns (response)``."""
    method = descriptor_pb2.MethodDescriptorProto(name="Get", input_type=request, output_type=response or request)
    return file(name, package, deps, service=[descriptor_pb2.ServiceDescriptorProto(name=service, method=[method])],
                message_type=list(messages))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def nested(depth: int, name: str = "M") -> bytes:
    """A serialized DescriptorProto with ``depth`` levels of nested message types (written by hand:
    protobuf itself refuses to build one this deep)."""
    inner = _field(1, f"{name}{depth}".encode())
    for level in range(depth - 1, -1, -1):
        inner = _field(1, f"{name}{level}".encode()) + _field(3, inner)
    return inner


@dataclass
class Script:
    """What the server answers: ``files`` by name, ``symbols`` -> file name, and how it misbehaves."""

    files: dict[str, bytes] = field(default_factory=dict)
    symbols: dict[str, str] = field(default_factory=dict)
    services: list[str] = field(default_factory=list)
    delay: float = 0.0            # seconds before each file answer
    error_code: int = 0           # answer file requests with this error code (0: answer normally)
    end_early: bool = False       # end the stream without answering file requests
    abort: grpc.StatusCode | None = None  # fail the call itself on a file request
    list_reply: bytes | None = None  # raw bytes as the answer to list_services
    extra: Callable[[Any], Any] | None = None
    asked: list[str] = field(default_factory=list)


class HostileReflection:
    """Reflection (v1 and v1alpha) that answers from a ``Script`` on 127.0.0.1."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.server = grpc.server(futures.ThreadPoolExecutor(8), options=[("grpc.max_send_message_length", -1)])
        handler = grpc.stream_stream_rpc_method_handler(self._serve)  # bytes in, bytes out
        self.server.add_generic_rpc_handlers([
            grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler}) for name in (V1, V1ALPHA)
        ])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{self.port}"
        self.server.start()

    def _serve(self, requests: Any, context: grpc.ServicerContext) -> Any:
        s = self.script
        for raw in requests:
            request = reflection_pb2.ServerReflectionRequest.FromString(raw)
            kind = request.WhichOneof("message_request")
            reply = reflection_pb2.ServerReflectionResponse(original_request=request)
            if kind == "list_services":
                if s.list_reply is not None:
                    yield s.list_reply
                    continue
                reply.list_services_response.service.extend(reflection_pb2.ServiceResponse(name=n) for n in s.services)
                yield reply.SerializeToString()
                continue
            wanted = request.file_by_filename if kind == "file_by_filename" else s.symbols.get(request.file_containing_symbol, "")
            s.asked.append(request.file_by_filename or request.file_containing_symbol)
            time.sleep(s.delay)
            if s.end_early:
                return
            if s.abort is not None:
                context.abort(s.abort, "no")
            if s.error_code or wanted not in s.files:
                reply.error_response.error_code = s.error_code or grpc.StatusCode.NOT_FOUND.value[0]
                reply.error_response.error_message = "not here"
            else:
                reply.file_descriptor_response.file_descriptor_proto.append(s.files[wanted])
            yield reply.SerializeToString()

    def stop(self) -> None:
        self.server.stop(0)

    def __enter__(self) -> HostileReflection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def cyclic() -> Script:
    """``a.proto`` imports ``b.proto``, which imports ``a.proto``: this segfaulted protobuf's C implementation."""
    a = service_file("a.proto", "a", "A", deps=("b.proto", "google/protobuf/empty.proto"))
    b = file("b.proto", "b", ("a.proto",))
    return Script({"a.proto": a, "b.proto": b}, {"a.A": "a.proto"}, ["a.A"])


def deep(depth: int = 500) -> Script:
    """A message with 500 nested message types: RecursionError before."""
    f = service_file("deep.proto", "d", "D", request=".d.M0", deps=()) + _field(4, nested(depth))  # 4: message_type
    return Script({"deep.proto": f}, {"d.D": "deep.proto"}, ["d.D"])


def references(count: int = 600) -> Script:
    """``r.A0`` has a field of type ``r.A1``, which has one of ``r.A2``, ...: protobuf made their classes
    by recursion, one level per type (RecursionError past ~490)."""
    def message(i: int) -> Any:
        kind = descriptor_pb2.FieldDescriptorProto
        field = kind(name="next", number=1, type=kind.TYPE_MESSAGE, label=kind.LABEL_OPTIONAL, type_name=f".r.A{i + 1}") \
            if i + 1 < count else kind(name="s", number=1, type=kind.TYPE_STRING, label=kind.LABEL_OPTIONAL)
        return descriptor_pb2.DescriptorProto(name=f"A{i}", field=[field])

    f = service_file("r.proto", "r", "R", request=".r.A0", deps=(), messages=tuple(message(i) for i in range(count)))
    return Script({"r.proto": f}, {"r.R": "r.proto"}, ["r.R"])


def garbage() -> Script:
    """Bytes that are no FileDescriptorProto at all."""
    return Script({"g.proto": b"\xff\xff\xff\xff garbage \x00\x01"}, {"g.G": "g.proto"}, ["g.G"])


SCENARIOS = {"cyclic": cyclic, "deep": deep, "garbage": garbage, "references": references}


if __name__ == "__main__":
    with HostileReflection(SCENARIOS[sys.argv[1]]()) as running:
        print(running.port, flush=True)
        running.server.wait_for_termination()
