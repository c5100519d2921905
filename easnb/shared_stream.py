"""Several requests on one V2 stream (``conn.open_stream``), each caller reading only its own responses.

>>> with conn.open_stream("textgen") as s:                     # doctest: +SKIP
...     a, b = s.submit(inputs_a), s.submit(inputs_b)          # each iterates its own responses

One reader thread takes the stream's replies and hands each to its request's ``QueuedStream`` by
request id; against MLServer, whose calls carry one request each, every ``submit`` is a call of its own.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from . import arguments
from ._proto import ModelInferResponse
from .calls import DEFAULT
from .errors import DeadlineError, EasnbError, ServerError
from .rpc_errors import from_rpc_error
from .stream_wire import FINAL, decode_stream_response
from .streaming import END, PATH, Reader, Stream, checked, flavour_of, idle_limits, open_call, request_parameters


class QueuedStream(Stream):
    """One request's share of a shared stream: its messages arrive through a queue."""

    _arrived: float  # perf_counter() when the reader thread took the latest message

    def __init__(self, owner: OpenStream, reader: Reader, request_id: str, first_timeout: float | None,
                 between_timeout: float | None) -> None:
        super().__init__(reader, request_id, first_timeout, between_timeout)
        self._owner = owner
        self.token = owner.conn.error_context.get("token")
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def _next_message(self) -> Any:
        limit, name = (
            (self.between_responses_timeout, "between_responses_timeout") if self.arrivals
            else (self.first_response_timeout, "first_response_timeout")
        )
        try:
            item = self.queue.get(timeout=limit)
        except queue.Empty:
            self._owner.forget(self.request_id)
            raise DeadlineError(
                f"{self.model} sent no response within {name}={limit:g} s (request id {self.request_id!r}).",
                code=grpc.StatusCode.DEADLINE_EXCEEDED,
            ) from None
        if isinstance(item, EasnbError):
            raise item
        if item is END:
            return item
        data, self._arrived = item
        return data

    def _arrival(self) -> float:
        return self._arrived  # stamped by the reader thread, not when this request's reader got to it

    def _cancel_call(self) -> None:
        # Triton has no per-request cancel on a shared stream: stop listening; cancel() the whole stream to stop it
        self._owner.forget(self.request_id)


