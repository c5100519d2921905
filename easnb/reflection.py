"""Descriptors from a server that offers gRPC server reflection (v1 or v1alpha): no ``.proto`` needed.

One look-up (a symbol, with every file it imports) is one ``ServerReflectionInfo`` stream
under one deadline, the connection's timeout (60 s when it has none); the files asked for
next go out together. What the server sends is checked before protobuf sees it (see
``descriptor_files``: size, count, import cycles and depth, message nesting) and built into
this reflection's own pool; every fault is a ``ReflectionError``. Files protobuf ships
(``google/protobuf/*.proto``) are filled in from protobuf when a server answers NOT_FOUND
for them, as grpc-js servers do. Needs grpcio-reflection (``pip install 'easnb[proto]'``).

>>> reflect(conn).services()                                   # doctest: +SKIP
['grpc.health.v1.Health', 'helloworld.GreeterService', 'inference.GRPCInferenceService']
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError

from .descriptor_files import Limits, all_messages, build, check, parse, reference_bound, shipped
from .errors import EasnbError, NotFoundError, ReflectionError, ResourceExhaustedError, UnimplementedError
from .redaction import redact

if TYPE_CHECKING:
    from .link import Link

V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
REFLECTION_SERVICES = ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")
NO_DEADLINE_S = 60.0  # a look-up on a connection without a timeout still ends
MAX_SERVICES = 10_000
_NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
T = TypeVar("T")
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,200}")


def _messages() -> Any:
    try:
        from grpc_reflection.v1alpha import reflection_pb2
    except ImportError:
        raise EasnbError(
            "Asking a server for its services needs grpcio-reflection.",
            hint="pip install 'easnb[proto]'  (or: pip install grpcio-reflection); or pass the .proto file.",
        ) from None
    return reflection_pb2


class _Session:
    """One ServerReflectionInfo stream: requests go out when asked, answers are read in order, bytes checked here."""

    def __init__(self, channel: Any, path: str, seconds: float, metadata: Any) -> None:
        self._pb = _messages()
        self._out: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        stub = channel.stream_stream(path)  # bytes both ways: easnb parses the answers itself
        self._call = stub(iter(self._out.get, None), timeout=seconds, metadata=metadata)

    def ask(self, requests: list[Any]) -> list[Any]:
        for request in requests:
            self._out.put(request.SerializeToString())
        answers = []
        for _ in requests:
            raw = next(self._call, None)  # a failed call raises its grpc.RpcError here
            if raw is None:
                raise ReflectionError("The server's reflection stream ended without answering.")
            try:
                answers.append(self._pb.ServerReflectionResponse.FromString(raw))
            except (DecodeError, ValueError) as exc:
                raise ReflectionError(f"The server's reflection answer is not a ServerReflectionResponse ({exc}).") from None
        return answers

    def request(self, **field: str) -> Any:
        return self._pb.ServerReflectionRequest(**field)

    def close(self) -> None:
        self._out.put(None)  # ends the request iterator, so grpc's thread reading it stops
        self._call.cancel()


@contextmanager
def _channel(conn: Link, limit: int) -> Iterator[Any]:
    """A channel of its own, whose receive limit bounds what one answer can cost; the
    connection's when the user handed it a channel (its own limits then apply)."""
    settings = getattr(conn, "settings", None)
    if not getattr(conn, "owns_channel", False) or settings is None:
        yield conn.channel
        return
    options = [(k, v) for k, v in settings.options if k != "grpc.max_receive_message_length"]
    channel = settings.replace(options=(*options, ("grpc.max_receive_message_length", limit))).open_channel()
    try:
        yield channel
    finally:
        channel.close()


def _refused(answer: Any, what: str, token: Any = None) -> ReflectionError:
    error = answer.error_response
    return ReflectionError(
        f"The server's reflection refused {what}: code {error.error_code}: {redact(error.error_message, token)!r}."
    )


