"""Streaming inference over V2's ``ModelStreamInfer``: one request, many responses, as they arrive.

>>> for result in conn.stream("textgen", {"text_input": np.array([b"hi"], object)}):  # doctest: +SKIP
...     print(result["text_output"])
>>> with conn.open_stream("textgen") as s:                     # doctest: +SKIP
...     a, b = s.submit(inputs_a), s.submit(inputs_b)          # each its own responses (easnb.shared_stream)

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

import time
from collections.abc import Iterator, Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from ._proto import V2_SERVICE, ModelInferResponse, method_path
from . import arguments, log
from .calls import DEFAULT
from .errors import ArgumentError, ClosedError, DeadlineError, EasnbError, ServerError, StreamError, scrub
from .loop import CLOSED_UNDER
from .rpc_errors import from_rpc_error
from . import wire
from .inference import decode_response
from .parameters import to_python
from .tensors import decode_tensor
from .redaction import redact
from .results import InferResult
from .stream_plans import Plans, inner_start
from .stream_wire import ENABLE_EMPTY_FINAL, FINAL, decode_stream_response

PATH = method_path(V2_SERVICE, "ModelStreamInfer")
SHOWN, DETAILS = 2000, 65536  # an in-stream error's characters in the message, and kept in details
FLAVOURS = ("triton", "mlserver")
#: Seconds a call may stay open after its final response before the watchdog ends it (a server that never ends it).
AFTER_FINAL = 1.0
END = object()  # what a stream's next message is when the call ended cleanly


def server_flavour(name: str) -> str:
    """``"mlserver"`` for a server whose metadata name says MLServer, else ``"triton"``."""
    return "mlserver" if "mlserver" in name.lower() else "triton"


def check_flavour(flavour: str | None) -> None:
    if flavour is not None:
        arguments.choice(flavour, "flavour", FLAVOURS)  # an ArgumentError naming the two (None: ask the server)


def request_parameters(flavour: str, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """The request's parameters, with Triton's ask for the final-response marker added."""
    merged = dict(parameters or {})
    if flavour == "triton":
        merged.setdefault(ENABLE_EMPTY_FINAL, True)
    return merged


class Reader:
    """Turns one stream's wire messages into results: the flavour, the decode options, the errors; ``plans``,
    a connection's ``stream_plans``, holds the reply layouts its streams learned (``easnb.stream_plans``)."""

    def __init__(self, flavour: str, model: str, copy: bool, bytes_as_str: bool, plans: dict[Any, Any] | None = None) -> None:
        self.flavour, self.model, self.copy, self.bytes_as_str = flavour, model, copy, bytes_as_str
        self.plans = Plans(plans, model)

    def read(self, data: bytes) -> tuple[InferResult | None, bool, str]:
        """``(result or None for a flags-only response, final, error message)``."""
        if self.flavour == "mlserver":
            return not_triton(decode_response(data, copy=self.copy, bytes_as_str=self.bytes_as_str)), False, ""
        start = inner_start(data)  # the usual reply: no error message, a layout seen before
        result = None if start < 0 else self.plans.decode(data, start, self.copy, self.bytes_as_str)
        if result is not None:
            final = result.parameters.get(FINAL) is True
            return (result if not final or result.outputs else None), final, ""
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
        self.token: Any = None  # the token the request was sent with (a ``Token``: its repr is masked), to redact
        self.target = ""  # where it went, for the log

    # -- what a subclass provides --------------------------------------------------------
    def _next_message(self) -> Any:  # bytes, or END when the call ended cleanly
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
        status = "OK"
        try:
            while not self.finished:
                data = self._next_message()
                if data is END:
                    self.finished = not self.cancelled  # a cancelled request ends without its final response
                    return
                self.arrivals.append(self._arrival())
                result = received(self, data)
                if result is not None:
                    yield result
        except EasnbError as exc:
            status = failed(self, exc)
            self._cancel_call()  # a reply easnb could not read leaves the call open: end it too
            if isinstance(exc, ServerError) and "not a valid" in exc.message and self.reader.flavour == "triton":
                exc.hint = f"{exc.hint} {MAYBE_MLSERVER}"
            raise
        finally:
            if not self.finished:  # break, Ctrl-C, an exception in the caller's loop
                self.cancel()
            self._release()
            ended(self, status)

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
                          hint="Pass flavour='triton' (without it, easnb goes by the server's metadata, which may mislead).")
    return result


def received(stream: Any, data: bytes) -> InferResult | None:
    """One message of ``stream`` (sync or asyncio) read: its response, kept in ``stream.responses``, or None
    for a flags-only one; the stream is ``finished`` after the request's final one. An error the server put
    in the stream is raised."""
    reader: Reader = stream.reader
    result, final, error = reader.read(data)
    if error:
        stream.finished = True
        raise in_stream_error(stream, result, final, error)
    if result is not None:
        stream.responses.append(result)
    if final:
        stream.finished = True
    return result


def failed(stream: Any, exc: EasnbError) -> str:
    """``exc`` made ``stream``'s (sync or asyncio) failure, in place: the stream finished, the token taken out
    (a reply's names and ids may quote it), what arrived before and the request id attached. Returns the status to log."""
    stream.finished = True
    scrub(exc, stream.token)
    if not hasattr(exc, "received"):
        exc.received, exc.request_id = tuple(stream.responses), stream.request_id  # type: ignore[attr-defined]
    return exc.code.name if exc.code is not None else type(exc).__name__


