"""Several requests on one V2 stream (``conn.open_stream``), each caller reading only its own responses.

>>> with conn.open_stream("textgen") as s:                     # doctest: +SKIP
...     a, b = s.submit(inputs_a), s.submit(inputs_b)          # each iterates its own responses

The caller who wants a response reads the stream itself (no reader thread): while it holds the
turn it takes replies off the call, keeps its own, and puts the others' in their inboxes; a caller
whose inbox is empty while another reads waits for its reply or for the turn. So one caller reading
its request pays what a bare stub on one call pays, with no reply crossing threads (a reader thread
cost about 40 us of CPU a token more). Against MLServer, whose calls carry one request each, every
``submit`` is a call of its own.

Idle limits: a waiting caller times out by itself. The caller holding the turn waits inside gRPC,
so the connection's watchdog looks at the stream: once every caller waiting has passed its limit
with nothing arriving, it ends the call (each gets ``DeadlineError``); a caller whose limit passed
while others still wait learns it with the next reply on the stream.

Triton cancels a stream, not a request: a request's ``cancel()`` (``break``, Ctrl-C) stops its caller
listening, and when no other request is in flight it ends the call (the server sees it; a caller
blocked in gRPC for that request wakes) and the next ``submit`` opens another, as after a status ended it.

Nothing holds the ``OpenStream`` but its requests' own streams: closing it, or dropping it
(garbage collection), ends the call. Requests that are over, or that their caller dropped, are not kept.
"""

from __future__ import annotations

import copy
import itertools
import math
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping
from typing import Any

import grpc

from . import arguments
from .calls import DEFAULT
from .errors import ArgumentError, ClosedError, DeadlineError, EasnbError
from .loop import CLOSED_UNDER
from .rpc_errors import from_rpc_error
from .shared_stream_idle import IdleWatch
from .stream_wire import Heads
from .streaming import END, PATH, Reader, Stream, checked, closed, flavour_of, idle_limits, open_call, request_parameters


#: Seconds a caller waits for its reply or the turn before looking again (so Ctrl-C is seen in the main thread).
SLICE = 0.1


class QueuedStream(Stream):
    """One request's share of a shared stream: its replies come off the call, or from its inbox."""

    _arrived: float  # perf_counter() when the latest reply was taken off the call

    def __init__(self, owner: OpenStream, dispatch: Dispatch, reader: Reader, request_id: str,
                 first_timeout: float | None, between_timeout: float | None) -> None:
        super().__init__(reader, request_id, first_timeout, between_timeout)
        self._owner, self._dispatch = owner, dispatch  # the owner kept alive while this request is read
        self.token, self.target = owner.conn.error_context.get("token"), owner.conn.error_context.get("target", "")
        self.inbox: deque[Any] = deque()  # (bytes, arrival), END or an EasnbError, put by whoever read them

    def deadline(self) -> tuple[float | None, str]:
        """When this request's current idle limit passes (perf_counter seconds; None: no limit), and its name."""
        if self.arrivals:
            limit, name, since = self.between_responses_timeout, "between_responses_timeout", self.arrivals[-1]
        else:
            limit, name, since = self.first_response_timeout, "first_response_timeout", self.sent_at
        return (None if limit is None else since + limit), name

    def timed_out(self, name: str) -> DeadlineError:
        self._dispatch.abandon(self.request_id)
        limit = self.between_responses_timeout if name.startswith("between") else self.first_response_timeout
        return DeadlineError(
            f"{self.model} sent no response within {name}={limit:g} s (request id {self.request_id!r}).",
            code=grpc.StatusCode.DEADLINE_EXCEEDED,
        )

    def _next_message(self) -> Any:
        item = self._dispatch.next_for(self)
        if isinstance(item, EasnbError):
            raise item
        if item is END:
            return item
        data, self._arrived = item
        return data

    def _arrival(self) -> float:
        return self._arrived  # when it was taken off the call, not when this request's loop got to it

    def _cancel_call(self) -> None:
        # Triton has no per-request cancel on a shared stream: stop listening, and end the call if nothing else is in it
        self._dispatch.abandon(self.request_id)
        self._dispatch.deliver(self, END)
        self._dispatch.retire()


