"""How a call is made, once for sync and asyncio alike: ``DEFAULT``, the retry plan, the V2 call table.

Each V2 call is one ``Call``: its method, how its request is built, how its reply is read, and
whether it may be sent again (idempotent). ``Connection`` and ``AsyncConnection`` only send.

>>> CALLS["ServerLive"].idempotent, CALLS["ModelInfer"].idempotent
(True, False)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import grpc

from . import _proto, log
from ._proto import V2_SERVICE, method_path
from .errors import DeadlineError, EasnbError, NotFoundError, ServerError, UnavailableError
from .rpc_errors import from_rpc_error
from .results import ModelMetadata, ServerMetadata, TensorMetadata


T = TypeVar("T")


class _Default:
    """The type of ``DEFAULT``: "use the connection's setting", distinct from ``None``."""

    def __repr__(self) -> str:
        return "DEFAULT"


#: Per-call timeout meaning "the connection's timeout"; ``None`` means no deadline.
DEFAULT: Any = _Default()


def quiet(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """A reply reader answering ``None`` for bytes it cannot parse, where gRPC would log a traceback of its own:
    gRPC then fails a sync call with INTERNAL and hands grpc.aio's reply back as ``None`` (``unreadable_reply``)."""

    def reading(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception:  # DecodeError, or a foreign message
            return None

    return reading


def unreadable_reply(method: str, target: str) -> ServerError:
    """A reply gRPC could not parse as the method's message (grpc.aio hands it back as ``None``)."""
    return ServerError(
        f"{method} on {target}: the server's reply is not a valid message of that method.",
        hint="The server, or something between it and you, sent a corrupt or foreign message.",
        code=grpc.StatusCode.INTERNAL,
    )


class RetryPlan:
    """One call's attempts: retries on UNAVAILABLE, every attempt inside the call's one deadline,
    each attempt logged (DEBUG) and each retry (INFO). Sync and asyncio executors drive it alike::

        plan = RetryPlan(method, seconds, retries, context)
        for attempt in plan.attempts():
            started = time.perf_counter()
            try:
                reply = send(plan.left(attempt))
            except grpc.RpcError as exc:
                error = plan.failed(exc, started, attempt)
            else:
                return plan.done(reply, started, attempt)
            sleep(plan.pause_after(error, attempt))   # raises when there is no retry left
    """

    def __init__(self, method: str, seconds: float | None, retries: int, context: dict[str, Any]) -> None:
        self.method, self.seconds, self.retries, self.context = method, seconds, retries, context
        self.ends = None if seconds is None else time.monotonic() + seconds
        self.unavailable: EasnbError | None = None
        self.debug = log.debugging()

    def attempts(self) -> range:
        return range(self.retries + 1)

    def left(self, attempt: int) -> float | None:
        """The deadline for attempt number ``attempt``: what is left of the call's."""
        return self.seconds if self.ends is None or attempt == 0 else self.ends - time.monotonic()

    def done(self, reply: Any, started: float, attempt: int) -> Any:
        if reply is None:  # grpc.aio's answer to a reply it cannot parse (sync gRPC raises INTERNAL)
            raise self.unreadable(started, attempt)
        if self.debug:
            log.call_done(self.method, self.context["target"], "OK", started, attempt + 1)
        return reply

    def unreadable(self, started: float, attempt: int) -> ServerError:
        """The ``ServerError`` for a reply that is not the message it should be, logged."""
        if self.debug:
            log.call_done(self.method, self.context["target"], "INTERNAL", started, attempt + 1)
        return unreadable_reply(self.method, self.context["target"])

    def failed(self, exc: grpc.RpcError, started: float, attempt: int) -> EasnbError:
        """The ``EasnbError`` for a failed attempt (the token redacted), logged."""
        error = from_rpc_error(exc, method=self.method, timeout=self.seconds, **self.context)
        if self.debug:
            log.call_done(self.method, self.context["target"], error.code.name if error.code else "ERROR", started, attempt + 1)
        log.failed(error, self.context["target"])
        return error

    def pause_after(self, error: EasnbError, attempt: int) -> float:
        """How long to wait before trying again; raises the error to report when there is no retry.

        A retry that runs out of time reports the UNAVAILABLE that caused it, not its own deadline.
        Called outside an ``except`` block, so no ``grpc.RpcError`` (whose text may hold the token)
        is kept as ``__context__``.
        """
        if isinstance(error, DeadlineError) and self.unavailable is not None:
            raise self.unavailable
        if not isinstance(error, UnavailableError) or attempt == self.retries:
            raise error
        self.unavailable = error
        pause: float = min(0.1 * 2**attempt, 1.0)
        if self.ends is not None and time.monotonic() + pause >= self.ends:
            raise error
        log.retrying(self.method, self.context["target"], error, attempt + 1, pause)
        return pause


# -- the V2 calls, described once ----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One V2 call: its method, request class (``None``: easnb's codec writes bytes), reply class
    (``None``: bytes for easnb's codec), how a reply is read, and whether it may be sent again."""

    name: str
    request: Any
    reply: Any
    read: Any
    idempotent: bool

    @property
    def path(self) -> str:
        return method_path(V2_SERVICE, self.name)

    def stub(self, channel: Any) -> Any:
        """This call's stub on ``channel`` (sync or ``grpc.aio``)."""
        if self.request is None:
            return channel.unary_unary(self.path)
        return channel.unary_unary(self.path, request_serializer=self.request.SerializeToString,
                                   response_deserializer=quiet(self.reply.FromString))


def model_metadata_from(reply: Any) -> ModelMetadata:
    """A ``ModelMetadata`` from a ModelMetadataResponse message."""

    def tensors(items: Any) -> tuple[TensorMetadata, ...]:
        return tuple(TensorMetadata(t.name, t.datatype, tuple(t.shape)) for t in items)

    return ModelMetadata(
        name=reply.name,
        versions=tuple(reply.versions),
        platform=reply.platform,
        inputs=tensors(reply.inputs),
        outputs=tensors(reply.outputs),
        properties=dict(sorted(reply.properties.items())),
    )


# codes under which servers other than KServe say a model is unknown (MLServer: "Model x not found")
_NOT_FOUND_CODES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION}


def is_unknown_model(error: EasnbError) -> bool:
    """Whether a ModelReady failure says the model is unknown, however the server words it."""
    return isinstance(error, NotFoundError) or (error.code in _NOT_FOUND_CODES and "not found" in error.details.lower())


CALLS: dict[str, Call] = {c.name: c for c in (
    Call("ServerLive", _proto.ServerLiveRequest, _proto.ServerLiveResponse, lambda r: bool(r.live), True),
    Call("ServerReady", _proto.ServerReadyRequest, _proto.ServerReadyResponse, lambda r: bool(r.ready), True),
    Call("ModelReady", _proto.ModelReadyRequest, _proto.ModelReadyResponse, lambda r: bool(r.ready), True),
    Call("ServerMetadata", _proto.ServerMetadataRequest, _proto.ServerMetadataResponse,
         lambda r: ServerMetadata(r.name, r.version, tuple(r.extensions)), True),
    Call("ModelMetadata", _proto.ModelMetadataRequest, _proto.ModelMetadataResponse, model_metadata_from, True),
    # not sent again by default: a model may have run it; infer(retries=...) opts in
    Call("ModelInfer", None, None, None, False),
)}


# -- plans: feature logic written once, run by either executor ------------------------------------
#
# A plan is a generator that yields steps and gets each step's answer back (or its EasnbError
# thrown in); ``run_plan`` drives it with a ``Connection``, ``arun_plan`` with an ``AsyncConnection``.
# Feature modules (discovery, readiness, repository) are plans, so they depend on these steps and
# on the names below, not on either connection class.


@dataclass(frozen=True)
class Unary:
    """One unary call of any method: ``path``, the request message, the reply's class; retried on
    UNAVAILABLE (the connection's ``retries``) when ``idempotent``."""

    path: str
    request: Any
    reply: Any
    timeout: Any = DEFAULT
    idempotent: bool = True


@dataclass(frozen=True)
class Ask:
    """A connection method by name, with arguments: both connections have it (sync or as a coroutine)."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds`` (``time.sleep`` or ``asyncio.sleep``)."""

    seconds: float


Step = Unary | Ask | Pause
Plan = Generator[Step, Any, T]


class Executor(Protocol):
    """What a plan needs of a connection, besides the methods its ``Ask`` steps name."""

    endpoint: Any
    timeout: float | None
    has_token: bool

    def unary(self, step: Unary) -> Any: ...


class PlanRun(Generic[T]):
    """One plan being driven: iterate it for its steps; set ``answer`` (or ``error``) after each.

    The executors below differ only in how a step's I/O is done (blocking, or awaited); how the
    plan is advanced, and what an answer or an error does to it, is here once.
    """

    def __init__(self, plan: Plan[T]) -> None:
        self.plan = plan
        self.answer: Any = None
        self.error: EasnbError | None = None
        self.result: T

    def __iter__(self) -> Iterator[Step]:
        while True:
            try:
                step = self.plan.send(self.answer) if self.error is None else self.plan.throw(self.error)
            except StopIteration as stop:
                self.result = stop.value
                return
            self.answer, self.error = None, None
            yield step


def perform(conn: Any, step: Step, sleep: Callable[[float], Any]) -> Any:
    """A step's I/O on ``conn`` (for ``AsyncConnection``, an awaitable): a pause with ``sleep``,
    a unary call, or the connection method an ``Ask`` names."""
    if isinstance(step, Pause):
        return sleep(step.seconds)
    if isinstance(step, Unary):
        return conn.unary(step)
    return getattr(conn, step.method)(*step.args, **step.kwargs)


def run_plan(conn: Any, plan: Plan[T]) -> T:
    """Drive ``plan`` with a sync ``Connection``."""
    run = PlanRun(plan)
    for step in run:
        try:
            run.answer = perform(conn, step, time.sleep)
        except EasnbError as exc:
            run.error = exc
    return run.result


async def arun_plan(conn: Any, plan: Plan[T]) -> T:
    """Drive ``plan`` with an ``AsyncConnection``: each step's I/O awaited."""
    run = PlanRun(plan)
    for step in run:
        try:
            run.answer = await perform(conn, step, asyncio.sleep)
        except EasnbError as exc:
            run.error = exc
    return run.result
