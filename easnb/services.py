"""A client for any gRPC service: from the server's reflection, or from a ``.proto`` file.

A ``.proto`` is compiled with grpcio-tools' protoc into its own private descriptor
pool, so loading the same file twice, or after the user imported their own
``helloworld_pb2``, never collides. Reflection builds the same from the server.

>>> greeter = conn.service("helloworld.GreeterService")              # doctest: +SKIP
>>> greeter.SayHello(name="World").message                           # doctest: +SKIP
'Hello, World!'
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import message_factory
from google.protobuf.message import Message

from ._proto import load_pool
from .arguments import server_call
from .calls import DEFAULT, quiet, unreadable_reply
from .credentials import Headers
from .errors import EasnbError, NotFoundError, RequestError, UnimplementedError
from .rpc_errors import from_rpc_error
from .fork import MARGIN, Unanswered
from .messages import build, serialize, to_json
from .protoc import compile_descriptor_set

__all__ = [
    "Method", "Replies", "RequestError", "RequestStream", "ServiceClient",
    "descriptor_from_proto", "descriptor_from_server", "iter_replies", "resolve", "to_json",
]

if TYPE_CHECKING:
    from .link import AsyncLink, Link


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


def descriptor_from_server(conn: Link, name: str) -> Any:
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


def resolve(conn: Link, proto_or_name: str | Path, name: str | None, include: Sequence[str | Path]) -> Any:
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


class ServiceClient:
    """Methods of one service; each takes a message, a dict or keyword fields and returns the reply."""

    def __init__(self, connection: Link | AsyncLink, descriptor: Any, aio: bool = False) -> None:
        self._connection = connection
        self.descriptor = descriptor
        self.name = descriptor.full_name
        self._find = _reflection_lookup(connection, descriptor)
        self.methods: dict[str, Method] = {m.name: Method(connection, m, aio, self._find) for m in descriptor.methods}

    def to_json(self, message: Message) -> Any:
        """A reply (or request) as JSON, ``Any`` unpacked with this service's descriptors (see ``messages.to_json``)."""
        return to_json(message, find=self._find)

    def __getattr__(self, name: str) -> Method:
        methods: dict[str, Method] = self.__dict__.get("methods", {})
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

    def __init__(self, connection: Any, descriptor: Any, aio: bool = False, find: Any = None) -> None:
        self.connection = connection
        self._find = find
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
        """This method's stub on ``channel`` (bytes in: requests are serialized before the call)."""
        made = self._stub
        if made is None or made[0] is not channel:  # a connection's channel is new after a fork
            made = self._stub = (channel, getattr(channel, self.kind)(
                self.path, request_serializer=None, response_deserializer=quiet(self.response_class.FromString)
            ))
        return made[1]

    def message(self, value: Message | dict[str, Any] | str | None = None, **fields: Any) -> Message:
        """A checked request from a message, a dict (proto3 JSON or Python values), JSON text, or keyword fields.

        Python ``bytes`` go into bytes fields as they are; in JSON, bytes are base64. Raises
        ``RequestError`` naming the field (unknown, of the wrong type, or required and missing).
        """
        return build(self.request_class, value, fields, f"The request to {self.path}", self._find)

    def encode(self, value: Any = None, fields: dict[str, Any] | None = None, where: str = "") -> bytes:
        """The serialized request, built and checked as ``message`` does (``where`` names it in errors)."""
        where = where or f"The request to {self.path}"
        return serialize(build(self.request_class, value, fields, where, self._find), where)

    def encode_streamed(self, value: Any, where: str) -> bytes:
        """One request of a client stream: as ``encode``, but ``None`` (a list comprehension's
        forgotten return) is refused, not sent as an empty request."""
        if value is None:
            raise RequestError(f"{where} is None.", hint="Each request of a stream is a dict or a message; {} is an empty one.")
        return self.encode(value, where=where)

    def to_json(self, message: Message) -> Any:
        """A reply as JSON, ``Any`` unpacked with this service's descriptors (see ``messages.to_json``)."""
        return to_json(message, find=self._find)

    def _requests(self, request: Any, fields: dict[str, Any]) -> Any:
        """What the stub is given: one request's bytes, a list of them, or a ``RequestStream`` for an iterator."""
        if not self.client_streaming:
            return self.encode(request, fields)
        if fields or isinstance(request, (dict, Message, str, bytes)):
            raise RequestError(
                f"{self.path} is client-streaming: it takes an iterable of requests (dicts or messages).",
                hint="Pass a list, e.g. method([{...}, {...}]), or a generator of requests.",
            )
        if request is None:
            return iter(())
        if isinstance(request, Collection) and not isinstance(request, Iterator):
            count = len(request)
            return iter([self.encode_streamed(r, f"Request {i} of {count} to {self.path}") for i, r in enumerate(request, 1)])
        if not self._aio and not hasattr(request, "__iter__"):
            raise RequestError(f"{self.path} takes an iterable of requests; {type(request).__name__} is not one.")
        return RequestStream(self, request)

    def __call__(
        self, request: Any = None, *, timeout: float | None = DEFAULT, headers: Headers | None = None, **fields: Any
    ) -> Any:
        """Call with a message, a dict or keyword fields; ``timeout`` as in ``Connection`` (None: no deadline).

        ``headers`` go with this call on top of the connection's. A client-streaming
        method takes an iterable of requests; a server-streaming one returns an iterator
        of replies (``.cancel()`` on it stops the stream). Every request is built and
        checked before the call opens (a generator's, as gRPC asks for them): a mistake is a
        ``RequestError`` naming the field. A ``timeout`` or ``headers`` of the wrong type is an
        ``ArgumentError``.
        """
        timeout = server_call(timeout, headers)
        if self._aio:
            return self._acall(request, timeout, headers, fields)
        conn = self.connection
        messages = self._requests(request, fields)
        stream = messages if isinstance(messages, RequestStream) else None
        metadata = conn.metadata_for(headers)
        stub = self.stub(conn.channel)
        if self.client_streaming and not self.server_streaming:
            invoke: Any = lambda s: _one_reply(stub, messages, s, metadata, stream)  # noqa: E731
        else:
            invoke = lambda s: stub(messages, timeout=s, metadata=metadata)  # noqa: E731
        try:
            answer = conn.call(self.path, invoke, timeout)
        except EasnbError:
            if stream is not None and stream.error is not None:
                raise stream.error from None
            raise
        if not self.server_streaming:
            return answer
        if stream is not None:
            stream.attach(answer)
        return Replies(answer, self, conn.deadline(timeout), stream)

    async def _acall(self, request: Any, timeout: Any, headers: Headers | None, fields: dict[str, Any]) -> Any:
        conn: AsyncLink = self.connection
        messages = self._requests(request, fields)
        stream = messages if isinstance(messages, RequestStream) else None

        def make(channel: Any) -> Any:
            return self.stub(channel) if stream is None else stream.attaching(self.stub(channel))

        if self.server_streaming:
            return _aiter(conn, self, messages, timeout, headers, make, stream)
        try:
            return await conn.call_stub(self.path, make, messages, timeout, headers)
        except (asyncio.CancelledError, EasnbError):
            if stream is not None and stream.error is not None:
                raise stream.error from None
            raise

    def __repr__(self) -> str:
        return f"<method {self.path}({self.request_class.DESCRIPTOR.name}) -> {self.response_class.DESCRIPTOR.name}>"


