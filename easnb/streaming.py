"""Streaming inference over V2's ``ModelStreamInfer``: one request, many responses, as they arrive.

>>> for result in conn.stream("textgen", {"text_input": np.array([b"hi"], object)}):  # doctest: +SKIP
...     print(result["text_output"])
>>> with conn.open_stream("textgen") as s:                     # doctest: +SKIP
...     a, b = s.submit(inputs_a), s.submit(inputs_b)          # each iterates its own responses

Two servers speak it differently, told apart by their server metadata (``flavour=`` overrides):

- ``"triton"`` (Triton, PyTriton, the demo): replies are ``ModelStreamInferResponse``; a request
  ends with the response whose ``triton_final_response`` parameter is true, which easnb always
  asks for (``triton_enable_empty_final_response``); an error is a reply's ``error_message``.
- ``"mlserver"``: replies are plain ``ModelInferResponse``; one request per call, whose end is
  the end; an error ends the call (INTERNAL).

A stream keeps ``responses`` and their ``arrivals`` (``time.perf_counter()`` seconds) beside
``sent_at``, for latency figures.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from ._proto import V2_SERVICE, ModelInferResponse, method_path
from . import arguments
from .calls import DEFAULT
from .errors import DeadlineError, EasnbError, ServerError, StreamError, scrub
from .rpc_errors import from_rpc_error
from . import wire
from .inference import decode_response
from .parameters import to_python
from .tensors import decode_tensor
from .redaction import redact
from .results import InferResult
from .stream_plans import Plans, inner_reply
from .stream_wire import ENABLE_EMPTY_FINAL, FINAL, decode_stream_response

PATH = method_path(V2_SERVICE, "ModelStreamInfer")
SHOWN, DETAILS = 2000, 65536  # an in-stream error's characters in the message, and kept in details
FLAVOURS = ("triton", "mlserver")
_END = object()


def server_flavour(name: str) -> str:
    """``"mlserver"`` for a server whose metadata name says MLServer, else ``"triton"``."""
    return "mlserver" if "mlserver" in name.lower() else "triton"


def check_flavour(flavour: str | None) -> None:
    if flavour is not None and flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS} or None (ask the server), not {flavour!r}")


def request_parameters(flavour: str, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """The request's parameters, with Triton's ask for the final-response marker added."""
    merged = dict(parameters or {})
    if flavour == "triton":
        merged.setdefault(ENABLE_EMPTY_FINAL, True)
    return merged


class Reader:
    """Turns one stream's wire messages into results: the flavour, the decode options, the errors."""

    def __init__(self, flavour: str, model: str, copy: bool, bytes_as_str: bool) -> None:
        self.flavour, self.model, self.copy, self.bytes_as_str = flavour, model, copy, bytes_as_str
        self.plans = Plans()

    def read(self, data: bytes) -> tuple[InferResult | None, bool, str]:
        """``(result or None for a flags-only response, final, error message)``."""
        if self.flavour == "mlserver":
            return not_triton(decode_response(data, copy=self.copy, bytes_as_str=self.bytes_as_str)), False, ""
        inner = inner_reply(data)  # the usual reply: no error message, a layout seen before
        result = None if inner is None else self.plans.decode(inner, self.copy, self.bytes_as_str)
        if result is not None:
            final = result.parameters.get(FINAL) is True
            return (result if result.outputs or not final else None), final, ""
        error, reply = decode_stream_response(data)
        result = self.small(bytes(reply))
        if not error:
            self.plans.learn(reply, result)
        final = result.parameters.get(FINAL) is True
        if error:
            return result, True if FINAL not in result.parameters else final, error
        return (result if result.outputs or not final else None), final, ""


    def small(self, data: bytes) -> InferResult:
        """A token-sized reply decoded with less bookkeeping than ``decode_response`` (each tensor still
        checked by ``decode_tensor``); anything unusual (output parameters, typed contents, a repeated
        name, a missing raw buffer, a large reply) goes to ``decode_response``."""
        if len(data) < wire.SMALL:
            try:
                message = ModelInferResponse.FromString(data)
            except DecodeError:  # decode_response says what is wrong with it
                return decode_response(data)
            raws = message.raw_output_contents
            tensors = message.outputs
            if len(raws) == len(tensors):
                outputs, datatypes = {}, {}
                for raw, tensor in zip(raws, tensors):
                    name, datatype = tensor.name, tensor.datatype
                    if name in outputs or tensor.parameters or tensor.HasField("contents"):
                        break
                    outputs[name] = decode_tensor(name, datatype, tensor.shape, raw, None, copy=self.copy,
                                                  bytes_as_str=self.bytes_as_str)
                    datatypes[name] = datatype
                else:
                    parameters = {key: to_python(value) for key, value in message.parameters.items()}
                    return InferResult(message.model_name, message.model_version, message.id, outputs, datatypes, parameters, {})
        return decode_response(data, copy=self.copy, bytes_as_str=self.bytes_as_str)


