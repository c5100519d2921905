"""A client for any gRPC service: from the server's reflection, or from a ``.proto`` file.

A ``.proto`` is compiled with grpcio-tools' protoc into its own private descriptor
pool, so loading the same file twice, or after the user imported their own
``helloworld_pb2``, never collides. Reflection builds the same from the server.

>>> greeter = conn.service("helloworld.GreeterService")              # doctest: +SKIP
>>> greeter.SayHello(name="World").message                           # doctest: +SKIP
'Hello, World!'
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.message import Message

from ._proto import load_pool
from .connection import DEFAULT
from .credentials import Headers
from .errors import EasnbError, NotFoundError, UnimplementedError, from_rpc_error
from .protoc import compile_descriptor_set

if TYPE_CHECKING:
    from .aio import AsyncConnection
    from .connection import Connection


def descriptor_from_proto(proto: str | Path, name: str, include: Sequence[str | Path] = ()) -> Any:
    """The ServiceDescriptor of ``name`` in a ``.proto`` file, compiled into a private pool."""
    pool = load_pool(compile_descriptor_set(proto, include))
    try:
        return pool.FindServiceByName(name)
    except KeyError:
        try:
            found = [s.full_name for s in pool.FindFileByName(Path(proto).name).services_by_name.values()]
        except KeyError:
            found = []
        raise NotFoundError(
            f"No service {name!r} in {str(proto)!r}. Services there: {', '.join(found) or 'none'}.",
            hint="Use the full name, package included (e.g. 'helloworld.GreeterService').",
        ) from None


def descriptor_from_server(conn: Connection, name: str) -> Any:
    """The ServiceDescriptor of ``name``, asked of the server's reflection."""
    try:
        reflection = conn.reflection()
    except UnimplementedError:
        raise UnimplementedError(
            f"{conn.endpoint.target} offers no server reflection, so {name!r} cannot be looked up there.",
            code=grpc.StatusCode.UNIMPLEMENTED,
            hint=f"Pass the service's .proto file: conn.service('its.proto', {name!r}).",
        ) from None
    return reflection.service(name)


def resolve(conn: Connection, proto_or_name: str | Path, name: str | None, include: Sequence[str | Path]) -> Any:
    """``service("pkg.Service")`` (reflection) or ``service("file.proto", "pkg.Service")``."""
    if name is not None:
        return descriptor_from_proto(proto_or_name, name, include)
    text = str(proto_or_name)
    if text.endswith(".proto") or Path(text).is_file():
        raise EasnbError(
            f"Which service of {text!r}? Name it too.",
            hint="conn.service('file.proto', 'package.Service'), or conn.service('package.Service') with reflection.",
        )
    return descriptor_from_server(conn, text)


class RequestError(EasnbError, ValueError):
    """A request that cannot be built from what was given (a wrong field name, type or JSON)."""


class ServiceClient:
    """Methods of one service; each takes a message, a dict or keyword fields and returns the reply."""

    def __init__(self, connection: Connection | AsyncConnection, descriptor: Any, aio: bool = False) -> None:
        self._connection = connection
        self.descriptor = descriptor
        self.name = descriptor.full_name
        self.methods: dict[str, Method] = {m.name: Method(connection, m, aio) for m in descriptor.methods}

    def __getattr__(self, name: str) -> Method:
        methods = self.__dict__.get("methods", {})
        if name in methods:
            return methods[name]
        raise AttributeError(
            f"Service {self.__dict__.get('name')!r} has no method {name!r}. Methods: {', '.join(methods) or 'none'}."
        )

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self.methods]

    def __repr__(self) -> str:
        return f"<ServiceClient {self.name} ({', '.join(self.methods)}) via {self._connection!r}>"


