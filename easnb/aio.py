"""The same calls as coroutines, on grpc.aio: ``await conn.infer(...)`` in a notebook cell.

Jupyter already runs an event loop, so use ``await`` in a cell (never ``asyncio.run``).

>>> conn = easnb.aio.connect(endpoint, token=token)      # doctest: +SKIP
>>> result = await conn.infer("iris", {"features": x})   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from . import _proto, arguments, log
from .calls import CALLS, DEFAULT, RetryPlan, Unary, arun_plan, is_unknown_model, model_metadata_from, quiet
from .connection_base import BaseConnection, connect_settings
from .credentials import Headers, Token, parse_token
from .endpoint import Endpoint
from .errors import EasnbError, FrameInput
from .fork import aio_usable, note_aio, note_let_go
from .scrubbing import scrubbing
from .frames import frame_to_inputs, frames_in, is_frame
from .inference import Inputs, Outputs, decode_response, encode_request
from .results import InferResult, ModelMetadata, ServerMetadata
from .settings import Settings, settings_of
from .stream_watchdog import Watchdog

if TYPE_CHECKING:
    import pandas as pd

    from .connection import Connection
    from .discovery import Discovery
    from .reflection import Reflection
    from .repository import ModelIndex
    from .services import ServiceClient
    from .streaming_aio import AsyncGeneration, AsyncStream



@scrubbing()
class AsyncConnection(BaseConnection):
    """One grpc.aio channel with the token, headers and timeout; the V2 calls as coroutines."""

    _kind = "AsyncConnection"
    _opener = "easnb.aio.connect"
    channel: grpc.aio.Channel | None = None

    def __init__(
        self,
        endpoint: str | Endpoint | Settings,
        token: str | Token | None = None,
        timeout: float | None = 5.0,
        *,
        channel: grpc.aio.Channel | None = None,
        **options: Any,
    ) -> None:
        """``AsyncConnection(settings)``, or the arguments of ``easnb.aio.connect()``; ``channel=`` a ready
        ``grpc.aio`` channel to use instead of opening one (it is not closed with the connection)."""
        if not isinstance(endpoint, Settings):
            token, problem = parse_token(token)  # the plain text leaves this frame before anything can fail
            if problem is not None:
                raise problem
        self._start(settings_of("AsyncConnection", endpoint, token, timeout, options))
        channel = arguments.channel(channel, aio=True)
        self.channel: grpc.aio.Channel | None = None
        self._given = channel
        self._twin: Connection | None = None  # a sync connection for blocking look-ups (reflection, .proto)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.stream_watchdog = Watchdog()  # streams' idle limits: one thread for them all, while any is watched

    def ensure_open(self) -> None:
        """Refuse when closed (``ClosedError``); otherwise open the channel in the running loop if not yet."""
        self.check_open()
        self._open()

    def _open(self) -> None:
        """Open the channel in the running loop: grpc.aio channels belong to one loop."""
        loop = asyncio.get_running_loop()
        if self.channel is not None:
            if loop is not self._loop:
                raise EasnbError(
                    "This async connection was opened in another event loop.",
                    hint="Make one connection per event loop: call easnb.aio.connect(...) inside it.",
                )
            return
        if self._given is None and not aio_usable():
            raise EasnbError(
                "grpc.aio cannot run in a process forked from one where it ran (a limit of gRPC itself).",
                hint="Use the sync easnb.connect(...) in this process (its infer_frame works after a fork), "
                "or start worker processes with multiprocessing.get_context('spawn').",
            )
        note_aio()
        self.channel = self.settings.open_aio_channel() if self._given is None else self._given
        self._loop = loop
        self._stubs = {name: call.stub(self.channel) for name, call in CALLS.items() if call.request is not None}
        self._infer = CALLS["ModelInfer"].stub(self.channel)
        self._path_stubs: dict[str, Any] = {}

    async def _call(
        self, method: str, request: Any, timeout: float | None, retries: int, headers: Headers | None = None
    ) -> Any:
        """One call, retried on UNAVAILABLE within its one deadline (as ``Connection.call``)."""
        if self._closed:
            self.check_open()
        self._open()
        return await self._send(method, self._infer if method == "ModelInfer" else self._stubs[method], request, timeout,
                                retries, self.metadata_for(headers))  # no stub in this frame: see _send

    async def _send(self, method: str, stub: Any, request: Any, timeout: Any, retries: int, metadata: Any) -> Any:
        seconds = self.settings.timeout if timeout is DEFAULT else timeout
        plan = RetryPlan(method, seconds, retries, self.error_context)
        try:
            for attempt in plan.attempts():
                started = time.perf_counter()
                try:
                    reply = await stub(request, timeout=plan.left(attempt), metadata=metadata)
                except grpc.RpcError as exc:
                    error = plan.failed(exc, started, attempt)
                except asyncio.CancelledError:
                    self._closed_under()
                    raise
                else:
                    return plan.done(reply, started, attempt)
                await asyncio.sleep(plan.pause_after(error, attempt))  # raises when there is no retry left
        except BaseException:
            del stub  # an error kept (a notebook's sys.last_value) keeps its frames, and a stub its channel: grpc.aio's
            raise  # poller would stay inside gRPC at every later fork (see easnb.fork)
        raise AssertionError("unreachable")

    async def _small(self, name: str, request: Any, timeout: float | None, headers: Headers | None) -> Any:
        return await self._call(name, request, arguments.server_call(timeout, headers), self.retries, headers)

    async def live(self, timeout: float | None = DEFAULT, headers: Headers | None = None) -> bool:
        return bool((await self._small("ServerLive", _proto.ServerLiveRequest(), timeout, headers)).live)

    async def ready(self, timeout: float | None = DEFAULT, headers: Headers | None = None) -> bool:
        return bool((await self._small("ServerReady", _proto.ServerReadyRequest(), timeout, headers)).ready)

    async def model_ready(
        self, name: str, version: str = "", timeout: float | None = DEFAULT, headers: Headers | None = None
    ) -> bool:
        """As ``Connection.model_ready``: an unknown model is ``False``."""
        name, version, timeout = arguments.model_call(name, version, timeout, headers)
        request = _proto.ModelReadyRequest(name=name, version=version)
        try:
            return bool((await self._small("ModelReady", request, timeout, headers)).ready)
        except EasnbError as exc:
            if is_unknown_model(exc):
                return False
            raise

    async def server_metadata(self, timeout: float | None = DEFAULT, headers: Headers | None = None) -> ServerMetadata:
        reply = await self._small("ServerMetadata", _proto.ServerMetadataRequest(), timeout, headers)
        found: ServerMetadata = CALLS["ServerMetadata"].read(reply)
        return found

    async def model_metadata(
        self, name: str, version: str = "", timeout: float | None = DEFAULT, headers: Headers | None = None
    ) -> ModelMetadata:
        name, version, timeout = arguments.model_call(name, version, timeout, headers)
        reply = await self._small("ModelMetadata", _proto.ModelMetadataRequest(name=name, version=version), timeout, headers)
        meta = self._model_cache[(name, version)] = model_metadata_from(reply)
        return meta

    async def infer(
        self,
        model: str,
        inputs: Inputs | Any,
        outputs: Outputs = None,
        version: str = "",
        parameters: Mapping[str, Any] | None = None,
        request_id: str = "",
        *,
        timeout: float | None = DEFAULT,
        headers: Headers | None = None,
        raw: bool = True,
        retries: int = 0,
        copy: bool = False,
        bytes_as_str: bool = False,
        columns: Mapping[str, list[str]] | None = None,
    ) -> InferResult:
        """As ``Connection.infer``; DataFrames are matched to the model's inputs."""
        model, inputs, outputs, version, request_id, timeout, retries = arguments.infer_call(model, inputs, outputs, version, parameters, request_id, timeout, headers, raw, retries, copy, bytes_as_str, columns)
        if is_frame(inputs):
            meta = self._model_cache.get((model, version)) or await self.model_metadata(model, version, headers=headers)
            inputs = frame_to_inputs(inputs, meta, None if columns is None else dict(columns), token=self.settings.token)
        try:
            data = encode_request(model, inputs, outputs, version, parameters, request_id, raw, self.request_heads)
        except FrameInput:  # a DataFrame as one input's value: its columns matched to that input's features
            meta = self._model_cache.get((model, version)) or await self.model_metadata(model, version, headers=headers)
            data = encode_request(model, frames_in(inputs, meta, token=self.settings.token), outputs, version, parameters, request_id, raw, self.request_heads)
        reply = await self._call("ModelInfer", data, timeout, retries, headers)
        return decode_response(reply, copy=copy, bytes_as_str=bytes_as_str, plans=self.reply_plans)

    async def stream(self, model: str, inputs: Inputs | Any, outputs: Outputs = None, version: str = "",
                     parameters: Mapping[str, Any] | None = None, request_id: str = "", **options: Any) -> AsyncStream:
        """As ``Connection.stream``: ``async for result in await conn.stream(...)`` (``easnb.streaming_aio``)."""
        from .streaming_aio import open_call

        return await open_call(self, model, inputs, outputs=outputs, version=version, parameters=parameters,
                               request_id=request_id, **options)

    def generate(self, model: str, prompt: str, **sampling: Any) -> AsyncGeneration:
        """As ``Connection.generate``: ``async for piece in conn.generate(...)``; sent when the loop starts, or on ``await``."""
        from .streaming_aio import generate

        return generate(self, model, prompt, **sampling)

    # -- as Connection: the plans of easnb.calls, run on this loop ------------------------------

    async def unary(self, step: Unary) -> Any:
        """One ``Unary`` step of a plan, on this channel."""
        self.check_open()
        self._open()
        return await self._send(step.path, self._path_stub(step), step.request, step.timeout,
                                self.retries if step.idempotent else 0, self.settings.metadata)  # no stub in this frame

    def _path_stub(self, step: Unary) -> Any:
        stub = self._path_stubs.get(step.path)
        if stub is None:
            assert self.channel is not None
            stub = self._path_stubs[step.path] = self.channel.unary_unary(
                step.path, request_serializer=type(step.request).SerializeToString, response_deserializer=quiet(step.reply.FromString)
            )
        return stub

    async def cached_model_metadata(self, name: str, version: str = "", headers: Headers | None = None) -> ModelMetadata:
        """As ``Connection.cached_model_metadata``."""
        name, version, _ = arguments.model_call(name, version, None, headers)
        cached = self._model_cache.get((name, version))
        return cached if cached is not None else await self.model_metadata(name, version, headers=headers)

    async def models(self, ready: bool = False) -> list[ModelIndex]:
        """As ``Connection.models``."""
        from .repository import index_plan

        return await arun_plan(self, index_plan(self.endpoint.target, arguments.flag(ready, "ready")))

    async def known_models(self) -> list[str]:
        """As ``Connection.known_models``."""
        from .repository import known_plan

        return await arun_plan(self, known_plan(self.endpoint.target, list(dict.fromkeys(n for n, _ in self._model_cache))))

    async def wait_until_ready(self, model: str | None = None, timeout: float = 600, progress: bool = True) -> str:
        """As ``Connection.wait_until_ready``, without blocking the event loop."""
        from .readiness import wait_plan

        return await arun_plan(self, wait_plan(self.endpoint.target, self.timeout, *arguments.wait_call(model, timeout, progress)))

    async def discover(self) -> Discovery:
        """As ``Connection.discover``."""
        from .discovery import discover_plan

        return await arun_plan(self, discover_plan(self.endpoint.target, self.has_token))

    async def infer_frame(self, model: str, frame: Any, batch_size: int = 1024, concurrency: int = 8, **options: Any) -> pd.DataFrame:
        """As ``Connection.infer_frame``: the batches go on this connection's channel, in this loop."""
        from .batch import frame_plan

        arguments.keywords(frame_plan, options, "infer_frame")
        return await arun_plan(self, frame_plan(self, model, frame, batch_size, concurrency, **options))

    async def run_batches(self, run: Any, concurrency: int) -> None:
        """``infer_frame``'s batches on this channel."""
        self.check_open()
        self._open()
        try:
            await run.score(concurrency, self._infer)
        except asyncio.CancelledError:
            self._closed_under()
            raise

    def _closed_under(self) -> None:
        """Raise ``ClosedError`` when a ``CancelledError`` came from this connection's close (its channel ends the
        calls in flight) rather than from the task's own cancel (Python 3.11+ tells them apart; 3.10 cannot)."""
        task = asyncio.current_task()
        cancelling = getattr(task, "cancelling", None)
        if self._closed and not (cancelling is not None and cancelling()):
            self.check_open()

    async def reflection(self) -> Reflection:
        """As ``Connection.reflection`` (asked off the event loop: reflection's client is blocking)."""
        return await asyncio.to_thread(lambda: self._sync_twin().reflection())

    async def services(self) -> list[str]:
        """As ``Connection.services``."""
        return (await self.reflection()).services()

    def _sync_twin(self) -> Connection:
        """The sync connection, made from the same settings, that blocking look-ups use."""
        from .connection import Connection

        self.check_open()
        if self._twin is None:
            self._twin = Connection(self.settings)
        return self._twin

    # -- any other service ----------------------------------------------------------------

    async def service(self, proto_or_name: str | Path, name: str | None = None, include: tuple[str | Path, ...] = ()) -> ServiceClient:
        """As ``Connection.service``, with coroutine methods: ``await (await conn.service("pkg.Service")).Method(...)``.

        Server-streaming methods return an async iterator of replies.
        """
        from .services import ServiceClient, resolve

        proto_or_name, name, include = arguments.service_call(proto_or_name, name, include)

        def look_up() -> Any:  # reflection and protoc are blocking: run them off the event loop
            return resolve(self._sync_twin(), proto_or_name, name, include)  # every setting: TLS roots, keepalive, ...

        return ServiceClient(self, await asyncio.to_thread(look_up), aio=True)

    async def call_stub(
        self, path: str, make_stub: Any, request: Any, timeout: float | None, headers: Headers | None
    ) -> Any:
        """One unary-reply call of any method on this channel, errors translated (no retries)."""
        self.check_open()
        self._open()
        seconds = self.deadline(timeout)
        plan = RetryPlan(path, seconds, 0, self.error_context)
        started = time.perf_counter()
        try:
            reply = await make_stub(self.channel)(request, timeout=seconds, metadata=self.metadata_for(headers))
        except grpc.RpcError as exc:
            error = plan.failed(exc, started, 0)
        except asyncio.CancelledError:
            self._closed_under()
            raise
        else:
            return plan.done(reply, started, 0)
        raise error

    def open_stub(self, path: str, make_stub: Any, request: Any, timeout: float | None, headers: Headers | None) -> Any:
        """A streaming-reply call of any method on this channel (read it with ``await call.read()``);
        logged (DEBUG) when opened, as ``Connection.call`` logs a sync one."""
        self.check_open()
        self._open()
        seconds = self.deadline(timeout)
        started = time.perf_counter()
        call = make_stub(self.channel)(request, timeout=seconds, metadata=self.metadata_for(headers))
        if log.debugging():
            log.call_done(path, self.error_context["target"], "OK", started)
        return call

    async def close(self, replaced_by: str | None = None) -> None:
        """Close the channel (unless it was handed in) and the sync twin, if made. Safe to call twice.

        ``replaced_by`` is accepted as ``Connection.close`` takes it; a later call raises ``ClosedError``.
        """
        if self._mark_closed(arguments.name_or_none(replaced_by, "replaced_by")):
            twin, self._twin = self._twin, None
            if twin is not None:
                twin.close()
            self.stream_watchdog.close()
            channel, self.channel = self.channel, None  # nor kept (a notebook keeps `aconn` after `async with`): grpc.aio's
            self._stubs, self._path_stubs = {}, {}  # poller ends with the last grpc.aio channel, and a later fork is safe
            self._infer = None
            if channel is not None and self._given is None:
                note_let_go()  # the next fork collects what may still hold it (a failed call's reference cycle)
                await channel.close()

    async def __aenter__(self) -> AsyncConnection:
        self.check_open()  # a closed connection is not entered again
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def connect(
    endpoint: str | Endpoint | Settings | None = None, token: str | Token | None = None, timeout: float | None = 5.0, **options: Any
) -> AsyncConnection:
    """As ``easnb.connect``, for ``await``: endpoint and token default to ``EASNB_ENDPOINT`` / ``EASNB_TOKEN``;
    ``connect(settings)`` uses another connection's settings (``conn.settings``)."""
    if token is not None:  # this frame keeps no plain token for a traceback's locals (%xmode Verbose)
        token, problem = parse_token(token)
        if problem is not None:
            raise problem
    channel = options.pop("channel", None)
    return AsyncConnection(connect_settings("AsyncConnection", endpoint, token, timeout, options), channel=channel)