class Stream:
    """One request's responses: iterate it for ``InferResult``s; it ends at the request's final response.

    ``cancel()``, leaving the loop (``break``), Ctrl-C and the timeouts cancel the call on the wire.
    Errors: ``StreamError`` for an in-stream failure, the usual ``EasnbError`` classes when the call
    ends with a status, ``DeadlineError`` for ``first_response_timeout``/``between_responses_timeout``;
    each carries ``received`` (what arrived before) and ``request_id``.
    """

    def __init__(self, reader: Reader, request_id: str, first_timeout: float | None, between_timeout: float | None) -> None:
        self.reader = reader
        self.model = reader.model
        self.request_id = request_id
        self.first_response_timeout, self.between_responses_timeout = first_timeout, between_timeout
        self.responses: list[InferResult] = []
        self.arrivals: list[float] = []  # perf_counter() seconds, one per message (flags-only ones too)
        self.sent_at = time.perf_counter()
        self.finished = False  # the final response (or the end of the call) arrived
        self.cancelled = False
        self._started = False

    # -- what a subclass provides --------------------------------------------------------
    def _next_message(self) -> Any:  # bytes, or _END when the call ended cleanly
        raise NotImplementedError

    def _cancel_call(self) -> None:
        raise NotImplementedError

    def _arrival(self) -> float:
        """When the message just read arrived."""
        return time.perf_counter()

    # -- the iteration ----------------------------------------------------------------------
    def __iter__(self) -> Iterator[InferResult]:
        if self._started:
            raise EasnbError("A stream can be read once.", hint="Its responses so far are in stream.responses.")
        self._started = True
        return self._iterate()

    def _iterate(self) -> Iterator[InferResult]:
        try:
            while not self.finished:
                data = self._next_message()
                if data is _END:
                    self.finished = not self.cancelled  # a cancelled request ends without its final response
                    return
                self.arrivals.append(self._arrival())
                result, final = received(self, data)
                if result is not None:
                    yield result
                if final:
                    self.finished = True
        except EasnbError as exc:
            self.finished = True
            self._cancel_call()  # a reply easnb could not read leaves the call open: end it too
            if isinstance(exc, ServerError) and "not a valid" in exc.message and self.reader.flavour == "triton":
                exc.hint = f"{exc.hint} {MAYBE_MLSERVER}"
            scrub(exc, token_of(self))  # a reply's names and ids may quote the token
            if not hasattr(exc, "received"):
                exc.received, exc.request_id = tuple(self.responses), self.request_id  # type: ignore[attr-defined]
            raise
        finally:
            if not self.finished:  # break, Ctrl-C, an exception in the caller's loop
                self.cancel()
            self._release()

    def _release(self) -> None:
        """The reading is over (final response, error, end, or cancel): free what watched it."""

    def cancel(self) -> None:
        """Cancel the request (the server sees the call cancelled); iteration then stops quietly."""
        if not self.finished and not self.cancelled:
            self.cancelled = True
            self._cancel_call()

    def collect(self) -> list[InferResult]:
        """Every response, after waiting for the final one."""
        for _ in self:
            pass
        return self.responses

    @property
    def time_to_first_response(self) -> float | None:
        """Seconds from sending to the first response (``None`` before it)."""
        return self.arrivals[0] - self.sent_at if self.arrivals else None

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "finished" if self.finished else "open"
        return f"<{type(self).__name__} {self.model} id={self.request_id!r}: {len(self.responses)} responses, {state}>"


MAYBE_MLSERVER = ("If the server is MLServer (whatever its server metadata says), its replies are plain "
                  "ModelInferResponses: pass flavour='mlserver'.")


