"""``ModelStreamInfer`` for ``easnb.aio``: ``async for`` over ``await aconn.stream(...)`` and ``aconn.generate(...)``.

>>> async for result in await aconn.stream("textgen", inputs):      # doctest: +SKIP
...     print(result["text_output"])
>>> async for piece in aconn.generate("textgen", "Hello"):          # doctest: +SKIP
...     print(piece, end="")

Unlike tritonclient's asyncio client, the final-response marker is always asked for (Triton),
so the loop ends exactly with the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Generator, Mapping
from typing import Any

import grpc
import grpc.aio

from .errors import DeadlineError, EasnbError, scrub
from .rpc_errors import from_rpc_error
from .frames import frame_to_inputs, is_frame
from .generate import Generation, build_inputs, split_options
from .inference import encode_request
from .results import InferResult
from .streaming import PATH, Reader, checked, ended, failed, idle_limits, known_flavour, received, request_parameters, server_flavour


_EOF = grpc.aio.EOF


def _task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and getattr(task, "cancelling", lambda: 0)() > 0


class AsyncStream:
    """One request's responses for ``async for``; ends at its final response. As ``easnb.streaming.Stream``."""

    def __init__(self, call: Any, reader: Reader, request_id: str, first: float | None, between: float | None,
                 context: dict[str, Any], aconn: Any = None) -> None:
        self._call, self.reader, self.model, self.request_id = call, reader, reader.model, request_id
        self._aconn = aconn  # whose close() ends the call: ClosedError then
        self.first_response_timeout, self.between_responses_timeout = first, between
        self._context = context
        self.token = context.get("token")  # to redact (a ``Token``: its repr is masked)
        self.target = context.get("target", "")  # where it went, for the log
        self.responses: list[InferResult] = []
        self.arrivals: list[float] = []
        self.sent_at = time.perf_counter()
        self.finished = self.cancelled = self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None  # where the call is read: the watchdog's cancel goes there
        self._watching = False  # the connection's watchdog looks at this stream's idle limits
        self._timed_out = ""
        self._failure: EasnbError | None = None  # what a failed read meant, raised once out of its except block

    def __aiter__(self) -> AsyncIterator[InferResult]:
        if self._started:
            raise EasnbError("A stream can be read once.", hint="Its responses so far are in stream.responses.")
        self._started = True
        return self._iterate()

    # -- the idle limits, watched by the connection's thread (easnb.stream_watchdog), not by a timer on the loop:
    # -- a timer there made each response cost ~10 us more (bench/stream.py's server, streams with and without limits)
    def idle_limits(self) -> tuple[float | None, float | None]:
        return self.first_response_timeout, self.between_responses_timeout

    def idle_limit(self) -> tuple[float | None, str, float]:
        if self.arrivals:
            return self.between_responses_timeout, "between_responses_timeout", self.arrivals[-1]
        return self.first_response_timeout, "first_response_timeout", self.sent_at

    def watched(self) -> bool:
        return self._watching

    def idle_expired(self, name: str, limit: float) -> None:
        """(The watchdog's thread, or the loop's when the limit passed before the reading began.) The limit
        passed: the call is cancelled in its loop."""
        self._watching = False
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing is reading the stream
            self._loop.call_soon_threadsafe(self._expired, name, limit)  # type: ignore[union-attr]

    def _expired(self, name: str, limit: float) -> None:
        if not self.finished and not self.cancelled:
            self._timed_out = f"{name}={limit:g}"
            self.cancelled = True
            self._call.cancel()

    def _watch(self) -> None:
        if self._aconn is not None and (self.first_response_timeout is not None or self.between_responses_timeout is not None):
            self._loop, self._watching = asyncio.get_running_loop(), True
            self._aconn.stream_watchdog.watch(self)

    def _unwatch(self) -> None:
        if self._watching:
            self._watching = False
            self._aconn.stream_watchdog.unwatch(self)

    async def _iterate(self) -> AsyncIterator[InferResult]:
        # per response, only what must be done: the read awaited here (not through a helper coroutine), names local.
        # The call's own iterator, not call.read(): ~5 us less a response (its checks are made once, at the end)
        read, arrivals, clock = self._call.__aiter__().__anext__, self.arrivals, time.perf_counter
        status = "OK"
        try:
            self._watch()
            while not self.finished:
                try:
                    data = await read()
                except StopAsyncIteration:  # the call ended OK
                    data = _EOF
                except (asyncio.CancelledError, grpc.RpcError) as exc:
                    data = self._read_failed(exc)
                if data is _EOF:
                    self._end()
                    return
                arrivals.append(clock())
                result = received(self, data)
                if result is not None:
                    yield result
        except EasnbError as exc:
            status = failed(self, exc)
            self._call.cancel()  # a reply easnb could not read leaves the call open: end it too
            raise
        finally:
            self._unwatch()
            if not self.finished:
                self.cancel()
            ended(self, status)

    def _read_failed(self, exc: BaseException) -> Any:
        """A read that raised: EOF when it was our own cancel (or the watchdog's), else what it means is kept
        for ``_end`` to raise (raising here would chain the grpc.RpcError, whose text may hold the token)."""
        if isinstance(exc, asyncio.CancelledError):
            if _task_cancelling() or not self.cancelled:  # the task's own cancellation, or the connection's close
                if self._aconn is not None and self._aconn.closed and not _task_cancelling():
                    self._aconn.check_open()  # ClosedError: was a bare CancelledError from a close() in another task
                raise exc
        elif not self.cancelled or exc.code() != grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
            self._failure = from_rpc_error(exc, method="ModelStreamInfer", **self._context)
        return _EOF

    def _end(self) -> None:
        """The call is over: raise what ended it, if anything; else the stream ends (finished unless cancelled)."""
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure
        if self._timed_out:
            self._deadline()
        self.finished = not self.cancelled  # a cancelled request ends without its final response

    def _deadline(self) -> None:
        raise DeadlineError(
            f"{self.model} sent no response within {self._timed_out} s "
            f"(request id {self.request_id!r}, {len(self.responses)} responses before).",
            hint="Raise the timeout, or check the server's load; the request was cancelled.",
            code=grpc.StatusCode.DEADLINE_EXCEEDED,
        )

    def cancel(self) -> None:
        """Cancel the request on the wire; the loop then ends quietly."""
        if not self.finished and not self.cancelled:
            self.cancelled = True
            self._call.cancel()

    async def collect(self) -> list[InferResult]:
        async for _ in self:
            pass
        return self.responses

    @property
    def time_to_first_response(self) -> float | None:
        return self.arrivals[0] - self.sent_at if self.arrivals else None

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cancel()

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "finished" if self.finished else "open"
        return f"<AsyncStream {self.model} id={self.request_id!r}: {len(self.responses)} responses, {state}>"