class Method:
    """One method: unary or streaming, called with a message, a dict, or keyword fields."""

    def __init__(self, connection: Any, descriptor: Any, aio: bool = False) -> None:
        self._connection = connection
        self.descriptor = descriptor
        self.path = f"/{descriptor.containing_service.full_name}/{descriptor.name}"
        self.request_class = message_factory.GetMessageClass(descriptor.input_type)
        self.response_class = message_factory.GetMessageClass(descriptor.output_type)
        self.client_streaming = descriptor.client_streaming
        self.server_streaming = descriptor.server_streaming
        self._aio = aio
        self._stub: Any = None

    @property
    def kind(self) -> str:
        """``unary_unary``, ``unary_stream``, ``stream_unary`` or ``stream_stream``."""
        return ("stream" if self.client_streaming else "unary") + "_" + ("stream" if self.server_streaming else "unary")

    def stub(self, channel: Any) -> Any:
        if self._stub is None:
            self._stub = getattr(channel, self.kind)(
                self.path,
                request_serializer=self.request_class.SerializeToString,
                response_deserializer=self.response_class.FromString,
            )
        return self._stub

    def message(self, value: Message | dict[str, Any] | str | None = None, **fields: Any) -> Message:
        """A request from a message, a dict (proto3 JSON or Python values) or JSON text, or keyword fields."""
        if isinstance(value, Message):
            return value
        problem: Exception
        try:
            if isinstance(value, str):
                return json_format.Parse(value, self.request_class())
            if isinstance(value, dict) and not fields:
                try:  # JSON as grpcurl takes it: int64 as strings, enums by name, bytes as base64
                    return json_format.ParseDict(value, self.request_class())
                except json_format.ParseError as exc:
                    problem = exc
                    try:  # Python values: bytes, ints, nested dicts
                        return self.request_class(**value)
                    except (ValueError, TypeError):
                        raise problem from None
            return self.request_class(**(value or {}), **fields)
        except (ValueError, TypeError, json_format.ParseError) as exc:
            raise RequestError(
                f"Cannot build {self.request_class.DESCRIPTOR.full_name} for {self.path}: {str(exc).rstrip('.')}.",
                hint=f"Its fields are: {', '.join(f.name for f in self.request_class.DESCRIPTOR.fields)}.",
            ) from None

    def _requests(self, request: Any, fields: dict[str, Any]) -> Any:
        if self.client_streaming:
            return (self.message(r) for r in (request or ()))
        return self.message(request, **fields)

    def __call__(
        self, request: Any = None, *, timeout: float | None = DEFAULT, headers: Headers | None = None, **fields: Any
    ) -> Any:
        """Call with a message, a dict or keyword fields; ``timeout`` as in ``Connection`` (None: no deadline).

        ``headers`` go with this call on top of the connection's. A client-streaming
        method takes an iterable of requests; a server-streaming one returns an iterator
        of replies (``.cancel()`` on it stops the stream).
        """
        if self._aio:
            return self._acall(request, timeout, headers, fields)
        conn = self._connection
        messages = self._requests(request, fields)
        metadata = conn.metadata_for(headers)
        stub = self.stub(conn.channel)
        answer = conn.call(self.path, lambda s: stub(messages, timeout=s, metadata=metadata), timeout)
        return Replies(answer, self, conn.deadline(timeout)) if self.server_streaming else answer

    async def _acall(self, request: Any, timeout: Any, headers: Headers | None, fields: dict[str, Any]) -> Any:
        conn: AsyncConnection = self._connection
        messages = self._requests(request, fields)
        if self.server_streaming:
            return _aiter(conn, self, messages, timeout, headers)
        return await conn.call_stub(self.path, lambda channel: self.stub(channel), messages, timeout, headers)

    def __repr__(self) -> str:
        return f"<method {self.path}({self.request_class.DESCRIPTOR.name}) -> {self.response_class.DESCRIPTOR.name}>"


class Replies:
    """The replies of a server-streaming call, as they arrive; ``cancel()`` stops the stream."""

    def __init__(self, call: Any, method: Method, seconds: float | None) -> None:
        self._call = call
        self._method = method
        self._seconds = seconds

    def cancel(self) -> None:
        self._call.cancel()

    def __iter__(self) -> Iterator[Message]:
        conn = self._method._connection
        iterator = iter(self._call)
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.CANCELLED and self._call.cancelled():
                    return  # stopped on purpose
                error = from_rpc_error(exc, method=self._method.path, timeout=self._seconds, **conn.error_context)
            else:
                yield item
                continue
            raise error  # outside the except block: the grpc.RpcError is not kept as __context__


async def _aiter(conn: AsyncConnection, method: Method, messages: Any, timeout: Any, headers: Headers | None) -> AsyncIterator[Message]:
    call = conn.open_stub(method.path, lambda channel: method.stub(channel), messages, timeout, headers)
    seconds = conn.timeout if timeout is DEFAULT else timeout
    while True:
        try:
            item = await call.read()
        except grpc.RpcError as exc:
            error = from_rpc_error(exc, method=method.path, timeout=seconds, **conn.error_context)
        else:
            if item is grpc.aio.EOF:
                return
            yield item
            continue
        raise error


def to_json(message: Message) -> dict[str, Any]:
    """A message as a JSON-ready dict (proto3 JSON: 64-bit integers as exact strings, bytes as base64)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def iter_replies(answer: Any) -> Iterable[Message]:
    """The replies of any call: one for a unary method, each streamed one otherwise."""
    return answer if isinstance(answer, Replies) else [answer]
