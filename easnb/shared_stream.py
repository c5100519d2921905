"""Several requests on one V2 stream (``conn.open_stream``), each caller reading only its own responses.

>>> with conn.open_stream("textgen") as s:                     # doctest: +SKIP
...     a, b = s.submit(inputs_a), s.submit(inputs_b)          # each iterates its own responses

One reader thread takes the stream's replies and hands each to its request's ``QueuedStream`` by
request id; against MLServer, whose calls carry one request each, every ``submit`` is a call of its own.

The reader thread holds only the stream's shared state (``Dispatch``), never the ``OpenStream``:
closing the stream, or dropping it (garbage collection), ends the call and with it the thread. A
request's own stream keeps its ``OpenStream`` alive while the caller holds it; requests that are
over, or that their caller dropped, are not kept.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from . import arguments
from ._proto import ModelInferResponse
from .calls import DEFAULT
from .errors import DeadlineError, EasnbError, ServerError
from .rpc_errors import from_rpc_error
from .stream_plans import inner_reply
from .stream_wire import FINAL, decode_stream_response, id_and_final
from .streaming import END, PATH, Reader, Stream, checked, flavour_of, idle_limits, open_call, request_parameters


class QueuedStream(Stream):
    """One request's share of a shared stream: its messages arrive through a queue."""

    _arrived: float  # perf_counter() when the reader thread took the latest message

    def __init__(self, owner: OpenStream, reader: Reader, request_id: str, first_timeout: float | None,
                 between_timeout: float | None) -> None:
        super().__init__(reader, request_id, first_timeout, between_timeout)
        self._owner = owner  # kept alive while this request is read
        self.token, self.target = owner.conn.error_context.get("token"), owner.conn.error_context.get("target", "")
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


class Dispatch:
    """A shared stream's state as its reader thread sees it: the call, the requests waiting, the failure."""

    def __init__(self) -> None:
        # weakly: a request its caller dropped unread is not waited for, nor keeps its OpenStream alive
        self.waiting: weakref.WeakValueDictionary[str, QueuedStream] = weakref.WeakValueDictionary()
        self.in_flight: set[str] = set()  # ids sent and not yet over (dropped or not): not to be sent again
        self.lock = threading.Lock()
        self.closed = False
        self.requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.call: Any = None
        self.failure: EasnbError | None = None

    def start(self, channel: Any, timeout: float | None, metadata: Any, context: dict[str, Any]) -> None:
        self.call = channel.stream_stream(PATH)(iter(self.requests.get, END), timeout=timeout, metadata=metadata)
        threading.Thread(target=self.run, args=(context,), name="easnb-stream-reader", daemon=True).start()

    def run(self, context: dict[str, Any]) -> None:
        """The reader thread: each reply to its request's queue, until the call ends."""
        try:
            heads = Heads()
            for data in self.call:
                request_id, final, error = heads.read(data)
                with self.lock:
                    stream = self.waiting.get(request_id)
                    if final or error:
                        self.in_flight.discard(request_id)
                        if stream is not None:
                            del self.waiting[request_id]
                if stream is not None:
                    stream.queue.put((data, time.perf_counter()))
                    stream = None  # held here until the next reply, it would keep its OpenStream alive
            failure: EasnbError = EasnbError("The server ended the stream before these requests' final responses.",
                                             hint="The server's logs say why.")
        except grpc.RpcError as exc:
            failure = from_rpc_error(exc, method="ModelStreamInfer", **context)
        except EasnbError as exc:  # a reply it cannot read: the stream is useless, end it on the wire too
            failure = exc
            self.call.cancel()
        with self.lock:
            self.failure = failure if not self.closed else None
            waiting = list(self.waiting.values())
            self.waiting.clear()
            self.in_flight.clear()
        for stream in waiting:
            if self.closed:  # close() cut these requests short: they end cancelled, not finished
                stream.cancelled = True
            stream.queue.put(END if self.closed else failure)

    def shut(self) -> None:
        """End the call (the server sees it cancelled) and so the reader thread; also when the stream is dropped."""
        self.closed = True
        if self.call is not None:
            self.requests.put(END)  # ends gRPC's thread that sends the requests
            self.call.cancel()


