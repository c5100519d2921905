"""A client for any gRPC service described by a ``.proto`` file.

Each ``.proto`` is compiled with grpcio-tools' protoc into its own private
descriptor pool, so loading the same file twice, or after the user imported their
own ``helloworld_pb2``, never collides.

>>> greeter = ServiceClient(conn, "protos/helloworld.proto", "helloworld.GreeterService")  # doctest: +SKIP
>>> greeter.SayHello(name="World").message                                                 # doctest: +SKIP
'Hello, World!'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import Message

from ._proto import load_pool, message_class
from .connection import DEFAULT
from .credentials import Headers
from .errors import EasnbError, NotFoundError, from_rpc_error
from .protoc import compile_descriptor_set

if TYPE_CHECKING:
    from .connection import Connection


class ServiceClient:
    """Methods of one service; each takes a message or keyword fields and returns the reply."""

    def __init__(
        self, connection: Connection, proto: str | Path, name: str, include: Sequence[str | Path] = ()
    ) -> None:
        self._connection = connection
        pool = load_pool(compile_descriptor_set(proto, include))
        try:
            self.descriptor = pool.FindServiceByName(name)
        except KeyError:
            found = [
                s.full_name for f in _files(pool, proto) for s in f.services_by_name.values()
            ]
            raise NotFoundError(
                f"No service {name!r} in {str(proto)!r}. Services there: {', '.join(found) or 'none'}.",
                hint="Use the full name, package included (e.g. 'helloworld.GreeterService').",
            ) from None
        self.name = name
        self.methods: dict[str, _Method] = {}
        for method in self.descriptor.methods:
            self.methods[method.name] = _Method(
                connection,
                f"/{self.descriptor.full_name}/{method.name}",
                message_class(method.input_type.full_name, pool),
                message_class(method.output_type.full_name, pool),
                method.client_streaming,
                method.server_streaming,
            )

    def __getattr__(self, name: str) -> _Method:
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


def _files(pool: Any, proto: str | Path) -> list[Any]:
    try:
        return [pool.FindFileByName(Path(proto).name)]
    except KeyError:
        return []


class _Method:
    """One method: unary or streaming, called with a message, a dict, or keyword fields."""

    def __init__(
        self,
        connection: Connection,
        path: str,
        request: type[Message],
        response: type[Message],
        client_streaming: bool,
        server_streaming: bool,
    ) -> None:
        self._connection = connection
        self.path = path
        self.request_class = request
        self.response_class = response
        self.client_streaming = client_streaming
        self.server_streaming = server_streaming
        kind = ("stream" if client_streaming else "unary") + "_" + ("stream" if server_streaming else "unary")
        self._stub = getattr(connection.channel, kind)(
            path, request_serializer=request.SerializeToString, response_deserializer=response.FromString
        )

    def _message(self, value: Message | dict[str, Any] | None = None, **fields: Any) -> Message:
        if isinstance(value, Message):
            return value
        try:
            return self.request_class(**(value or {}), **fields)
        except (ValueError, TypeError) as exc:
            raise EasnbError(
                f"Cannot build {self.request_class.DESCRIPTOR.full_name} for {self.path}: {exc}.",
                hint=f"Its fields are: {', '.join(f.name for f in self.request_class.DESCRIPTOR.fields)}.",
            ) from None

    def __call__(
        self, request: Any = None, *, timeout: float | None = DEFAULT, headers: Headers | None = None, **fields: Any
    ) -> Any:
        """Call with a message, a dict or keyword fields; ``timeout`` as in ``Connection`` (None: no deadline).

        ``headers`` are sent with this call on top of the connection's. A server-streaming
        method returns an iterator of replies.
        """
        if self.client_streaming:
            messages: Any = (self._message(r) for r in (request or ()))
        else:
            messages = self._message(request, **fields)
        conn = self._connection
        metadata = conn.metadata_for(headers)
        answer = conn.call(self.path, lambda s: self._stub(messages, timeout=s, metadata=metadata), timeout)
        return self._iterate(answer, conn.deadline(timeout)) if self.server_streaming else answer

    def _iterate(self, stream: Iterable[Message], seconds: float | None) -> Iterator[Message]:
        conn = self._connection
        iterator = iter(stream)
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except grpc.RpcError as exc:
                error = from_rpc_error(exc, method=self.path, timeout=seconds, **conn.error_context)
            else:
                yield item
                continue
            raise error  # outside the except block: the grpc.RpcError is not kept as __context__

    def __repr__(self) -> str:
        return f"<method {self.path}({self.request_class.DESCRIPTOR.name}) -> {self.response_class.DESCRIPTOR.name}>"