def ended(stream: Any, status: str) -> None:
    """The DEBUG record of one streamed request (sync or asyncio) read to its end: OK, its error's code, or CANCELLED."""
    if log.debugging():
        log.call_done("ModelStreamInfer", stream.target, "CANCELLED" if stream.cancelled and status == "OK" else status, stream.sent_at)


def in_stream_error(stream: Any, result: InferResult | None, final: bool, error: str) -> StreamError:
    """The ``StreamError`` for an ``error_message`` reply (the token redacted): the id on the wire, and what came before."""
    error = redact(error, stream.token)[:DETAILS]
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
        self._check_open = conn.check_open  # a close() in another thread ends the call: ClosedError, not CANCELLED
        self.token, self.target = self._context.get("token"), self._context.get("target", "")
        # unary-stream on the bidirectional method: one message, then the half-close, with no sending thread
        self.sent_at = time.perf_counter()  # time to first response counts the sending too
        self._call = conn.channel.unary_stream(PATH)(data, timeout=timeout, metadata=metadata)
        self._timed_out: str | None = None
        self._ended = False  # the call is over (or no longer watched)
        self._watchdog = None
        if first_timeout is not None or between_timeout is not None:
            self._watchdog = conn.stream_watchdog
            self._call.add_done_callback(self._call_done)  # the watchdog lets go when the call ends (a close ends it)
            self._watchdog.watch(self)

    def _call_done(self, _: object) -> None:
        self._stop_watching()

    def _stop_watching(self) -> None:
        if not self._ended:
            self._ended = True
            if self._watchdog is not None:
                self._watchdog.unwatch(self)

    # -- what the connection's watchdog asks (easnb.stream_watchdog) -----------------------
    def idle_limits(self) -> tuple[float | None, float | None]:
        return self.first_response_timeout, self.between_responses_timeout

    def idle_limit(self) -> tuple[float | None, str, float]:
        if self.finished:  # a call still open this long after its final response is ended (its end unread)
            limit = self.between_responses_timeout
            since = self.arrivals[-1] if self.arrivals else self.sent_at
            return AFTER_FINAL if limit is None else min(limit, AFTER_FINAL), "between_responses_timeout", since
        if self.arrivals:
            return self.between_responses_timeout, "between_responses_timeout", self.arrivals[-1]
        return self.first_response_timeout, "first_response_timeout", self.sent_at

    def watched(self) -> bool:
        return not self._ended

    def idle_expired(self, name: str, limit: float) -> None:
        self._timed_out = f"{name}={limit:g}"
        self._ended = True
        self._call.cancel()

    def _next_message(self) -> Any:
        try:
            return next(self._call)
        except StopIteration:
            self._stop_watching()
            return END
        except grpc.RpcError as exc:
            self._stop_watching()
            if self._timed_out:
                error: EasnbError = DeadlineError(
                    f"{self.model} sent no response within {self._timed_out} s "
                    f"(request id {self.request_id!r}, {len(self.responses)} responses before).",
                    hint="Raise the timeout, or check the server's load; the request was cancelled.",
                    code=grpc.StatusCode.DEADLINE_EXCEEDED,
                )
            elif self.cancelled and exc.code() == grpc.StatusCode.CANCELLED:
                return END
            elif exc.code() == grpc.StatusCode.CANCELLED and closed(self._check_open):
                error = ClosedError(CLOSED_UNDER)
            else:
                error = from_rpc_error(exc, method="ModelStreamInfer", **self._context)
        raise error  # outside the except block: the grpc.RpcError (its text may hold the token) is not kept

    def _cancel_call(self) -> None:
        self._stop_watching()
        self._call.cancel()

    def _release(self) -> None:
        # a call still open after the final response is watched until its end is read or AFTER_FINAL passes
        if not (self.finished and not self.cancelled):
            self._stop_watching()
        elif self._watchdog is not None and not self._ended:  # looked at again AFTER_FINAL from now, not at a later limit
            self._watchdog.unwatch(self)
            self._watchdog.watch(self)


def closed(check_open: Any) -> bool:
    """Whether the connection ``check_open`` belongs to was closed (its calls then end CANCELLED)."""
    try:
        check_open()
    except ClosedError:
        return True
    return False


def idle_limits(conn: Any, options: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """``first_response_timeout`` and ``between_responses_timeout`` (checked), the connection's timeout when not given."""
    unknown = set(options) - {"first_response_timeout", "between_responses_timeout"}
    if unknown:
        raise ArgumentError(
            f"stream() takes no argument {sorted(unknown)[0]!r}.", argument=sorted(unknown)[0],
            hint="Its idle limits are first_response_timeout= and between_responses_timeout= (seconds).",
        )
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


def known_flavour(conn: Any, flavour: str | None) -> str | None:
    """The flavour asked for (checked), else the one ``conn`` found before; None: ask the server's metadata."""
    check_flavour(flavour)
    return flavour if flavour is not None else getattr(conn, "stream_flavour", None)


def flavour_of(conn: Any, flavour: str | None) -> str:
    """The server's streaming flavour, asked of its metadata once per connection."""
    known = known_flavour(conn, flavour)
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
    return CallStream(conn, data, Reader(flavour, model, copy, bytes_as_str, conn.stream_plans), request_id, timeout=timeout,
                      first_timeout=first, between_timeout=between, metadata=metadata)