class Reflection:
    """What a server's reflection service says: its services, and a private pool of the files fetched so far.

    ``limits`` bounds each look-up (see ``Limits``). Thread-safe: look-ups are serialized.
    """

    def __init__(self, conn: Link, limits: Limits = Limits()) -> None:
        self._conn = conn
        self.limits = limits
        self.pool = descriptor_pool.DescriptorPool()
        self._files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        self._built: set[str] = set()
        self._bytes = 0
        self._lock = threading.Lock()
        self.version, self._path, self._services = self._first_that_answers()

    def _exchange(self, path: str, work: Callable[[_Session], T], retries: int = 0) -> T:
        conn = self._conn
        seconds = conn.deadline()
        seconds = NO_DEADLINE_S if seconds is None else seconds

        def invoke(left: float | None) -> T:
            with _channel(conn, self.limits.total_bytes) as channel:
                session = _Session(channel, path, NO_DEADLINE_S if left is None else left, conn.metadata)
                try:
                    return work(session)
                finally:
                    session.close()

        try:
            return conn.call("ServerReflectionInfo", invoke, seconds, retries)
        except ResourceExhaustedError as exc:
            if "larger than max" not in exc.details:
                raise
        raise ReflectionError(f"The server's reflection sent an answer over {self.limits.total_bytes} bytes: refused.")

    def _first_that_answers(self) -> tuple[str, str, list[str]]:
        conn = self._conn
        for version, path in (("v1", V1), ("v1alpha", V1ALPHA)):
            try:
                answer = self._exchange(path, lambda s: s.ask([s.request(list_services="")])[0], retries=conn.retries)
            except UnimplementedError:
                continue
            return version, path, _service_names(answer, conn.error_context.get("token"))
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
        """The descriptor of a service, message, enum or method called ``name``, fetched from the server.

        Raises ``NotFoundError`` (listing what the server offers), ``ReflectionError`` for an
        answer easnb refuses, ``DeadlineError`` when the whole look-up outlasts the timeout.
        """
        with self._lock:
            found = self._find(name, kinds)
            if found is None and self._exchange(self._path, lambda s: self._fetch(s, name)):
                found = self._find(name, kinds)
        if found is None:
            raise not_offered(name, self.services(), what=" or ".join(kinds))
        return found

    def _find(self, name: str, kinds: tuple[str, ...]) -> Any:
        finders = {
            "service": self.pool.FindServiceByName,
            "message": self.pool.FindMessageTypeByName,
            "enum": self.pool.FindEnumTypeByName,
            "method": self.pool.FindMethodByName,
        }
        for kind in kinds:
            try:
                return finders[kind](name)
            except KeyError:
                continue
        return None

    def _fetch(self, session: _Session, name: str) -> bool:
        """Fetch the file defining ``name`` and everything it imports; check and build them. False: no such symbol."""
        (answer,) = session.ask([session.request(file_containing_symbol=name)])
        if answer.WhichOneof("message_response") == "error_response" and answer.error_response.error_code == _NOT_FOUND:
            return False
        new: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        spent = [0]  # bytes this look-up received; kept in self._bytes only if it succeeds
        self._take(answer, f"the file of {name!r}", new, spent)
        asked: set[str] = set()
        while True:
            importers = {d: f.name for f in new.values() for d in f.dependency if d not in self._files and d not in new}
            if not importers:
                break
            again = sorted(set(importers) & asked)
            if again:
                raise ReflectionError(f"The server's reflection was asked for {again[0]!r} and sent other files instead.")
            if len(self._files) + len(new) + len(importers) > self.limits.files:
                raise ReflectionError(f"{name!r} needs over {self.limits.files} files: refused.")
            missing = sorted(importers)
            asked.update(missing)
            for file, answer in zip(missing, session.ask([session.request(file_by_filename=f) for f in missing])):
                if answer.WhichOneof("message_response") == "error_response" and answer.error_response.error_code == _NOT_FOUND:
                    own = shipped(file)
                    if own is None:
                        raise ReflectionError(
                            f"{importers[file]!r} imports {file!r}, and the server's reflection answers NOT_FOUND for it.",
                            hint=f"The server's reflection should offer {file!r}; until it does, call the service with "
                            "its .proto file: conn.service('file.proto', 'package.Service').",
                        )
                    new[file] = own
                else:
                    self._take(answer, repr(file), new, spent)
        order = check({**self._files, **new}, self.limits)  # nothing reaches the pool before this passes
        self._check_references(order, set(new))
        self._files.update(new)
        self._bytes += spent[0]
        build(self.pool, order, self._built)
        return True

    def _check_references(self, order: list[descriptor_pb2.FileDescriptorProto], new: set[str]) -> None:
        """Refuse files whose message types reach each other through fields too deep for protobuf
        to make their classes; checked on a scratch pool, so the real one never holds them."""
        scratch = descriptor_pool.DescriptorPool()
        build(scratch, order, set())
        bound = reference_bound(all_messages([scratch.FindFileByName(name) for name in new]))
        if bound > self.limits.references:
            raise ReflectionError(
                f"The server's message types reach each other through fields up to {bound} deep, "
                f"over {self.limits.references}: refused."
            )

    def _take(self, answer: Any, what: str, into: dict[str, descriptor_pb2.FileDescriptorProto], spent: list[int]) -> None:
        kind = answer.WhichOneof("message_response")
        if kind == "error_response":
            raise _refused(answer, what, self._conn.error_context.get("token"))
        if kind != "file_descriptor_response":
            raise ReflectionError(f"The server's reflection answered a request for {what} with {kind or 'nothing'}.")
        for data in answer.file_descriptor_response.file_descriptor_proto:
            spent[0] += len(data)
            if self._bytes + spent[0] > self.limits.total_bytes:
                raise ReflectionError(f"The server's reflection sent over {self.limits.total_bytes} bytes of files: refused.")
            proto = parse(data, what)
            proto = shipped(proto.name) or proto  # a file protobuf ships is protobuf's copy, whatever the server sent
            if proto.name not in self._files:
                into[proto.name] = proto
            if len(self._files) + len(into) > self.limits.files:
                raise ReflectionError(f"The server's reflection sent over {self.limits.files} files: refused.")