class Replies:
    """The replies of a server-streaming call, as they arrive; ``cancel()`` stops the stream."""

    def __init__(self, call: Any, method: Method, seconds: float | None, stream: RequestStream | None = None) -> None:
        self._call = call
        self._method = method
        self._seconds = seconds
        self._stream = stream

    def cancel(self) -> None:
        self._call.cancel()

    def __iter__(self) -> Iterator[Message]:
        conn = self._method.connection
        iterator = iter(self._call)
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except grpc.RpcError as exc:
                if self._stream is not None and self._stream.error is not None:
                    error: EasnbError = self._stream.error  # a request that could not be built stopped the call
                elif exc.code() == grpc.StatusCode.CANCELLED and self._call.cancelled():
                    return  # stopped on purpose
                else:
                    error = from_rpc_error(exc, method=self._method.path, timeout=self._seconds, **conn.error_context)
            else:
                yield item
                continue
            raise error  # outside the except block: the grpc.RpcError is not kept as __context__


async def _aiter(
    conn: AsyncLink, method: Method, messages: Any, timeout: Any, headers: Headers | None, make: Any, stream: RequestStream | None
) -> AsyncIterator[Message]:
    call = conn.open_stub(method.path, make, messages, timeout, headers)
    seconds = conn.timeout if timeout is DEFAULT else timeout
    while True:
        try:
            item = await call.read()
        except (grpc.RpcError, asyncio.CancelledError) as exc:
            if stream is not None and stream.error is not None:
                error: EasnbError = stream.error
            elif isinstance(exc, grpc.RpcError):
                error = from_rpc_error(exc, method=method.path, timeout=seconds, **conn.error_context)
            else:
                raise
        else:
            if item is grpc.aio.EOF:
                return
            if item is not None:  # grpc.aio's answer to a reply it cannot parse
                yield item
                continue
            error = unreadable_reply(method.path, conn.endpoint.target)
        raise error