async def _flavour(aconn: Any, flavour: str | None) -> str:
    known = known_flavour(aconn, flavour)
    if known is None:
        known = aconn.stream_flavour = server_flavour((await aconn.server_metadata()).name)
    return known


async def open_call(aconn: Any, model: str, inputs: Any, *, outputs: Any = None, version: str = "",
                    parameters: Mapping[str, Any] | None = None, request_id: str = "", timeout: float | None = None,
                    headers: Any = None, raw: bool = True, copy: bool = False, bytes_as_str: bool = False,
                    flavour: str | None = None, **idle: Any) -> AsyncStream:
    """``AsyncConnection.stream``: as ``Connection.stream``."""
    model, inputs, outputs, version, request_id, timeout = checked(
        aconn, model, inputs, outputs, version, parameters, request_id, timeout, headers, raw, copy, bytes_as_str)
    first, between = idle_limits(aconn, idle)
    flavour = await _flavour(aconn, flavour)
    if is_frame(inputs):
        inputs = frame_to_inputs(inputs, await aconn.model_metadata(model, version, headers=headers), token=aconn.settings.token)
    data = encode_request(model, inputs, outputs, version, request_parameters(flavour, parameters), request_id, raw)
    aconn.ensure_open()
    call = aconn.channel.unary_stream(PATH)(data, timeout=timeout, metadata=aconn.metadata_for(headers))
    return AsyncStream(call, Reader(flavour, model, copy, bytes_as_str, aconn.stream_plans), request_id, first, between,
                       {**aconn.error_context, "timeout": timeout}, aconn)


class AsyncGeneration(Generation):
    """``aconn.generate(...)``: ``async for piece in it``; then the totals of ``easnb.generate.Generation``."""

    def __init__(self, aconn: Any, model: str, prompt: str, options: dict[str, Any]) -> None:
        super().__init__(None)
        self._start = (aconn, model, prompt, options)

    async def _open(self) -> AsyncStream:
        aconn, model, prompt, options = self._start
        stream_options, sampling = split_options(options)
        meta = await aconn.cached_model_metadata(model, stream_options.get("version", ""))
        try:
            inputs = build_inputs(meta, prompt, sampling)
        except EasnbError as exc:  # it names the server's tensors, which may quote the token
            raise scrub(exc, aconn.settings.token)
        return await open_call(aconn, model, inputs, bytes_as_str=True, **stream_options)

    def __iter__(self) -> Any:
        raise TypeError("Use `async for piece in aconn.generate(...)` (or easnb.connect for a plain loop).")

    def __await__(self) -> Generator[Any, None, AsyncGeneration]:
        """``await aconn.generate(...)`` sends the request now (as ``await aconn.stream(...)``); returns itself."""
        return self._sent().__await__()

    async def _sent(self) -> AsyncGeneration:
        if self.stream is None:
            self.stream = await self._open()
        return self

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[str]:
        if self.stream is None:
            self.stream = await self._open()
        async for result in self.stream:
            yield self._take(result)

    async def finish(self) -> AsyncGeneration:  # type: ignore[override]
        """Wait for the end; returns itself."""
        async for _ in self:
            pass
        return self

    def cancel(self) -> None:
        if self.stream is not None:
            self.stream.cancel()


def generate(aconn: Any, model: str, prompt: str, max_tokens: int | None = None, temperature: float | None = None,
             **options: Any) -> AsyncGeneration:
    """``AsyncConnection.generate``: sent when the loop starts."""
    return AsyncGeneration(aconn, model, prompt, {"max_tokens": max_tokens, "temperature": temperature, **options})