def _service_names(answer: Any, token: Any = None) -> list[str]:
    kind = answer.WhichOneof("message_response")
    if kind == "error_response":
        raise _refused(answer, "to list its services", token)
    if kind != "list_services_response":
        raise ReflectionError(f"The server's reflection answered a request for its services with {kind or 'nothing'}.")
    names = [s.name for s in answer.list_services_response.service]
    if len(names) > MAX_SERVICES:
        raise ReflectionError(f"The server's reflection lists {len(names)} services, over {MAX_SERVICES}: refused.")
    return sorted(set(names))


def not_offered(name: str, offered: list[str], what: str = "service") -> NotFoundError:
    """The error for a name the server's reflection does not know; it lists what the server offers."""
    return NotFoundError(
        f"The server offers no {what} {name!r}. It offers: {', '.join(map(_shown, offered)) or 'nothing'}.",
        hint="Use a full name, package included (e.g. 'helloworld.GreeterService').",
    )


def _shown(name: str) -> str:
    """A name as it is when it is a plain dotted name, else as ``repr`` shows it (quotes, escapes)."""
    return name if _PLAIN.fullmatch(name) else repr(name)


def reflect(conn: Link, limits: Limits = Limits()) -> Reflection:
    """Ask ``conn``'s server what it offers (raises ``UnimplementedError`` without reflection)."""
    return Reflection(conn, limits)


_TYPES = {
    1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32", 8: "bool", 9: "string",
    12: "bytes", 13: "uint32", 15: "sfixed32", 16: "sfixed64", 17: "sint32", 18: "sint64",
}


def is_repeated(field: Any) -> bool:
    """Whether a field is repeated (``is_repeated`` on protobuf 6.31+, ``label`` before)."""
    flag = getattr(field, "is_repeated", None)
    return bool(flag) if flag is not None else field.label == 3


def field_type(field: Any, in_map: bool = False) -> str:
    """A field's type as a .proto file writes it (``map<k, v>`` for a map field)."""
    if field.message_type is not None:
        entry = field.message_type
        parts = entry.fields_by_name
        if entry.GetOptions().map_entry and not in_map and "key" in parts and "value" in parts:  # one level: a server's
            return f"map<{field_type(parts['key'], True)}, {field_type(parts['value'], True)}>"  # entries may loop
        return f".{entry.full_name}"
    if field.enum_type is not None:
        return f".{field.enum_type.full_name}"
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
        repeated = is_repeated(field) and not field_type(field).startswith("map<")
        prefix = "repeated " if repeated else ""
        where = f"  // oneof {oneofs[field.name]}" if field.name in oneofs else ""
        lines.append(f"  {prefix}{field_type(field)} {field.name} = {field.number};{where}")
    return "\n".join([*lines, "}"])


def _rpc(method: Any) -> str:
    request = ("stream " if method.client_streaming else "") + "." + method.input_type.full_name
    response = ("stream " if method.server_streaming else "") + "." + method.output_type.full_name
    return f"rpc {method.name} ( {request} ) returns ( {response} );"