def not_triton(result: InferResult) -> InferResult:
    """An MLServer reply, refused when it is Triton's ModelStreamInferResponse read as one: no model name and
    no outputs, and a model version that is the inner response's bytes (a server whose metadata misleads)."""
    if not result.outputs and not result.model_name and not result.model_version.isprintable():
        raise ServerError("The server's stream replies are Triton's ModelStreamInferResponses, not MLServer's.",
                          hint="Its server metadata says MLServer: pass flavour='triton'.")
    return result


def token_of(stream: Any) -> Any:
    """The token a stream (or one request's share of a shared stream) was sent with, or None."""
    context = getattr(stream, "_context", None)
    if context is None:  # one request's share of a shared stream: its owner's connection
        context = getattr(getattr(getattr(stream, "_owner", None), "conn", None), "error_context", None) or {}
    return context.get("token")


def received(stream: Any, data: bytes) -> tuple[InferResult | None, bool]:
    """One message of ``stream`` (sync or asyncio) read: (its response, kept in ``stream.responses``, or
    None; whether it is the request's final one). An error the server put in the stream is raised."""
    result, final, error = stream.reader.read(data)
    if error:
        stream.finished = True
        raise in_stream_error(stream, result, final, error)
    if result is not None:
        stream.responses.append(result)
    return result, final


def in_stream_error(stream: Any, result: InferResult | None, final: bool, error: str) -> StreamError:
    """The ``StreamError`` for an ``error_message`` reply (the token redacted): the id on the wire, and what came before."""
    error = redact(error, token_of(stream))[:DETAILS]
    shown = error if len(error) <= SHOWN else f"{error[:SHOWN]}... ({len(error)} characters: see error.details)"
    return StreamError(
        f"{stream.model} failed inside the stream (request id {stream.request_id!r}) after "
        f"{len(stream.responses)} responses: {shown}",
        request_id=result.id if result is not None and result.id else stream.request_id,
        final=final, received=tuple(stream.responses), details=error,
    )


class CallStream(Stream):
    """A stream that is one gRPC call of its own (one request sent, then half-closed)."""

    def __init__(self, conn: Any, data: bytes, reader: Reader, request_id: str, *, timeout: float | None,
                 first_timeout: float | None, between_timeout: float | None, metadata: Any) -> None:
        super().__init__(reader, request_id, first_timeout, between_timeout)
        conn.check_open()
        self._context = {**conn.error_context, "timeout": timeout}
        # unary-stream on the bidirectional method: one message, then the half-close, with no sending thread
        self.sent_at = time.perf_counter()  # time to first response counts the sending too
        self._call = conn.channel.unary_stream(PATH)(data, timeout=timeout, metadata=metadata)
        self._timed_out: str | None = None
        self._ended = threading.Event()
        if first_timeout is not None or between_timeout is not None:
            threading.Thread(target=self._watch, name="easnb-stream-watch", daemon=True).start()

    def _limit(self) -> tuple[float | None, str, float]:
        if self.arrivals:
            return self.between_responses_timeout, "between_responses_timeout", self.arrivals[-1]
        return self.first_response_timeout, "first_response_timeout", self.sent_at

    def _watch(self) -> None:
        # an arrival moves the deadline without waking this thread (that would cost every response):
        # it looks again at least four times per shortest limit, so a timeout fires within 1.25 limits
        limits = [x for x in (self.first_response_timeout, self.between_responses_timeout) if x is not None]
        poll = max(min(limits) / 4, 0.001)
        while True:
            limit, name, since = self._limit()
            wait = poll if limit is None else min(poll, since + limit - time.perf_counter())
            if self._ended.wait(max(wait, 0)):
                return
            if limit is not None and self._limit()[2] == since and time.perf_counter() >= since + limit:
                self._timed_out = f"{name}={limit:g}"
                self._call.cancel()
                return

    def _next_message(self) -> Any:
        try:
            return next(self._call)
        except StopIteration:
            self._ended.set()
            return _END
        except grpc.RpcError as exc:
            self._ended.set()
            if self._timed_out:
                error: EasnbError = DeadlineError(
                    f"{self.model} sent no response within {self._timed_out} s "
                    f"(request id {self.request_id!r}, {len(self.responses)} responses before).",
                    hint="Raise the timeout, or check the server's load; the request was cancelled.",
                    code=grpc.StatusCode.DEADLINE_EXCEEDED,
                )
            elif self.cancelled and exc.code() == grpc.StatusCode.CANCELLED:
                return _END
            else:
                error = from_rpc_error(exc, method="ModelStreamInfer", **self._context)
        raise error  # outside the except block: the grpc.RpcError (its text may hold the token) is not kept

    def _cancel_call(self) -> None:
        self._ended.set()
        self._call.cancel()

    def _release(self) -> None:
        # the watcher thread ends with the call, not a between_responses_timeout later (or never); a call still
        # open after the final response keeps it until the call ends, so a server that never ends the call is
        # still cancelled by between_responses_timeout
        if self.finished and not self.cancelled:
            self._call.add_done_callback(lambda _: self._ended.set())  # at once if the call has ended
        else:
            self._ended.set()