def _one_reply(stub: Any, messages: Any, seconds: float | None, metadata: Any, stream: RequestStream | None) -> Any:
    """A client-streaming call with one reply, waited for at most its deadline plus ``MARGIN``."""
    call = stub.future(messages, timeout=seconds, metadata=metadata)
    if stream is not None:
        stream.attach(call)
    try:
        return call.result(timeout=None if seconds is None else seconds + MARGIN)
    except grpc.FutureTimeoutError:
        call.cancel()
        raise Unanswered(MARGIN) from None
    except grpc.FutureCancelledError:
        if stream is not None and stream.error is not None:
            raise stream.error from None
        raise


class RequestStream:
    """The requests of a client-streaming call given as an iterator (sync or async), each built,
    checked and serialized as gRPC asks for it. One that cannot be built cancels the call (so the
    server never takes the stream for complete) and is kept as ``error``, which the call raises."""

    def __init__(self, method: Method, items: Any) -> None:
        self._method = method
        self._items = items if hasattr(items, "__anext__") else iter(items)
        self._count = 0
        self._call: Any = None
        self._attached = threading.Event()
        self.error: RequestError | None = None

    def attach(self, call: Any) -> None:
        """The call these requests go on (cancelled at once if a request already failed)."""
        self._call = call
        self._attached.set()
        if self.error is not None:
            call.cancel()

    def attaching(self, stub: Any) -> Any:
        """``stub``, attaching each call it makes to this stream (for grpc.aio, which makes the call inside)."""

        def call(requests: Any, **options: Any) -> Any:
            made = stub(requests, **options)
            self.attach(made)
            return made

        return call

    def _next(self, item: Any) -> bytes:
        self._count += 1
        return self._method.encode_streamed(item, f"Request {self._count} to {self._method.path}")

    def _fail(self, exc: Exception, wait: bool) -> None:
        if not isinstance(exc, RequestError):
            exc = RequestError(
                f"The requests to {self._method.path} stopped after {self._count}: iterating them raised "
                f"{type(exc).__name__}: {exc}",
                hint="The call was cancelled; nothing after that request was sent.",
            )
        self.error = exc
        if wait and not self._attached.wait(5):  # gRPC reads on its own thread, maybe before attach()
            return
        if self._call is not None:
            self._call.cancel()

    def __iter__(self) -> RequestStream:
        return self

    def __next__(self) -> bytes:
        if self.error is None:
            try:
                return self._next(next(self._items))
            except StopIteration:
                raise
            except Exception as exc:
                self._fail(exc, wait=True)
        raise StopIteration

    def __aiter__(self) -> RequestStream:
        return self

    async def __anext__(self) -> bytes:
        if self.error is None:
            try:
                item = await self._items.__anext__() if hasattr(self._items, "__anext__") else next(self._items)
                return self._next(item)
            except (StopIteration, StopAsyncIteration):
                raise StopAsyncIteration from None
            except Exception as exc:
                self._fail(exc, wait=False)
        raise StopAsyncIteration


def _reflection_lookup(connection: Any, descriptor: Any) -> Any:
    """``find(full_name)`` asking the server's reflection, when the service came from it (else ``None``):
    an ``Any`` may hold a type from a file that none of the service's methods refers to."""
    reflection = getattr(connection, "known_reflection", None)
    if reflection is None or getattr(reflection, "pool", None) is not descriptor.file.pool:
        return None
    return lambda name: reflection.symbol(name, kinds=("message",))


def iter_replies(answer: Any) -> Iterable[Message]:
    """The replies of any call: one for a unary method, each streamed one otherwise."""
    return answer if isinstance(answer, Replies) else [answer]