class Dispatch(IdleWatch):
    """A shared stream's state: the call, the requests waiting, who reads the call, the failure."""

    def __init__(self) -> None:
        # weakly: a request its caller dropped unread is not waited for, nor keeps its OpenStream alive
        self.waiting: dict[str, weakref.ref[QueuedStream]] = {}
        self.in_flight: set[str] = set()  # ids sent and not yet over (dropped or not): not to be sent again
        # ids cancelled or timed out before their final reply: the server may still answer them, so not reused yet
        self.abandoned: set[str] = set()
        # an inbox filled, the turn freed, the call ended. Reentrant: the garbage collector may close an abandoned
        # request's loop (its cancel takes this lock) in a thread that holds it
        self.changed = threading.Condition(threading.RLock())
        self.reading: QueuedStream | None = None  # whose caller is taking replies off the call
        self.readers: set[QueuedStream] = set()  # callers waiting for a reply or the turn
        self.closed = False
        self.requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.call: Any = None
        self.heads = Heads()
        self.failure: EasnbError | None = None
        self.silent_for: str = ""  # the limit that ended a stream gone silent
        self.last_read = 0.0  # perf_counter() of the latest reply taken off the call
        self.on_watch = False  # the connection's watchdog looks at it (while requests are in flight)
        self.next_look = math.inf  # when the watchdog looks at it next (perf_counter seconds)
        self.context: dict[str, Any] = {}
        self.check_open: Any = None  # the connection's: ClosedError once it is closed

    def start(self, channel: Any, timeout: float | None, metadata: Any, context: dict[str, Any], check_open: Any) -> None:
        self.context, self.check_open = context, check_open
        self.call = channel.stream_stream(PATH)(iter(self.requests.get, END), timeout=timeout, metadata=metadata)

    # -- reading ------------------------------------------------------------------------
    def next_for(self, stream: QueuedStream) -> Any:
        """``stream``'s next item: ``(bytes, arrival)``, ``END`` or an ``EasnbError``; ``DeadlineError`` on its idle limit."""
        late = ""  # the name of the limit that passed
        with self.changed:
            while not stream.inbox:
                if self.closed:  # close() cut it short: it ends cancelled, not finished
                    stream.cancelled = True
                    return END
                if self.failure is not None:
                    return self.failed()
                if self.reading is None and self.call is not None:
                    self.reading = stream  # the turn: read the call below, outside the lock
                    break
                deadline, name = stream.deadline()
                wait = None if deadline is None else deadline - time.perf_counter()
                if wait is not None and wait <= 0:
                    late = name
                    break
                self.readers.add(stream)
                try:  # in slices, as gRPC waits: Ctrl-C caught by another thread runs its handler here
                    self.changed.wait(SLICE if wait is None else min(wait, SLICE))
                finally:
                    self.readers.discard(stream)
            else:
                return stream.inbox.popleft()
        if late:
            raise stream.timed_out(late)  # out of the lock, which forgetting the request takes
        try:
            return self._read_for(stream)
        finally:
            with self.changed:
                self.reading = None
                if self.readers:
                    self.changed.notify_all()  # one of them takes the turn

    def _read_for(self, stream: QueuedStream) -> Any:
        """(Holding the turn.) Replies off the call until one for ``stream``; the others' to their inboxes."""
        mine, call = stream.request_id, self.call
        try:
            for data in call:
                arrived = self.last_read = time.perf_counter()
                request_id, final, error = self.heads.read(data)
                if request_id == mine and not stream.cancelled:
                    if final or error:
                        self.forget(mine)
                    deadline, name = stream.deadline()  # its own reply, late: as the watchdog would have ended it
                    return (data, arrived) if deadline is None or arrived < deadline else stream.timed_out(name)
                with self.changed:
                    ref = self.waiting.get(request_id)
                    other = None if ref is None else ref()
                    idle = bool(final or error) and self._over(request_id)  # only abandoned ones left: this caller's too
                    if other is not None:
                        other.inbox.append((data, arrived))
                        if other in self.readers:
                            self.changed.notify_all()
                    other = None  # held here, it would keep its OpenStream alive
                if idle:
                    self.retire()  # only abandoned requests are left: end the call, as forget() does
                deadline, name = stream.deadline()
                if stream.cancelled:
                    return END
                if deadline is not None and arrived >= deadline:
                    return stream.timed_out(name)
            if call is not self.call:  # retired (a cancel, nothing else in flight): this caller's request is over
                return END
            failure: EasnbError = EasnbError("The server ended the stream before these requests' final responses.",
                                             hint="The server's logs say why.")
        except grpc.RpcError as exc:
            if call is not self.call:
                return END
            if exc.code() == grpc.StatusCode.CANCELLED and closed(self.check_open):
                failure = ClosedError(CLOSED_UNDER)  # the connection's close(), not the server
            else:
                failure = from_rpc_error(exc, method="ModelStreamInfer", **self.context)
        except EasnbError as exc:  # a reply it cannot read: the stream is useless, end it on the wire too
            failure = copy.copy(exc)  # without its traceback, which holds this frame and the request
            call.cancel()
        return self._ended(stream, failure)

    def _ended(self, stream: QueuedStream, failure: EasnbError) -> Any:
        """The call is over: every request waiting gets ``END`` (closed), the silence's ``DeadlineError``, or the failure."""
        mine: Any = None
        if self.silent_for:  # the watchdog ended it: this caller's limit passed, and every other waiting one's
            deadline, name = stream.deadline()
            mine = stream.timed_out(name) if deadline is not None else None
            failure = DeadlineError(
                "The stream sent nothing within the idle limits of the requests waiting on it, so easnb ended it.",
                hint="The next submit opens another call; raise first_response_timeout or between_responses_timeout, or check the "
                "server's load.", code=grpc.StatusCode.DEADLINE_EXCEEDED)
        self.requests.put(END)  # the call is over: gRPC's thread that sends the requests ends too
        with self.changed:
            self.failure = failure if not self.closed else None
            waiting = [s for s in (ref() for ref in list(self.waiting.values())) if s is not None]
            self.waiting.clear()
            self.in_flight.clear()
            self.abandoned.clear()
            for other in waiting:
                if self.closed:  # close() cut these requests short: they end cancelled, not finished
                    other.cancelled = True
                other.inbox.append(END if self.closed else copy.copy(failure))
            self.changed.notify_all()
            if stream.inbox:  # under the lock, which the watchdog holds while it looks at inboxes
                return stream.inbox.popleft()
        return END if self.closed or stream.cancelled else mine or copy.copy(failure)

    def failed(self) -> EasnbError:
        """(Under the lock.) What ended the call, as an error of the asking request's own: each gets its
        ``request_id`` and ``received`` attached, and is raised in its own thread."""
        assert self.failure is not None
        return copy.copy(self.failure)

    def reopen(self) -> None:
        """(Under the lock.) A status ended the call and each of its requests has the error: the next ``submit``
        opens another call, as after a cancel (and as MLServer's call per request does)."""
        self.failure, self.silent_for, self.call, self.requests = None, "", None, queue.SimpleQueue()

    def deliver(self, stream: QueuedStream, item: Any) -> None:
        """Put ``item`` in ``stream``'s inbox and wake it (a cancel from another thread)."""
        with self.changed:
            stream.inbox.append(item)
            self.changed.notify_all()

    def retire(self) -> None:
        """A request was cancelled: when no other is in flight, end the call (the server sees the cancel, and a
        caller blocked in gRPC for the cancelled request's reply wakes); the next ``submit`` opens another."""
        with self.changed:
            if self.in_flight or self.closed or self.call is None or self.failure is not None:
                return  # Triton cancels a stream, not a request: the others' replies keep coming
            call, requests = self.call, self.requests
            self.call, self.requests = None, queue.SimpleQueue()
            self.abandoned.clear()  # the next call is a new one: no reply of the old can reach it
        requests.put(END)  # ends gRPC's thread that sends the requests
        call.cancel()

    def forget(self, request_id: str) -> None:
        """``request_id`` is over (its final reply, or an error). A cancel racing that reply may have marked it
        abandoned: it is not, its final reply came. Once nothing is in flight but abandoned requests, the call
        ends (the server stops answering them, and their ids are free on the next call)."""
        with self.changed:
            idle = self._over(request_id)
        if idle:
            self.retire()

    def _over(self, request_id: str) -> bool:
        """(Under the lock.) ``request_id`` is over; whether only abandoned requests are left in flight."""
        self.waiting.pop(request_id, None)
        self.in_flight.discard(request_id)
        self.abandoned.discard(request_id)
        return not self.in_flight and bool(self.abandoned)

    def taken(self, request_id: str) -> bool:
        """Whether ``request_id`` may not be sent now: in flight, or abandoned before its final reply."""
        return request_id in self.in_flight or request_id in self.abandoned

    def abandon(self, request_id: str) -> None:
        """``request_id`` was cancelled or timed out: its replies are dropped from now on, and its id is not
        sent again on this call until its final reply comes (the server may still be answering it)."""
        with self.changed:
            self.waiting.pop(request_id, None)
            if request_id in self.in_flight:
                self.in_flight.discard(request_id)
                self.abandoned.add(request_id)

    def shut(self) -> None:
        """End the call (the server sees it cancelled); also when the stream is dropped."""
        with self.changed:  # a first submit racing close() either starts its call before, or sees it closed
            self.closed = True
            call, requests = self.call, self.requests
            self.changed.notify_all()
        if call is not None:
            requests.put(END)  # ends gRPC's thread that sends the requests
            call.cancel()


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
        shared = sorted({"timeout", "headers"} & set(options))
        if shared:  # was: taken and silently ignored on Triton's shared call
            raise ArgumentError(
                f"submit() takes no {shared[0]}=: it belongs to the shared call.", argument=shared[0],
                hint=f"Give it to conn.open_stream(model, {shared[0]}=...); a request's own waits are "
                "first_response_timeout= and between_responses_timeout=.")
        merged = {**self.options, **options}
        made = not request_id
        while made and (not request_id or self._dispatch.taken(request_id)):
            request_id = f"easnb-{next(self._ids)}"  # one of its own, never one the caller gave that is in flight
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
        dispatch = self._dispatch
        stream = QueuedStream(self, dispatch, Reader("triton", self.model, copy, as_str, self.conn.stream_plans), request_id, first, between)
        with dispatch.changed:
            if request_id in dispatch.in_flight:
                raise EasnbError(f"Request id {request_id!r} is already in flight on this stream.",
                                 hint="Give each request its own id, or leave request_id empty for one to be made.")
            if request_id in dispatch.abandoned:  # its late replies would be taken for the new request's
                raise EasnbError(f"Request id {request_id!r} was cancelled or timed out, and the server may still be "
                                 "answering it on this stream.",
                                 hint="Give this request another id, or leave request_id empty for one to be made; "
                                 "the id is free again once its final reply comes, or on another stream.")
            if dispatch.closed:
                raise EasnbError("This stream is closed.", hint="Open another with conn.open_stream(model).")
            if dispatch.failure is not None:  # was: raised again on every submit, the stream dead for good
                dispatch.reopen()
            if dispatch.call is None:  # under the lock: first submits from two threads open one call, not two
                self._start()
            dispatch.waiting[request_id] = weakref.ref(stream)
            dispatch.in_flight.add(request_id)
            first = stream.first_response_timeout  # a limit passing before the watchdog's next look: it looks sooner
            watch = not dispatch.on_watch or (first is not None and time.perf_counter() + first < dispatch.next_look)
            dispatch.on_watch = True
            requests = dispatch.requests  # this call's (a cancel may retire it once this request is over)
        if watch:  # a caller waiting inside gRPC on a stream gone silent is ended by the watchdog
            self.conn.stream_watchdog.watch(dispatch)
        stream.sent_at = time.perf_counter()
        requests.put(data)
        return stream

    def _start(self) -> None:
        self.conn.check_open()
        timeout = arguments.seconds(self.options.get("timeout"), "timeout")
        timeout = self.conn.timeout if timeout is DEFAULT else timeout
        metadata = self.conn.metadata_for(self.options.get("headers"))
        self._dispatch.start(self.conn.channel, timeout, metadata, {**self.conn.error_context, "timeout": timeout},
                             self.conn.check_open)

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


def open_shared(conn: Any, model: str, flavour: str | None = None, **options: Any) -> OpenStream:
    """``Connection.open_stream``: see there."""
    model = arguments.text(model, "model")
    return OpenStream(conn, model, flavour_of(conn, flavour), options)