class QueuedStream(Stream):
    """One request's share of a shared stream: its messages arrive through a queue."""

    _arrived: float  # perf_counter() when the reader thread took the latest message

    def __init__(self, owner: OpenStream, reader: Reader, request_id: str, first_timeout: float | None,
                 between_timeout: float | None) -> None:
        super().__init__(reader, request_id, first_timeout, between_timeout)
        self._owner = owner
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
        if item is _END:
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
        self._call = self.conn.channel.stream_stream(PATH)(iter(self._requests.get, _END), timeout=timeout, metadata=metadata)
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
            stream.queue.put(_END if self._closed else failure)

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
            self._requests.put(_END)
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


def idle_limits(conn: Any, options: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """``first_response_timeout`` and ``between_responses_timeout`` (checked), the connection's timeout when not given."""
    unknown = set(options) - {"first_response_timeout", "between_responses_timeout"}
    if unknown:
        raise TypeError(f"stream() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
    limits = []
    for name in ("first_response_timeout", "between_responses_timeout"):
        value = arguments.seconds(options.get(name, DEFAULT), name)
        limits.append(conn.timeout if value is DEFAULT else value)
    return limits[0], limits[1]


def checked(conn: Any, model: Any, inputs: Any, outputs: Any, version: Any, parameters: Any, request_id: Any,
            timeout: Any, headers: Any, raw: Any, copy: Any, bytes_as_str: Any) -> tuple[Any, ...]:
    """``infer``'s checks for a stream: (model, inputs, outputs, version, request_id, overall timeout)."""
    model, inputs, outputs, version, request_id, timeout, _ = arguments.infer_call(
        model, inputs, outputs, version, parameters, request_id, timeout, headers, raw, 0, copy, bytes_as_str)
    return model, inputs, outputs, version, request_id, conn.timeout if timeout is DEFAULT else timeout


def flavour_of(conn: Any, flavour: str | None) -> str:
    """The server's streaming flavour, asked of its metadata once per connection."""
    check_flavour(flavour)
    if flavour is not None:
        return flavour
    known = getattr(conn, "stream_flavour", None)
    if known is None:
        known = conn.stream_flavour = server_flavour(conn.server_metadata().name)
    return known


def open_call(conn: Any, model: str, inputs: Any, *, outputs: Any = None, version: str = "",
              parameters: Mapping[str, Any] | None = None, request_id: str = "", timeout: float | None = None,
              headers: Any = None, raw: bool = True, copy: bool = False, bytes_as_str: bool = False,
              flavour: str | None = None, **idle: Any) -> CallStream:
    """``Connection.stream``: see there."""
    model, inputs, outputs, version, request_id, timeout = checked(
        conn, model, inputs, outputs, version, parameters, request_id, timeout, headers, raw, copy, bytes_as_str)
    first, between = idle_limits(conn, idle)
    flavour = flavour_of(conn, flavour)
    data = conn.encode_infer(model, inputs, outputs, version, request_parameters(flavour, parameters), request_id, raw)
    metadata = conn.metadata_for(headers)
    return CallStream(conn, data, Reader(flavour, model, copy, bytes_as_str), request_id, timeout=timeout,
                      first_timeout=first, between_timeout=between, metadata=metadata)


def open_shared(conn: Any, model: str, flavour: str | None = None, **options: Any) -> OpenStream:
    """``Connection.open_stream``: see there."""
    model = arguments.text(model, "model")
    return OpenStream(conn, model, flavour_of(conn, flavour), options)