class OpenStream:
    """Several requests on one stream, each caller reading only its own responses (by request id).

    ``submit(...)`` takes what ``conn.stream`` takes and returns a ``Stream``. Against MLServer,
    whose calls carry one request each, every ``submit`` opens its own call behind the same API.
    Close it (``with``, or ``close()``) to cancel what is still running.
    """

    def __init__(self, conn: Any, model: str, flavour: str, options: dict[str, Any]) -> None:
        self.conn, self.model, self.flavour, self.options = conn, model, flavour, options
        self._ids = itertools.count()
        self._waiting: dict[str, QueuedStream] = {}
        self._lock = threading.Lock()
        self._calls: list[Stream] = []
        self._closed = False
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._call: Any = None
        self._failure: EasnbError | None = None

    def submit(self, inputs: Any, outputs: Any = None, parameters: Mapping[str, Any] | None = None,
               request_id: str = "", **options: Any) -> Stream:
        """Send one request on this stream; its own responses come from the returned ``Stream``."""
        if self._closed:
            raise EasnbError("This stream is closed.", hint="Open another with conn.open_stream(model).")
        merged = {**self.options, **options}
        request_id = request_id or f"easnb-{next(self._ids)}"
        shared_parameters = merged.pop("parameters", None)
        parameters = shared_parameters if parameters is None else parameters
        if self.flavour == "mlserver":
            call = open_call(self.conn, self.model, inputs, outputs=outputs, parameters=parameters,
                             request_id=request_id, flavour="mlserver", **merged)
            self._calls.append(call)
            return call
        version, raw, copy, as_str = (merged.pop(k, d) for k, d in (("version", ""), ("raw", True), ("copy", False),
                                                                     ("bytes_as_str", False)))
        _, inputs, outputs, version, request_id, _ = checked(self.conn, self.model, inputs, outputs, version, parameters,
                                                             request_id, None, merged.pop("headers", None), raw, copy, as_str)
        merged.pop("timeout", None)
        first, between = idle_limits(self.conn, merged)
        data = self.conn.encode_infer(self.model, inputs, outputs, version, request_parameters("triton", parameters),
                                      request_id, raw)
        reader = Reader("triton", self.model, copy, as_str)
        stream = QueuedStream(self, reader, request_id, first, between)
        with self._lock:
            if request_id in self._waiting:
                raise EasnbError(f"Request id {request_id!r} is already in flight on this stream.",
                                 hint="Give each request its own id, or leave request_id empty for one to be made.")
            if self._failure is not None:
                raise self._failure
            self._waiting[request_id] = stream
        if self._call is None:
            self._start(self.options)
        stream.sent_at = time.perf_counter()
        self._requests.put(data)
        return stream

    def _start(self, options: dict[str, Any]) -> None:
        self.conn.check_open()
        timeout = arguments.seconds(options.get("timeout"), "timeout")
        timeout = self.conn.timeout if timeout is DEFAULT else timeout
        metadata = self.conn.metadata_for(options.get("headers"))
        context = {**self.conn.error_context, "timeout": timeout}
        self._call = self.conn.channel.stream_stream(PATH)(iter(self._requests.get, END), timeout=timeout, metadata=metadata)
        threading.Thread(target=self._dispatch, args=(context,), name="easnb-stream-reader", daemon=True).start()

    def _dispatch(self, context: dict[str, Any]) -> None:
        try:
            for data in self._call:
                error, inner = decode_stream_response(data)
                request_id, final = _id_and_final(inner)
                with self._lock:
                    stream = self._waiting.get(request_id)
                    if stream is not None and (final or error):
                        del self._waiting[request_id]
                if stream is not None:
                    stream.queue.put((data, time.perf_counter()))
            failure: EasnbError = EasnbError("The server ended the stream before these requests' final responses.",
                                             hint="The server's logs say why.")
        except grpc.RpcError as exc:
            failure = from_rpc_error(exc, method="ModelStreamInfer", **context)
        except EasnbError as exc:  # a reply it cannot read: the stream is useless, end it on the wire too
            failure = exc
            self._call.cancel()
        with self._lock:
            self._failure = failure if not self._closed else None
            waiting, self._waiting = list(self._waiting.values()), {}
        for stream in waiting:
            if self._closed:  # close() cut these requests short: they end cancelled, not finished
                stream.cancelled = True
            stream.queue.put(END if self._closed else failure)

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._waiting.pop(request_id, None)

    def close(self) -> None:
        """Cancel whatever is still in flight and end the stream."""
        if self._closed:
            return
        self._closed = True
        for stream in self._calls:
            stream.cancel()
        if self._call is not None:
            self._requests.put(END)
            self._call.cancel()

    cancel = close

    def __enter__(self) -> OpenStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<OpenStream {self.model} ({self.flavour}), {len(self._waiting)} requests waiting{', closed' if self._closed else ''}>"


def _id_and_final(inner: Any) -> tuple[str, bool]:
    """A reply's request id and final flag (the tensors are read later, by the request's own stream)."""
    try:
        head = ModelInferResponse.FromString(bytes(inner))
    except DecodeError:
        raise ServerError("The server's stream reply holds no valid ModelInferResponse.",
                          hint="The server, or something between it and you, sent a corrupt message.") from None
    final = head.parameters.get(FINAL)
    return head.id, final is not None and final.bool_param


def open_shared(conn: Any, model: str, flavour: str | None = None, **options: Any) -> OpenStream:
    """``Connection.open_stream``: see there."""
    model = arguments.text(model, "model")
    return OpenStream(conn, model, flavour_of(conn, flavour), options)
