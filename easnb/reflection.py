"""Descriptors from a server that offers gRPC server reflection (v1 or v1alpha): no ``.proto`` needed.

Uses grpcio-reflection's client-side descriptor database (``pip install 'easnb[proto]'``),
over the connection's channel with its token and headers. v1 and v1alpha carry the same
messages, so v1 is reached by renaming the method on the way out.

>>> reflect(conn).services()                                   # doctest: +SKIP
['grpc.health.v1.Health', 'helloworld.GreeterService', 'inference.GRPCInferenceService']
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import descriptor_pool

from .errors import EasnbError, NotFoundError, UnimplementedError

if TYPE_CHECKING:
    from .connection import Connection

V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
REFLECTION_SERVICES = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


class _Outgoing(grpc.StreamStreamClientInterceptor):
    """Adds the connection's metadata and a deadline, and renames the method to the reflection version asked for."""

    def __init__(self, conn: Connection, method: str) -> None:
        self._conn = conn
        self._method = method

    def intercept_stream_stream(self, continuation: Any, details: grpc.ClientCallDetails, requests: Any) -> Any:
        new = _CallDetails(
            self._method,
            self._conn.deadline(),
            self._conn.metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )
        return continuation(new, requests)


def _database(conn: Connection, method: str) -> Any:
    try:
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
    except ImportError:
        raise EasnbError(
            "Asking a server for its services needs grpcio-reflection.",
            hint="pip install 'easnb[proto]'  (or: pip install grpcio-reflection); or pass the .proto file.",
        ) from None
    return ProtoReflectionDescriptorDatabase(grpc.intercept_channel(conn.channel, _Outgoing(conn, method)))


class Reflection:
    """What a server's reflection service says: its services, and a descriptor pool that fetches on demand."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.version, self._services, self._db = self._first_that_answers()
        self.pool = descriptor_pool.DescriptorPool(self._db)

    def _first_that_answers(self) -> tuple[str, list[str], Any]:
        conn = self._conn
        for version, method in (("v1", V1), ("v1alpha", V1ALPHA)):
            db = _database(conn, method)
            try:
                services = conn.call("ServerReflectionInfo", lambda seconds: db.get_services(), retries=conn.retries)
            except UnimplementedError:
                continue
            return version, sorted(services), db
        raise UnimplementedError(
            f"{conn.endpoint.target} does not offer server reflection.",
            code=grpc.StatusCode.UNIMPLEMENTED,
            hint="Pass the service's .proto file: conn.service('service.proto', 'package.Service').",
        )

    def services(self, include_reflection: bool = False) -> list[str]:
        """Full names of the services the server offers (the reflection service itself left out)."""
        return [s for s in self._services if include_reflection or s not in REFLECTION_SERVICES]

    def service(self, name: str) -> Any:
        """The ServiceDescriptor of ``name``; the error lists what the server offers."""
        return self.symbol(name, kinds=("service",))

    def symbol(self, name: str, kinds: tuple[str, ...] = ("service", "message", "enum", "method")) -> Any:
        """The descriptor of a service, message, enum or method called ``name``, fetched from the server."""
        finders = {
            "service": self.pool.FindServiceByName,
            "message": self.pool.FindMessageTypeByName,
            "enum": self.pool.FindEnumTypeByName,
            "method": self.pool.FindMethodByName,
        }
        for kind in kinds:
            find = finders[kind]
            try:
                return self._conn.call("ServerReflectionInfo", lambda seconds: find(name))
            except KeyError:
                continue
        raise not_offered(name, self.services(), what=" or ".join(kinds))


def not_offered(name: str, offered: list[str], what: str = "service") -> NotFoundError:
    """The error for a name the server's reflection does not know; it lists what the server offers."""
    return NotFoundError(
        f"The server offers no {what} {name!r}. It offers: {', '.join(offered) or 'nothing'}.",
        hint="Use a full name, package included (e.g. 'helloworld.GreeterService').",
    )


def reflect(conn: Connection) -> Reflection:
    """Ask ``conn``'s server what it offers (raises ``UnimplementedError`` without reflection)."""
    return Reflection(conn)


_TYPES = {
    1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32", 8: "bool", 9: "string",
    12: "bytes", 13: "uint32", 15: "sfixed32", 16: "sfixed64", 17: "sint32", 18: "sint64",
}


def is_repeated(field: Any) -> bool:
    """Whether a field is repeated (``is_repeated`` on protobuf 6.31+, ``label`` before)."""
    flag = getattr(field, "is_repeated", None)
    return bool(flag) if flag is not None else field.label == 3


def _field_type(field: Any) -> str:
    if field.message_type is not None:
        entry = field.message_type
        if entry.GetOptions().map_entry:
            key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
            return f"map<{_field_type(key)}, {_field_type(value)}>"
        return "." + entry.full_name
    if field.enum_type is not None:
        return "." + field.enum_type.full_name
    return _TYPES.get(field.type, str(field.type))


def describe(descriptor: Any) -> str:
    """A descriptor as ``.proto``-like text (as ``grpcurl describe`` prints it)."""
    kind = type(descriptor).__name__
    if kind == "ServiceDescriptor":
        lines = [f"{descriptor.full_name} is a service:", f"service {descriptor.name} {{"]
        lines += [f"  {_rpc(m)}" for m in descriptor.methods]
        return "\n".join([*lines, "}"])
    if kind == "MethodDescriptor":
        return f"{descriptor.full_name} is a method:\n{_rpc(descriptor)}"
    if kind == "EnumDescriptor":
        body = [f"  {v.name} = {v.number};" for v in descriptor.values]
        return "\n".join([f"{descriptor.full_name} is an enum:", f"enum {descriptor.name} {{", *body, "}"])
    lines = [f"{descriptor.full_name} is a message:", f"message {descriptor.name} {{"]
    oneofs = {f.name: o.name for o in descriptor.oneofs for f in o.fields if not o.name.startswith("_")}
    for field in descriptor.fields:
        repeated = is_repeated(field) and not _field_type(field).startswith("map<")
        prefix = "repeated " if repeated else ""
        where = f"  // oneof {oneofs[field.name]}" if field.name in oneofs else ""
        lines.append(f"  {prefix}{_field_type(field)} {field.name} = {field.number};{where}")
    return "\n".join([*lines, "}"])


def _rpc(method: Any) -> str:
    request = ("stream " if method.client_streaming else "") + "." + method.input_type.full_name
    response = ("stream " if method.server_streaming else "") + "." + method.output_type.full_name
    return f"rpc {method.name} ( {request} ) returns ( {response} );"