class OpenStream:
    """Several requests on one stream, each caller reading only its own responses (by request id).

    ``submit(...)`` takes what ``conn.stream`` takes and returns a ``Stream``. Against MLServer,
    whose calls carry one request each, every ``submit`` opens its own call behind the same API.
    Close it (``with``, or ``close()``) to cancel what is still running; dropping it does the same.
    """

    def __init__(self, conn: Any, model: str, flavour: str, options: dict[str, Any]) -> None:
        self.conn, self.model, self.flavour, self.options = conn, model, flavour, options
        self._ids = itertools.count()
        self._dispatch = Dispatch()
        self._calls: weakref.WeakSet[Stream] = weakref.WeakSet()  # MLServer's call per request, while in use
        self._shut = weakref.finalize(self, self._dispatch.shut)
        self._shut.atexit = False

    @property
    def _closed(self) -> bool:
        return self._dispatch.closed

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
            self._calls.add(call)
            return call
        version, raw, copy, as_str = (merged.pop(k, d) for k, d in (("version", ""), ("raw", True), ("copy", False),
                                                                     ("bytes_as_str", False)))
        _, inputs, outputs, version, request_id, _ = checked(self.conn, self.model, inputs, outputs, version, parameters,
                                                             request_id, None, merged.pop("headers", None), raw, copy, as_str)
        merged.pop("timeout", None)
        first, between = idle_limits(self.conn, merged)
        data = self.conn.encode_infer(self.model, inputs, outputs, version, request_parameters("triton", parameters),
                                      request_id, raw)
        stream = QueuedStream(self, Reader("triton", self.model, copy, as_str), request_id, first, between)
        dispatch = self._dispatch
        with dispatch.lock:
            if request_id in dispatch.in_flight:
                raise EasnbError(f"Request id {request_id!r} is already in flight on this stream.",
                                 hint="Give each request its own id, or leave request_id empty for one to be made.")
            if dispatch.failure is not None:
                raise dispatch.failure
            dispatch.waiting[request_id] = stream
            dispatch.in_flight.add(request_id)
        if dispatch.call is None:
            self._start()
        stream.sent_at = time.perf_counter()
        dispatch.requests.put(data)
        return stream

    def _start(self) -> None:
        self.conn.check_open()
        timeout = arguments.seconds(self.options.get("timeout"), "timeout")
        timeout = self.conn.timeout if timeout is DEFAULT else timeout
        metadata = self.conn.metadata_for(self.options.get("headers"))
        self._dispatch.start(self.conn.channel, timeout, metadata, {**self.conn.error_context, "timeout": timeout})

    def forget(self, request_id: str) -> None:
        with self._dispatch.lock:
            self._dispatch.waiting.pop(request_id, None)
            self._dispatch.in_flight.discard(request_id)

    def close(self) -> None:
        """Cancel whatever is still in flight and end the stream."""
        if self._closed:
            return
        self._dispatch.closed = True
        for stream in list(self._calls):
            stream.cancel()
        self._shut()

    cancel = close

    def __enter__(self) -> OpenStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        waiting = len(self._dispatch.waiting)
        return f"<OpenStream {self.model} ({self.flavour}), {waiting} requests waiting{', closed' if self._closed else ''}>"


class Heads:
    """The reader thread's view of replies: each request's id and final flag, from the bytes before a
    reply's tensors (its head) seen before, so a token costs a comparison and a walk over its raw fields."""

    def __init__(self) -> None:
        self.known: list[tuple[bytes, str, bool]] = []  # the latest first

    def read(self, data: bytes) -> tuple[str, bool, str]:
        """A reply's ``(request id, final flag, error message)``; ``ServerError`` for one easnb cannot read."""
        inner = inner_reply(data)  # the usual reply: no error message
        if inner is None:
            error, message = decode_stream_response(data)
            return (*_id_and_final(bytes(message)), error)
        for head, request_id, final in self.known:
            if inner.startswith(head) and raw_tail(inner, len(head)):
                return request_id, final, ""
        found = id_and_final(inner)
        if found is None:
            return (*_id_and_final(inner), "")
        start = raw_start(inner)
        if start is not None:
            del self.known[HEADS - 1 :]
            self.known.insert(0, (inner[:start], *found))
        return (*found, "")


#: How many reply heads the reader thread keeps (a token's and a final one's for a few interleaved requests).
HEADS = 16


def raw_start(inner: bytes) -> int | None:
    """Where a plainly written ModelInferResponse's raw output fields (field 6) begin, if only they follow."""
    pos, end, start = 0, len(inner), None
    while pos < end:
        tag, length = inner[pos], inner[pos + 1]
        if length > 0x7F:
            return None
        if tag == _RAW_TAG:
            start = pos if start is None else start
        else:
            start = None
        pos += 2 + length
    return start if pos == end else None


def raw_tail(inner: bytes, pos: int) -> bool:
    """Whether ``inner`` from ``pos`` on is raw output fields (field 6) with one-byte lengths, and nothing else."""
    end = len(inner)
    while pos < end:
        if inner[pos] != _RAW_TAG or pos + 1 == end or inner[pos + 1] > 0x7F:
            return False
        pos += 2 + inner[pos + 1]
    return pos == end


_RAW_TAG = 0x32  # ModelInferResponse.raw_output_contents, length-delimited


def _id_and_final(inner: bytes) -> tuple[str, bool]:
    """A reply's request id and final flag, parsed in full (what ``id_and_final`` leaves)."""
    try:
        head = ModelInferResponse.FromString(inner)
    except DecodeError:
        raise ServerError("The server's stream reply holds no valid ModelInferResponse.",
                          hint="The server, or something between it and you, sent a corrupt message.") from None
    final = head.parameters.get(FINAL)
    return head.id, final is not None and final.bool_param


def open_shared(conn: Any, model: str, flavour: str | None = None, **options: Any) -> OpenStream:
    """``Connection.open_stream``: see there."""
    model = arguments.text(model, "model")
    return OpenStream(conn, model, flavour_of(conn, flavour), options)
